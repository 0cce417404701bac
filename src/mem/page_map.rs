//! The page map: for every slice (64 KiB hosted, 16 KiB embedded) of a
//! normal chunk, the header of
//! the page (span) it belongs to; null for memory that is not a normal
//! chunk's. `free` finds and validates its page with this one lookup.
//!
//! ```text
//! address bits:  .. | top index (TOP_BITS) | leaf index (LEAF_BITS) | SLICE_SHIFT bits in a slice
//! TOP[t]:        a leaf of LEAF page pointers (from the platform, never
//!                freed), hosted biased by t * LEAF entries so that the
//!                slice number indexes it without a mask; else no leaf:
//!                null hosted, the static EMPTY_LEAF embedded
//! leaf[i]:       the page header of slice i's span (its own header when the
//!                slice is free: a header with no owner), else NO_PAGE
//! ```
//!
//! `NO_PAGE` is a static header that no thread owns, so the free fast path's
//! owner test fails for it without a null test of its own. The lookup is two
//! dependent loads (top, leaf), hosted a bound and a null test (of the
//! leaf); embedded neither: the index is masked to the window and a window
//! with no chunk reads `EMPTY_LEAF`, whose entries are all `NO_PAGE`
//! (32 KiB of `.data`, and the top table moves from `.bss` to `.data`:
//! two instructions less on every free). All this against
//! the chunk map's two loads plus the chunk header's `span_of` load it
//! replaces on the free path. The chunk map (chunk_map.rs) still answers
//! everything else (huge chunks, interior pointers of huge blocks).
//!
//! The top index: hosted, the address bits above the leaf's, exactly (the
//! table covers all of user space, 47 or 48 bits; an address above it reads
//! `NO_PAGE`), so a slice's entry is only ever its own: a pointer whose
//! entry names a page lies in that page's span, which lets the free fast
//! path's block-start test skip a bound (page.rs `is_plain_block_start`).
//! Embedded: those bits modulo the table, a 256 GiB window (a 32 KiB table
//! of leaves of 64 MiB each). Two chunks that would share an entry are
//! 256 GiB apart, a multiple of the chunk map's 4 GiB window, so they share
//! a chunk-map slot too and the chunk map has already refused the second;
//! but a pointer outside the window may alias another slice's entry, so
//! the embedded block-start test bounds the offset into the page first.
//!
//! Entries are written under the arena lock when a chunk is mapped, a span
//! is made or freed, or a chunk is unmapped (Release), and read by any thread
//! (Relaxed, as `span_of` was: the page header's own atomics order what is
//! read through it).

use crate::base::constants::{CHUNK_SHIFT, OS_PAGE_SIZE, SLICES_PER_CHUNK, SLICE_SHIFT};
use crate::mem::page::Page;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

#[cfg(feature = "hosted")]
const LEAF_BITS: usize = 14; // 1 GiB of slices, a 128 KiB leaf
#[cfg(not(feature = "hosted"))]
const LEAF_BITS: usize = 12; // 64 MiB of 16 KiB slices, a 32 KiB leaf

#[cfg(all(feature = "hosted", target_arch = "x86_64"))]
const TOP_BITS: usize = 47 - SLICE_SHIFT - LEAF_BITS;
#[cfg(all(feature = "hosted", not(target_arch = "x86_64")))]
const TOP_BITS: usize = 48 - SLICE_SHIFT - LEAF_BITS;
#[cfg(not(feature = "hosted"))]
const TOP_BITS: usize = WINDOW_BITS - SLICE_SHIFT - LEAF_BITS;
/// Embedded: the address bits the table tells apart (a 256 GiB window; at
/// least the chunk map's, `chunk_map` asserts it).
#[cfg(not(feature = "hosted"))]
pub const WINDOW_BITS: usize = 38;

const LEAF: usize = 1 << LEAF_BITS;
const TOP: usize = 1 << TOP_BITS;
const LEAF_BYTES: usize = LEAF * core::mem::size_of::<AtomicPtr<Page>>();

