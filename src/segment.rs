//! Segments: 4 MiB-aligned regions carved into pages of one kind.
//!
//! ```text
//! segment base (4 MiB aligned) = block pointer & !SEGMENT_MASK
//! +----------------------+-------------+-------------+-----+
//! | Segment header       | page 0 area | page 1 area | ... |
//! | (owner, kind, pages) | (shortened) |             |     |
//! +----------------------+-------------+-------------+-----+
//! ```
//!
//! The header's `state` word holds the owner's thread id (0 = abandoned) and
//! the `ON_ABANDONED_STACK` bit; see `abandoned.rs` for the protocol. Segments
//! with free small or medium page slots sit in their owning heap's
//! `small_free` / `medium_free` queue. Memory comes from the segment cache or
//! the platform, and goes back there when the last page is freed.

use crate::abandoned;
use crate::constants::*;
use crate::heap::Heap;
use crate::page::{DelayedState, Page, FLAG_IN_FULL};
use crate::platform;
use crate::segment_cache;
use crate::segment_map;
use crate::stats::{self, Counter};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PageKind {
    Small,
    Medium,
    Large,
    Huge,
}

impl PageKind {
    pub fn for_block_size(block_size: usize) -> PageKind {
        if block_size <= SMALL_OBJ_SIZE_MAX {
            PageKind::Small
        } else if block_size <= MEDIUM_OBJ_SIZE_MAX {
            PageKind::Medium
        } else if block_size <= LARGE_OBJ_SIZE_MAX {
            PageKind::Large
        } else {
            PageKind::Huge
        }
    }

    pub fn page_shift(self) -> usize {
        match self {
            PageKind::Small => SMALL_PAGE_SHIFT,
            PageKind::Medium => MEDIUM_PAGE_SHIFT,
            PageKind::Large => LARGE_PAGE_SHIFT,
            // Any offset inside a huge segment maps to page 0.
            PageKind::Huge => usize::BITS as usize - 1,
        }
    }

    fn page_count(self) -> usize {
        match self {
            PageKind::Small => SMALL_PAGES_PER_SEGMENT,
            PageKind::Medium => MEDIUM_PAGES_PER_SEGMENT,
            PageKind::Large | PageKind::Huge => 1,
        }
    }
}

#[repr(C)]
pub struct Segment {
    // --- read by the free fast path ---
    /// Owner thread id, or 0 when abandoned; plus `abandoned::ON_STACK`.
    pub(crate) state: AtomicUsize,
    pub(crate) page_shift: usize,
    // --- owner only ---
    pub(crate) kind: PageKind,
    pub(crate) page_count: usize,
    /// Pages handed to a heap.
    pub(crate) used: usize,
    /// Pages of `used` whose heap has gone (thread exit).
    pub(crate) abandoned_pages: usize,
    /// Unused pages waiting to be purged.
    pub(crate) purge_pending: usize,
    /// Total bytes of the segment (SEGMENT_SIZE except for huge ones).
    pub(crate) size: usize,
    /// Link in the abandoned stack.
    pub(crate) abandoned_next: *mut Segment,
    /// Links in the owner's free-page queue.
    pub(crate) next: *mut Segment,
    pub(crate) prev: *mut Segment,
    pub(crate) in_free_queue: bool,
    /// Every byte after the header reads as zero.
    pub(crate) body_is_zero: bool,
    /// When the segment entered the cache (ms).
    pub(crate) cached_at: u64,
    pub(crate) pages: [Page; MAX_PAGES_PER_SEGMENT],
}

/// Bytes of the header proper (OS-page rounded).
const SEGMENT_HEADER_SIZE: usize =
    (core::mem::size_of::<Segment>() + OS_PAGE_SIZE - 1) & !(OS_PAGE_SIZE - 1);
/// With `secure`, an inaccessible OS page between the header and the first
/// page's blocks: an overflow off the end of the metadata or an underflow
/// off the first block faults instead of corrupting the page table.
const GUARD_SIZE: usize = if cfg!(feature = "secure") {
    OS_PAGE_SIZE
} else {
    0
};
/// Bytes before the first page's blocks (OS-page rounded, so page areas stay
/// page aligned and can be purged).
pub const SEGMENT_INFO_SIZE: usize = SEGMENT_HEADER_SIZE + GUARD_SIZE;

const _: () = assert!(SEGMENT_INFO_SIZE < SMALL_PAGE_SIZE / 2);