const _: () = {
    // A chunk's slices lie in one leaf (chunks are chunk-aligned).
    assert!(LEAF >= SLICES_PER_CHUNK && LEAF_BYTES.is_multiple_of(OS_PAGE_SIZE));
    assert!(CHUNK_SHIFT > SLICE_SHIFT);
};

type Leaf = [AtomicPtr<Page>; LEAF];

/// The entry of every slice outside normal chunks: an empty header (no
/// owner, no blocks), never written.
static NO_PAGE: Page = Page::empty();

/// The value of an entry outside normal chunks ([`NO_PAGE`]).
#[inline(always)]
pub fn no_page() -> *mut Page {
    ptr::addr_of!(NO_PAGE).cast_mut()
}

/// Per top index, its leaf's entries biased by [`bias`] (so the slot
/// index of [`slot`] adds to it directly), or null. All null at first
/// (`.bss`): untouched pages of it cost nothing hosted. The last entry
/// (index TOP) stays null: hosted, `slot` lets it through, so that its
/// bound is one compare of the shifted address the load then uses (a
/// bound of TOP itself compiles to a second shift).
#[cfg(feature = "hosted")]
static TOP_LEVEL: [AtomicPtr<AtomicPtr<Page>>; TOP + 1] =
    [const { AtomicPtr::new(ptr::null_mut()) }; TOP + 1];

/// Embedded: a top entry with no leaf of its own holds [`EMPTY_LEAF`]
/// (every entry [`no_page`]), so the free fast path needs no null test.
#[cfg(not(feature = "hosted"))]
static TOP_LEVEL: [AtomicPtr<AtomicPtr<Page>>; TOP + 1] =
    [const { AtomicPtr::new(ptr::addr_of!(EMPTY_LEAF).cast_mut().cast()) }; TOP + 1];

/// Embedded: the leaf of every window with no chunk (read-only).
#[cfg(not(feature = "hosted"))]
static EMPTY_LEAF: Leaf = [const { AtomicPtr::new(ptr::addr_of!(NO_PAGE).cast_mut()) }; LEAF];

/// What a top entry with no leaf holds.
#[inline(always)]
fn no_leaf() -> *mut AtomicPtr<Page> {
    #[cfg(feature = "hosted")]
    {
        ptr::null_mut()
    }
    #[cfg(not(feature = "hosted"))]
    {
        ptr::addr_of!(EMPTY_LEAF).cast_mut().cast()
    }
}

/// The top index of `addr`, and the index that added to its biased leaf
/// gives the slice's entry. Hosted: None above the table (no aliasing: a
/// slice's entry is only ever its own), and the slice number itself, so
/// the lookup needs no mask; embedded: the window wraps (see the module
/// comment) and the index is the slice's in its leaf.
#[inline(always)]
fn slot(addr: usize) -> Option<(usize, usize)> {
    let slice = addr >> SLICE_SHIFT;
    #[cfg(feature = "hosted")]
    {
        let top = slice >> LEAF_BITS;
        // TOP itself is the null entry above user space (see TOP_LEVEL).
        (top <= TOP).then_some((top, slice))
    }
    #[cfg(not(feature = "hosted"))]
    {
        Some(((slice >> LEAF_BITS) & (TOP - 1), slice & (LEAF - 1)))
    }
}

/// What [`slot`]'s index exceeds the entry's index in its leaf by, for top
/// index `t`: a top entry holds its leaf's address minus this many entries.
#[inline(always)]
fn bias(t: usize) -> usize {
    #[cfg(feature = "hosted")]
    {
        t << LEAF_BITS
    }
    #[cfg(not(feature = "hosted"))]
    {
        let _ = t;
        0
    }
}