impl Segment {
    /// The segment whose 4 MiB region starts at `base`.
    ///
    /// # Safety
    /// `segment_map::is_segment_start(base)` holds.
    #[inline(always)]
    pub unsafe fn at(base: usize) -> *mut Segment {
        base as *mut Segment
    }

    /// The page a pointer inside this segment belongs to.
    ///
    /// # Safety
    /// `segment` is live and `p` lies inside it.
    #[inline(always)]
    pub unsafe fn page_of(segment: *mut Segment, p: *const u8) -> *mut Page {
        // SAFETY: as the caller guarantees.
        unsafe { Self::page_at(segment, p, (*segment).page_shift) }
    }

    /// The page of `p` given the segment's page shift (from the segment map,
    /// which saves the free fast path a header load).
    ///
    /// # Safety
    /// `segment` is live, `p` lies inside it, `page_shift` is its page shift.
    #[inline(always)]
    pub unsafe fn page_at(segment: *mut Segment, p: *const u8, page_shift: usize) -> *mut Page {
        // SAFETY: the header is live; the index is below the page count
        // because `p` lies in the segment (huge segments use shift 63).
        unsafe {
            let index = ((p as usize) - (segment as usize)) >> page_shift;
            ptr::addr_of_mut!((*segment).pages)
                .cast::<Page>()
                .add(index)
        }
    }

    /// The segment of a page.
    pub fn of_page(page: *const Page) -> *mut Segment {
        ((page as usize) & !SEGMENT_MASK) as *mut Segment
    }

    /// The kind of pages in the segment holding `page`.
    pub fn kind_of_page(page: &Page) -> PageKind {
        // SAFETY: a page struct lives in its segment's header.
        unsafe { (*Self::of_page(page)).kind }
    }

    #[inline(always)]
    pub fn owner(&self) -> usize {
        abandoned::owner_of(self.state.load(Ordering::Relaxed))
    }

    /// Start and size of page `index`'s area.
    fn page_area(&self, index: usize) -> (*mut u8, usize) {
        let base = self as *const Segment as usize;
        match self.kind {
            PageKind::Huge => (
                (base + SEGMENT_INFO_SIZE) as *mut u8,
                self.size - SEGMENT_INFO_SIZE,
            ),
            _ => {
                let start = base + (index << self.page_shift);
                let skip = if index == 0 { SEGMENT_INFO_SIZE } else { 0 };
                ((start + skip) as *mut u8, (1 << self.page_shift) - skip)
            }
        }
    }

    /// (Re)initialise the header of memory that is ours alone.
    fn init(&mut self, kind: PageKind, size: usize, owner: usize, body_is_zero: bool) {
        self.state.store(owner, Ordering::Release);
        self.page_shift = kind.page_shift();
        self.kind = kind;
        self.page_count = kind.page_count();
        self.used = 0;
        self.abandoned_pages = 0;
        self.purge_pending = 0;
        self.size = size;
        self.abandoned_next = ptr::null_mut();
        self.next = ptr::null_mut();
        self.prev = ptr::null_mut();
        self.in_free_queue = false;
        self.body_is_zero = body_is_zero;
        for (i, page) in self.pages.iter_mut().enumerate() {
            *page = Page::empty();
            page.index = i as u8;
            page.area_is_zero = body_is_zero;
        }
    }

    fn has_free_page(&self) -> bool {
        self.used < self.page_count
    }

    // ------------------------------------------------------------ memory

    /// A fresh segment of `size` bytes (a multiple of the OS page) whose base
    /// is aligned to `align` (at least SEGMENT_SIZE), owned by `heap`.
    fn alloc(heap: &mut Heap, kind: PageKind, size: usize, align: usize) -> *mut Segment {
        let (memory, is_zero) = if size == SEGMENT_SIZE && align == SEGMENT_SIZE {
            match segment_cache::take() {
                Some(seg) => {
                    stats::add(Counter::CacheHits, 1);
                    // SAFETY: a cached segment is mapped and nobody else holds it.
                    let zero = unsafe { (*seg).body_is_zero };
                    (seg.cast::<u8>(), zero)
                }
                None => match Self::map_or_reclaim(heap, size, align) {
                    Some(m) => m,
                    None => return ptr::null_mut(),
                },
            }
        } else {
            match Self::map_or_reclaim(heap, size, align) {
                Some(m) => m,
                None => return ptr::null_mut(),
            }
        };
        let seg = memory.cast::<Segment>();
        // SAFETY: the memory is mapped, at least SEGMENT_INFO_SIZE long, and ours.
        unsafe { (*seg).init(kind, size, heap.thread_id, is_zero) };
        segment_map::set_page_shift(seg as usize, kind.page_shift());
        stats::add(Counter::Segments, 1);
        seg
    }

    /// Fresh memory; when the platform refuses, first take over every
    /// abandoned segment (their freed pages go back to the cache) and hand
    /// the cache back to the platform, then try once more. With fixed
    /// memory (embedded) that is what makes a large request fit.
    fn map_or_reclaim(heap: &mut Heap, size: usize, align: usize) -> Option<(*mut u8, bool)> {
        if let Some(m) = Self::map(size, align) {
            return Some(m);
        }
        abandoned::reclaim_all(heap);
        heap.collect(true);
        Self::map(size, align)
    }

    /// Fresh memory from the platform, registered in the segment map.
    fn map(size: usize, align: usize) -> Option<(*mut u8, bool)> {
        let memory = platform::os_alloc_aligned(size, align)?;
        #[allow(clippy::absurd_extreme_comparisons)] // GUARD_SIZE is 0 without `secure`
        if GUARD_SIZE > 0 {
            // SAFETY: the guard lies inside the fresh mapping, after the header.
            unsafe { platform::os_protect_none(memory.base.add(SEGMENT_HEADER_SIZE), GUARD_SIZE) };
        }
        if !segment_map::insert(memory.base as usize, size, PageKind::Huge.page_shift()) {
            // SAFETY: we just mapped it and nobody else knows it.
            unsafe { platform::os_free(memory.base, size) };
            return None;
        }
        stats::add(Counter::Reserved, size as i64);
        Some((memory.base, memory.is_zero))
    }

    /// Give an empty segment back: to the cache if it is standard sized and
    /// the cache has room, to the platform otherwise.
    ///
    /// # Safety
    /// No page of `seg` is in use and no one else references it.
    pub(crate) unsafe fn release(seg: *mut Segment) {
        stats::add(Counter::Segments, -1);
        // SAFETY: the caller hands over an unused segment.
        unsafe {
            if (*seg).size == SEGMENT_SIZE && segment_cache::put(seg) {
                return;
            }
            Self::unmap(seg);
        }
    }

    /// # Safety
    /// As for [`Segment::release`], and `seg` is in no cache slot.
    pub(crate) unsafe fn unmap(seg: *mut Segment) {
        // SAFETY: the caller hands over an unused segment.
        let size = unsafe { (*seg).size };
        segment_map::remove(seg as usize, size);
        // A pop of the abandoned stack may still be reading this header.
        abandoned::await_readers();
        stats::add(Counter::Reserved, -(size as i64));
        // SAFETY: the mapping is ours and unreferenced.
        unsafe { platform::os_free(seg.cast(), size) };
    }

    // ------------------------------------------------------------ pages

    /// A page for blocks of `block_size` (not huge), owned by `heap`, with its
    /// area ready; null when out of memory.
    pub fn alloc_page(heap: &mut Heap, block_size: usize) -> *mut Page {
        let kind = PageKind::for_block_size(block_size);
        debug_assert!(kind != PageKind::Huge);
        let seg = match kind {
            PageKind::Small | PageKind::Medium => {
                let mut seg = heap.segment_queue(kind).first();
                if seg.is_null() {
                    abandoned::try_reclaim(heap, kind);
                    seg = heap.segment_queue(kind).first();
                }
                if seg.is_null() {
                    seg = Self::alloc(heap, kind, SEGMENT_SIZE, SEGMENT_SIZE);
                    if seg.is_null() {
                        return ptr::null_mut();
                    }
                    // SAFETY: fresh segment owned by this heap.
                    unsafe { heap.segment_queue(kind).push(seg) };
                }
                seg
            }
            _ => {
                abandoned::try_reclaim(heap, kind);
                let seg = Self::alloc(heap, kind, SEGMENT_SIZE, SEGMENT_SIZE);
                if seg.is_null() {
                    return ptr::null_mut();
                }
                seg
            }
        };
        // SAFETY: `seg` is owned by this heap and has a free page slot.
        unsafe { Self::take_page(heap, seg, block_size) }
    }