/// The page header recorded for the slice of `p`: [`no_page`] for a slice
/// outside normal chunks, None where no leaf covers `p` (nor any chunk).
/// Hosted, `p` lies in the span of the page returned (the map does not
/// alias); embedded, that is not proof of it (see the module comment):
/// either way the caller checks `p` against the page's area before it
/// reads at `p`.
#[inline(always)]
pub fn page_of(p: *const u8) -> Option<*mut Page> {
    let (t, k) = slot(p as usize)?;
    let base = TOP_LEVEL[t].load(Ordering::Relaxed);
    #[cfg(feature = "hosted")]
    if base.is_null() {
        return None;
    }
    // SAFETY: a non-null top entry is a leaf (never freed) biased by
    // `bias(t)`, and `k - bias(t)` is `p`'s slice index in it, below LEAF.
    Some(unsafe { (*base.wrapping_add(k)).load(Ordering::Relaxed) })
}

/// A leaf made by a thread that lost the race to install it, kept for the
/// next window that needs one: leaves come from the platform's metadata
/// memory, which embedded cannot give back (`os_free` takes chunks only).
static SPARE_LEAF: AtomicPtr<Leaf> = AtomicPtr::new(ptr::null_mut());

/// Keep `leaf` (unpublished, all entries [`no_page`]) for later. Two
/// leaves put aside at once leak one: rare and bounded.
fn put_aside(leaf: *mut Leaf) {
    let _ = SPARE_LEAF.compare_exchange(ptr::null_mut(), leaf, Ordering::AcqRel, Ordering::Relaxed);
}

/// A leaf whose entries all read [`no_page`], unpublished: the spare, or
/// fresh memory from the platform.
fn fresh_leaf() -> Option<*mut Leaf> {
    let spare = SPARE_LEAF.swap(ptr::null_mut(), Ordering::Acquire);
    if !spare.is_null() {
        return Some(spare);
    }
    let fresh = crate::platform::os_alloc_aligned(LEAF_BYTES, OS_PAGE_SIZE)?;
    let leaf = fresh.base.cast::<Leaf>();
    let entries = leaf.cast::<AtomicPtr<Page>>();
    for i in 0..LEAF {
        // SAFETY: fresh memory of LEAF_BYTES that only we know; i < LEAF.
        unsafe { entries.wrapping_add(i).write(AtomicPtr::new(no_page())) };
    }
    Some(leaf)
}

/// `leaf` as top entry `t` holds it.
fn biased(leaf: *mut Leaf, t: usize) -> *mut AtomicPtr<Page> {
    leaf.cast::<AtomicPtr<Page>>().wrapping_sub(bias(t))
}

/// A fresh leaf for top index `t`, whose biased address is not null (null
/// means "no leaf"; only a leaf at exactly `bias(t)` entries gives it, and
/// then the next one, at another address, does not).
fn fresh_leaf_for(t: usize) -> Option<*mut Leaf> {
    let leaf = fresh_leaf()?;
    if biased(leaf, t) != no_leaf() {
        return Some(leaf);
    }
    let other = fresh_leaf();
    put_aside(leaf);
    other
}

/// The entry of the slice at `addr`, making its leaf; None when the platform
/// has no memory for a leaf (or, hosted, `addr` lies above the table).
fn entry_or_make(addr: usize) -> Option<&'static AtomicPtr<Page>> {
    let (t, k) = slot(addr).filter(|&(t, _)| t < TOP)?;
    let top = &TOP_LEVEL[t];
    let mut base = top.load(Ordering::Acquire);
    if base == no_leaf() {
        let fresh = fresh_leaf_for(t)?;
        let new = biased(fresh, t);
        match top.compare_exchange(no_leaf(), new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => base = new,
            Err(winner) => {
                // Lost the race: keep ours for the next window (nobody has
                // seen it, so its entries still read no_page).
                put_aside(fresh);
                base = winner;
            }
        }
    }
    // SAFETY: a leaf, never freed, biased by `bias(t)`: `k - bias(t) < LEAF`.
    Some(unsafe { &*base.wrapping_add(k) })
}