    /// A page in a dedicated segment for one huge block of `size` bytes
    /// whose start is aligned to `align` (a power of two, 0 = default).
    pub fn alloc_huge_page(heap: &mut Heap, size: usize, align: usize) -> *mut Page {
        let align = align.max(MAX_ALIGN_GUARANTEE);
        // The block starts at the first `align` boundary after the header.
        let offset = (SEGMENT_INFO_SIZE + align - 1) & !(align - 1);
        let Some(total) = offset
            .checked_add(size)
            .and_then(|t| t.checked_add(OS_PAGE_SIZE - 1))
        else {
            return ptr::null_mut();
        };
        let total = total & !(OS_PAGE_SIZE - 1);
        let seg = Self::alloc(heap, PageKind::Huge, total, align.max(SEGMENT_SIZE));
        if seg.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: fresh segment owned by this heap.
        unsafe {
            // The block spans the rest of the segment: usable_size reports it all.
            let page = Self::take_page(heap, seg, total - offset);
            // Start the single block at the aligned offset.
            (*page).start = (seg as *mut u8).add(offset);
            (*page).reserved = 1;
            page
        }
    }

    /// Claim a free page slot of `seg` for `heap`.
    ///
    /// # Safety
    /// `seg` is owned by `heap` and has a free page slot.
    unsafe fn take_page(heap: &mut Heap, seg: *mut Segment, block_size: usize) -> *mut Page {
        // SAFETY: as the caller guarantees.
        unsafe {
            let s = &mut *seg;
            let index = s.pages[..s.page_count]
                .iter()
                .position(|p| !p.in_use)
                .expect("segment has a free page");
            if s.pages[index].purge_pending {
                s.pages[index].purge_pending = false;
                s.purge_pending -= 1;
            }
            let (start, size) = s.page_area(index);
            let area_is_zero = s.pages[index].area_is_zero;
            let page = ptr::addr_of_mut!(s.pages[index]);
            (*page).init(heap, block_size, start, size);
            (*page).area_is_zero = area_is_zero;
            #[cfg(feature = "secure")]
            {
                (*page).key = crate::block::ListKey::new(heap.random_words());
            }
            s.used += 1;
            if !s.has_free_page() && s.in_free_queue {
                heap.segment_queue(s.kind).remove(seg);
            }
            stats::page_allocated(block_size, size);
            page
        }
    }

    /// Return an empty page to its segment; releases the segment when it was
    /// the last one. The page is in no heap queue.
    ///
    /// # Safety
    /// `page` is in use, owned by `heap`'s thread, and has no live blocks.
    pub unsafe fn free_page(heap: &mut Heap, page: *mut Page) {
        // SAFETY: as the caller guarantees; the segment is ours.
        unsafe {
            let seg = Self::of_page(page);
            let s = &mut *seg;
            let p = &mut *page;
            debug_assert!(p.in_use && p.used == 0);
            let (_, area) = s.page_area(p.index as usize);
            stats::page_freed(area);
            let index = p.index;
            let was_zero = p.area_is_zero && p.capacity == 0;
            *p = Page::empty();
            p.index = index;
            p.area_is_zero = was_zero;
            s.used -= 1;
            if s.used == 0 {
                if s.in_free_queue {
                    heap.segment_queue(s.kind).remove(seg);
                }
                if abandoned::release_owned(seg) {
                    Self::release(seg);
                }
                return;
            }
            if !was_zero {
                p.purge_pending = true;
                p.purge_at = platform::now_ms() + crate::options::purge_delay_ms();
                s.purge_pending += 1;
            }
            if s.abandoned_pages == s.used {
                // The heap is exiting and this was its last page here that
                // could be freed: the rest are abandoned, so is the segment.
                Self::abandon(heap, seg);
                return;
            }
            if matches!(s.kind, PageKind::Small | PageKind::Medium) && !s.in_free_queue {
                heap.segment_queue(s.kind).push(seg);
            }
        }
    }

    /// Purge unused pages whose delay has passed (all of them when `force`).
    pub fn purge_pages(&mut self, now: u64, force: bool) {
        if self.purge_pending == 0 {
            return;
        }
        for index in 0..self.page_count {
            let page = &self.pages[index];
            if page.in_use || !page.purge_pending || (!force && page.purge_at > now) {
                continue;
            }
            let (start, size) = self.page_area(index);
            // Only whole OS pages; the first area starts after the header.
            let from = (start as usize + OS_PAGE_SIZE - 1) & !(OS_PAGE_SIZE - 1);
            let to = (start as usize + size) & !(OS_PAGE_SIZE - 1);
            // SAFETY: the page is unused and the range lies in our mapping.
            let zeroed = to > from && unsafe { platform::os_purge(from as *mut u8, to - from) };
            stats::add(Counter::Purged, (to - from) as i64);
            let page = &mut self.pages[index];
            page.purge_pending = false;
            page.area_is_zero = zeroed && from == start as usize;
            self.purge_pending -= 1;
        }
    }

    // ------------------------------------------------------------ abandon / reclaim

    /// The owner's heap is going away and `page` still has live blocks: keep
    /// the page for whoever reclaims the segment. Abandons the segment when
    /// this was its last page in use by the heap.
    ///
    /// # Safety
    /// `page` is in use by the calling thread's heap, removed from its queue,
    /// with `NeverDelayedFree` set.
    pub unsafe fn abandon_page(heap: &mut Heap, page: *mut Page) {
        // SAFETY: as the caller guarantees.
        unsafe {
            let seg = Self::of_page(page);
            let s = &mut *seg;
            (*page).heap.store(ptr::null_mut(), Ordering::Release);
            (*page).clear_flag(FLAG_IN_FULL);
            s.abandoned_pages += 1;
            if s.abandoned_pages == s.used {
                Self::abandon(heap, seg);
            }
        }
    }

    /// Every page still in use is abandoned: give the segment up.
    ///
    /// # Safety
    /// The calling thread owns `seg`, whose heap is exiting.
    unsafe fn abandon(heap: &mut Heap, seg: *mut Segment) {
        // SAFETY: as the caller guarantees.
        unsafe {
            let s = &mut *seg;
            if s.in_free_queue {
                heap.segment_queue(s.kind).remove(seg);
            }
            // Only pages whose delay has passed: a short-lived thread's
            // successor usually reclaims the segment at once, and purging
            // now would make it fault the same pages back in.
            s.purge_pages(platform::now_ms(), false);
        }
        stats::add(Counter::Abandoned, 1);
        // SAFETY: the caller owns `seg`.
        unsafe { abandoned::abandon(seg) };
    }

    /// Adopt an abandoned segment the calling thread has just claimed: its
    /// pages with live blocks join `heap`'s queues, empty ones are freed.
    /// Returns false when that freed the whole segment.
    ///
    /// # Safety
    /// The calling thread owns `seg` (a successful claim) and `heap` is its heap.
    pub unsafe fn reclaim(heap: &mut Heap, seg: *mut Segment) -> bool {
        stats::add(Counter::Reclaimed, 1);
        // SAFETY: as the caller guarantees.
        unsafe {
            let s = &mut *seg;
            s.abandoned_pages = 0;
            let kind = s.kind;
            let count = s.page_count;
            let free_slots = s.has_free_page();
            for index in 0..count {
                let page = ptr::addr_of_mut!(s.pages[index]);
                if !(*page).in_use {
                    continue;
                }
                (*page).heap.store(heap, Ordering::Release);
                (*page).set_delayed_state(DelayedState::NoDelayedFree, true);
                (*page).collect(false);
                if (*page).all_free() {
                    let last = s.used == 1;
                    Self::free_page(heap, page);
                    if last {
                        return false;
                    }
                } else {
                    heap.adopt_page(page);
                }
            }
            if free_slots && matches!(kind, PageKind::Small | PageKind::Medium) && !s.in_free_queue
            {
                heap.segment_queue(kind).push(seg);
            }
        }
        true
    }
}

/// A heap's queue of segments with free page slots of one kind.
pub struct SegmentQueue {
    first: *mut Segment,
}

impl Default for SegmentQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentQueue {
    pub const fn new() -> SegmentQueue {
        SegmentQueue {
            first: ptr::null_mut(),
        }
    }

    pub fn first(&self) -> *mut Segment {
        self.first
    }

    /// # Safety
    /// `seg` is owned by the caller and in no queue.
    pub unsafe fn push(&mut self, seg: *mut Segment) {
        // SAFETY: owner-only links of live segments.
        unsafe {
            (*seg).prev = ptr::null_mut();
            (*seg).next = self.first;
            if !self.first.is_null() {
                (*self.first).prev = seg;
            }
            (*seg).in_free_queue = true;
        }
        self.first = seg;
    }

    /// # Safety
    /// `seg` is in this queue.
    pub unsafe fn remove(&mut self, seg: *mut Segment) {
        // SAFETY: owner-only links of live segments in this queue.
        unsafe {
            let (prev, next) = ((*seg).prev, (*seg).next);
            if prev.is_null() {
                self.first = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*seg).next = ptr::null_mut();
            (*seg).prev = ptr::null_mut();
            (*seg).in_free_queue = false;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = *mut Segment> {
        let mut cur = self.first;
        core::iter::from_fn(move || {
            if cur.is_null() {
                return None;
            }
            let seg = cur;
            // SAFETY: queue members are live segments owned by the caller.
            cur = unsafe { (*seg).next };
            Some(seg)
        })
    }
}