/// The entry of the slice at `addr`, whose leaf exists (its chunk is recorded).
fn entry(addr: usize) -> &'static AtomicPtr<Page> {
    let (t, k) = slot(addr).expect("a recorded chunk lies in the table");
    let base = TOP_LEVEL[t].load(Ordering::Acquire);
    debug_assert!(base != no_leaf());
    // SAFETY: the caller's chunk was recorded, so its leaf exists and is
    // never freed; biased by `bias(t)`: `k - bias(t) < LEAF`.
    unsafe { &*base.wrapping_add(k) }
}

/// Record a freshly mapped normal chunk at `base`: each slice points at its
/// own (ownerless) header `headers(slice)`. False when no leaf could be had
/// (the chunk must then not be used).
pub fn insert_chunk(base: usize, headers: impl Fn(usize) -> *mut Page) -> bool {
    if entry_or_make(base).is_none() {
        return false;
    }
    for slice in 0..SLICES_PER_CHUNK {
        let e = entry(base + (slice << SLICE_SHIFT));
        debug_assert!(
            e.load(Ordering::Relaxed) == no_page(),
            "page map entries collide"
        );
        e.store(headers(slice), Ordering::Release);
    }
    true
}

/// Point slices `first..first + count` of the recorded chunk at `base` at
/// `page` (a span made, or with each slice's own header, freed).
pub fn set(base: usize, first: usize, count: usize, page: impl Fn(usize) -> *mut Page) {
    for slice in first..first + count {
        entry(base + (slice << SLICE_SHIFT)).store(page(slice), Ordering::Release);
    }
}

/// Forget the chunk at `base` (being unmapped).
pub fn remove_chunk(base: usize) {
    for slice in 0..SLICES_PER_CHUNK {
        entry(base + (slice << SLICE_SHIFT)).store(no_page(), Ordering::Release);
    }
}

/// Hosted (the embedded configuration's leaves come from its regions,
/// which only the whole-allocator tests set up: src/tests/embedded.rs).
#[cfg(all(test, feature = "hosted"))]
mod tests {
    use super::*;
    use crate::base::constants::CHUNK_SIZE;

    fn entry_at(p: *const u8) -> *mut Page {
        page_of(p).unwrap_or(no_page())
    }

    #[test]
    fn insert_set_lookup_remove() {
        // An address range no real mapping uses in the test process.
        let base = (1usize << 45) + 7 * CHUNK_SIZE;
        let header = |s: usize| (0x1000 + s * 0x80) as *mut Page;
        assert_eq!(entry_at(base as *const u8), no_page());
        assert!(insert_chunk(base, header));
        assert_eq!(entry_at((base + 5) as *const u8), header(0));
        assert_eq!(
            entry_at((base + (3 << SLICE_SHIFT) + 9) as *const u8),
            header(3)
        );
        set(base, 2, 3, |_| header(2));
        assert_eq!(
            entry_at((base + (4 << SLICE_SHIFT)) as *const u8),
            header(2)
        );
        assert_eq!(
            entry_at((base + (5 << SLICE_SHIFT)) as *const u8),
            header(5)
        );
        set(base, 2, 3, header);
        assert_eq!(
            entry_at((base + (4 << SLICE_SHIFT)) as *const u8),
            header(4)
        );
        // The next chunk is not recorded.
        assert_eq!(entry_at((base + CHUNK_SIZE) as *const u8), no_page());
        // No alias: the same slice above user space (each bit over the
        // table's, and the null entry just above it) has no entry at all.
        let top_bit = SLICE_SHIFT + LEAF_BITS + TOP_BITS;
        for bit in top_bit..usize::BITS as usize {
            assert_eq!(
                page_of(((base + 5) | (1 << bit)) as *const u8),
                None,
                "bit {bit}"
            );
        }
        assert_eq!(page_of((1usize << top_bit) as *const u8), None);
        assert!(!insert_chunk(1 << top_bit, header));
        remove_chunk(base);
        assert_eq!(entry_at((base + 5) as *const u8), no_page());
    }
}
