//! Embedded chunk memory: regions handed over by the embedder (and the
//! static default region), then an optional page provider.
//!
//! ```text
//! region (any base and size)
//! | slack | unit 0 | unit 1 | ...            | unit n-1 | slack |
//!          ^ CHUNK_SIZE (1 MiB) aligned, one bit per unit in `used`
//! ```
//!
//! - Chunks take runs of whole units of `CHUNK_SIZE` (first fit, at the alignment
//!   asked for), and give them back on [`os_free`]: freed memory is reused,
//!   runs coalesce because the bitmap is the only record.
//! - Metadata (heap structs, asked for in 64 KiB chunks that are never
//!   freed) is carved from the unaligned slack at either end of a region,
//!   then from a unit set aside for it, then from the page provider.
//! - Units a region never handed out read as zero when the region did (the
//!   static region lives in `.bss`), so `calloc` skips clearing them.
//! - The page provider (`mirs_page_provider_set`) is asked only when every
//!   region is full, and gets its memory back when the chunk is freed.
//!
//! Nothing is ever purged: memory stays with mirs (cached) or returns to
//! the region or provider.
//!
//! Addresses are handled as integers (bitmaps, alignment), but what is
//! handed out is a pointer derived from the region's (or the provider's)
//! own pointer with `with_addr`, so it keeps that memory's provenance: Miri
//! then checks every access mirs makes through it against the region. One short spin lock guards the bitmaps; it is
//! taken only on the chunk slow path,
//! never by `malloc` or `free` fast paths.

use crate::base::constants::{CHUNK_SHIFT, CHUNK_SIZE, OS_PAGE_SIZE};
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Regions mirs can manage at once (`mirs_region_add` calls, the static
/// region included).
pub const MAX_REGIONS: usize = 8;
/// Units (`CHUNK_SIZE`, 1 MiB) per region: 16 GiB; a larger region is
/// truncated.
const MAX_UNITS: usize = (16 << 30) >> CHUNK_SHIFT;
const WORDS: usize = MAX_UNITS / 64;
/// Unaligned leftovers kept for metadata (region slack, spare units).
const MAX_META: usize = 2 * MAX_REGIONS + 8;

#[derive(Clone, Copy)]
struct Region {
    /// The pointer the region was handed over with: provenance for what
    /// is carved from it.
    origin: *mut u8,
    /// First unit.
    base: usize,
    units: usize,
    /// Units at or above this index were never handed out.
    fresh: usize,
    /// The region read as zero when it was added.
    zeroed: bool,
    used: [u64; WORDS],
}

impl Region {
    const EMPTY: Region = Region {
        origin: core::ptr::null_mut(),
        base: 0,
        units: 0,
        fresh: 0,
        zeroed: false,
        used: [0; WORDS],
    };

    fn is_used(&self, unit: usize) -> bool {
        self.used[unit / 64] & (1 << (unit % 64)) != 0
    }

    fn mark(&mut self, first: usize, count: usize, on: bool) {
        for unit in first..first + count {
            // A unit is taken only when free and given back only when taken.
            debug_assert!(self.is_used(unit) != on, "unit {unit} already {on}");
            let bit = 1u64 << (unit % 64);
            if on {
                self.used[unit / 64] |= bit;
            } else {
                self.used[unit / 64] &= !bit;
            }
        }
    }

    fn contains(&self, addr: usize) -> bool {
        self.units > 0 && addr >= self.base && addr - self.base < self.units << CHUNK_SHIFT
    }

    /// First fit: `count` free units whose start address is `align`-aligned
    /// and that `fits` (the chunk map has room for them).
    fn find(&self, count: usize, align: usize, fits: impl Fn(usize) -> bool) -> Option<usize> {
        let mut unit = 0;
        while unit + count <= self.units {
            let addr = self.base + (unit << CHUNK_SHIFT);
            if !addr.is_multiple_of(align) {
                unit += (align - addr % align) >> CHUNK_SHIFT;
                continue;
            }
            match (unit..unit + count).rev().find(|&u| self.is_used(u)) {
                None if fits(addr) => return Some(unit),
                None => unit += 1,
                Some(taken) => unit = taken + 1,
            }
        }
        None
    }
}

struct State {
    regions: [Region; MAX_REGIONS],
    count: usize,
    /// Metadata ranges: `(next, end, origin)` (origin: provenance, as in `Region`).
    meta: [(usize, usize, *mut u8); MAX_META],
    #[cfg_attr(not(feature = "static-region"), allow(dead_code))]
    static_added: bool,
}

struct Locked {
    busy: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only reached through `with`, which holds `busy`.
unsafe impl Sync for Locked {}

static MEMORY: Locked = Locked {
    busy: AtomicBool::new(false),
    state: UnsafeCell::new(State {
        regions: [Region::EMPTY; MAX_REGIONS],
        count: 0,
        meta: [(0, 0, core::ptr::null_mut()); MAX_META],
        static_added: false,
    }),
};

impl Locked {
    /// Run `f` with the state locked (a short spin lock: held for a bitmap
    /// scan, never across a hook or a call back into the allocator).
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.busy.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
        // SAFETY: we hold the lock.
        let r = f(unsafe { &mut *self.state.get() });
        self.busy.store(false, Ordering::Release);
        r
    }
}

impl State {
    /// Keep `start..end` (page-rounded inwards) for metadata; false when it
    /// holds no page or the table of ranges is full.
    fn add_meta(&mut self, origin: *mut u8, start: usize, end: usize) -> bool {
        let start = start.next_multiple_of(OS_PAGE_SIZE);
        let end = end & !(OS_PAGE_SIZE - 1);
        if end <= start {
            return false;
        }
        match self.meta.iter_mut().find(|m| m.0 >= m.1) {
            Some(slot) => {
                *slot = (start, end, origin);
                true
            }
            None => false,
        }
    }

    /// Record a region; false when the table of regions is full or the
    /// region holds no unit and no page of slack.
    fn add_region(&mut self, origin: *mut u8, size: usize, zeroed: bool) -> bool {
        let start = origin.addr();
        let Some(end) = start.checked_add(size) else {
            return false;
        };
        let Some(first) = start.checked_next_multiple_of(CHUNK_SIZE) else {
            return false;
        };
        let units = if end > first {
            ((end - first) >> CHUNK_SHIFT).min(MAX_UNITS)
        } else {
            0
        };
        if units == 0 {
            return self.add_meta(origin, start, end);
        }
        if self.count == MAX_REGIONS {
            return false;
        }
        let units_end = first + (units << CHUNK_SHIFT);
        self.add_meta(origin, start, first);
        self.add_meta(origin, units_end, end);
        self.regions[self.count] = Region {
            origin,
            base: first,
            units,
            fresh: 0,
            zeroed,
            used: [0; WORDS],
        };
        self.count += 1;
        true
    }

    /// `count` units aligned to `align` from some region: (address, is_zero).
    /// Chunks go only where `placeable` says (the chunk map can record them).
    fn take_units(
        &mut self,
        count: usize,
        align: usize,
        placeable: Option<fn(usize, usize) -> bool>,
    ) -> Option<(*mut u8, bool)> {
        let size = count << CHUNK_SHIFT;
        let fits = |addr: usize| placeable.is_none_or(|ok| ok(addr, size));
        for region in &mut self.regions[..self.count] {
            if let Some(unit) = region.find(count, align, fits) {
                region.mark(unit, count, true);
                let is_zero = region.zeroed && unit >= region.fresh;
                region.fresh = region.fresh.max(unit + count);
                let addr = region.base + (unit << CHUNK_SHIFT);
                return Some((region.origin.with_addr(addr), is_zero));
            }
        }
        None
    }

    /// Give units back; false when `addr` lies in no region.
    fn give_units(&mut self, addr: usize, size: usize) -> bool {
        let Some(region) = self.regions[..self.count]
            .iter_mut()
            .find(|r| r.contains(addr))
        else {
            return false;
        };
        let unit = (addr - region.base) >> CHUNK_SHIFT;
        region.mark(unit, size.div_ceil(CHUNK_SIZE), false);
        true
    }

    /// Resize the chunk at `addr` (region memory) from `old` to `new`
    /// bytes where it lies: a shrink gives the units past the new end back,
    /// a growth takes the units right after it if they are free and lie in
    /// its region. False (nothing changed) otherwise, and for memory that
    /// is not a region's (the page provider's).
    fn resize_units(&mut self, addr: usize, old: usize, new: usize) -> bool {
        let Some(region) = self.regions[..self.count]
            .iter_mut()
            .find(|r| r.contains(addr))
        else {
            return false;
        };
        let unit = (addr - region.base) >> CHUNK_SHIFT;
        let (had, want) = (old.div_ceil(CHUNK_SIZE), new.div_ceil(CHUNK_SIZE));
        if want <= had {
            region.mark(unit + want, had - want, false);
            return true;
        }
        if unit + want > region.units || (unit + had..unit + want).any(|u| region.is_used(u)) {
            return false;
        }
        region.mark(unit + had, want - had, true);
        region.fresh = region.fresh.max(unit + want);
        true
    }

    /// Metadata from a slack range, refilled from a whole unit when needed.
    fn take_meta(&mut self, size: usize, align: usize) -> Option<*mut u8> {
        for _ in 0..2 {
            for m in self.meta.iter_mut() {
                let start = m.0.next_multiple_of(align);
                if start < m.1 && m.1 - start >= size {
                    m.0 = start + size;
                    return Some(m.2.with_addr(start));
                }
            }
            let (unit, _) = self.take_units(1, CHUNK_SIZE, None)?;
            if !self.add_meta(unit, unit.addr(), unit.addr() + CHUNK_SIZE) {
                self.give_units(unit.addr(), CHUNK_SIZE);
                return None;
            }
        }
        None
    }
}

// ---------------------------------------------------------------- the static region

/// The embedded default: a chunk-aligned region in `.bss`, sized at build
/// time by `MIRS_STATIC_REGION_MB` (build.rs), plus a little slack for
/// heap structs.
#[cfg(feature = "static-region")]
mod static_region {
    use crate::platform::config::STATIC_REGION_MB;
    use core::cell::UnsafeCell;

    /// Slack after the last unit, used for metadata (heap structs).
    const META_BYTES: usize = 256 * 1024;
    pub const SIZE: usize = STATIC_REGION_MB * 1024 * 1024 + META_BYTES;

    // `align` takes a literal: CHUNK_SIZE (1 MiB), checked below.
    #[repr(C, align(1048576))]
    pub struct Aligned(pub UnsafeCell<[u8; SIZE]>);
    const _: () = {
        use crate::base::constants::CHUNK_SIZE;
        assert!(core::mem::align_of::<Aligned>() == CHUNK_SIZE);
        // A whole number of chunks (build.rs takes any number of MiB).
        assert!((STATIC_REGION_MB << 20).is_multiple_of(CHUNK_SIZE));
    };

    // SAFETY: mirs hands its bytes out only through the region bitmap.
    unsafe impl Sync for Aligned {}

    pub static REGION: Aligned = Aligned(UnsafeCell::new([0; SIZE]));
}

/// Register the static region on first use.
#[inline]
fn ensure_static(state: &mut State) {
    #[cfg(feature = "static-region")]
    if !state.static_added {
        state.static_added = true;
        let base = static_region::REGION.0.get().cast::<u8>();
        state.add_region(base, static_region::SIZE, true);
    }
    #[cfg(not(feature = "static-region"))]
    let _ = state;
}

// ---------------------------------------------------------------- page provider

/// `alloc(size, align)`: `size` bytes (a multiple of 4 KiB) aligned to
/// `align` (a power of two, 4 KiB to `CHUNK_SIZE` or more), or NULL.
pub type PageAlloc = unsafe extern "C" fn(size: usize, align: usize) -> *mut c_void;
/// `free(ptr, size)`: memory from `PageAlloc` with the same size.
pub type PageFree = unsafe extern "C" fn(ptr: *mut c_void, size: usize);

static PROVIDER_ALLOC: AtomicUsize = AtomicUsize::new(0);
static PROVIDER_FREE: AtomicUsize = AtomicUsize::new(0);

pub fn set_page_provider(alloc: Option<PageAlloc>, free: Option<PageFree>) {
    PROVIDER_FREE.store(free.map_or(0, |f| f as usize), Ordering::Release);
    PROVIDER_ALLOC.store(alloc.map_or(0, |f| f as usize), Ordering::Release);
}

/// Bytes mirs may hold from the page provider at once: the build-time
/// `MIRS_PROVIDER_MAX_MB` (0: no cap), changed at run time by
/// `mirs_provider_limit`. The provider usually hands out the embedder's own
/// heap (ArceOS: the kernel's), which must not be starved.
static PROVIDER_LIMIT: AtomicUsize =
    AtomicUsize::new(if crate::platform::config::PROVIDER_MAX_MB == 0 {
        usize::MAX
    } else {
        crate::platform::config::PROVIDER_MAX_MB << 20
    });
/// Bytes mirs holds from the page provider now.
static PROVIDER_HELD: AtomicUsize = AtomicUsize::new(0);

/// Cap the page provider's memory held by mirs at `bytes` (0: no cap).
/// Memory already held above a new, lower cap is kept until freed.
pub fn set_provider_limit(bytes: usize) {
    let limit = if bytes == 0 { usize::MAX } else { bytes };
    PROVIDER_LIMIT.store(limit, Ordering::Relaxed);
}

fn provider_alloc(size: usize, align: usize) -> Option<*mut u8> {
    let f = PROVIDER_ALLOC.load(Ordering::Acquire);
    if f == 0 {
        return None;
    }
    // Reserve the bytes under the cap first, so racing threads cannot overshoot it.
    let limit = PROVIDER_LIMIT.load(Ordering::Relaxed);
    PROVIDER_HELD
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |held| {
            held.checked_add(size).filter(|&t| t <= limit)
        })
        .ok()?;
    // SAFETY: a non-zero value was stored from a `PageAlloc` function pointer.
    let alloc: PageAlloc = unsafe { core::mem::transmute::<usize, PageAlloc>(f) };
    // SAFETY: the embedder's hook; the contract is documented on `PageAlloc`.
    let p = unsafe { alloc(size, align) }.cast::<u8>();
    if !p.is_null() && p.addr().is_multiple_of(align) {
        return Some(p);
    }
    if !p.is_null() {
        provider_free(p, size);
    } else {
        PROVIDER_HELD.fetch_sub(size, Ordering::AcqRel);
    }
    None
}

fn provider_free(addr: *mut u8, size: usize) {
    let f = PROVIDER_FREE.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: as in `provider_alloc`.
        let free: PageFree = unsafe { core::mem::transmute::<usize, PageFree>(f) };
        // SAFETY: `addr..addr+size` came from the provider's alloc.
        unsafe { free(addr.cast::<c_void>(), size) };
    }
    PROVIDER_HELD.fetch_sub(size, Ordering::AcqRel);
}

/// Chunk memory from the provider, at an address the chunk map can
/// record (a provider whose memory spans more than 4 GiB may hand out
/// colliding runs: those are kept aside while asking again, then returned).
fn provider_chunk(
    size: usize,
    align: usize,
    placeable: fn(usize, usize) -> bool,
) -> Option<(*mut u8, bool)> {
    const TRIES: usize = 4;
    let mut rejected = [core::ptr::null_mut::<u8>(); TRIES];
    let mut found = None;
    for slot in rejected.iter_mut() {
        let Some(p) = provider_alloc(size, align) else {
            break;
        };
        if placeable(p.addr(), size) {
            found = Some((p, false));
            break;
        }
        *slot = p;
    }
    for &p in rejected.iter().filter(|p| !p.is_null()) {
        provider_free(p, size);
    }
    found
}

// ---------------------------------------------------------------- the platform functions

/// Hand over a region; false when it cannot be used (see `mirs_region_add`).
pub fn region_add(base: *mut u8, size: usize, zeroed: bool) -> bool {
    MEMORY.with(|s| {
        ensure_static(s);
        s.add_region(base, size, zeroed)
    })
}

/// Memory for a chunk (`align >= CHUNK_SIZE`) or for metadata (smaller
/// alignment, never freed): regions first, then the page provider.
pub fn alloc(
    size: usize,
    align: usize,
    placeable: fn(usize, usize) -> bool,
) -> Option<(*mut u8, bool)> {
    if align >= CHUNK_SIZE || size >= CHUNK_SIZE {
        let align = align.max(CHUNK_SIZE);
        let units = size.div_ceil(CHUNK_SIZE);
        if let Some(found) = MEMORY.with(|s| {
            ensure_static(s);
            s.take_units(units, align, Some(placeable))
        }) {
            return Some(found);
        }
        return provider_chunk(size.next_multiple_of(OS_PAGE_SIZE), align, placeable);
    }
    if let Some(p) = MEMORY.with(|s| {
        ensure_static(s);
        s.take_meta(size, align.max(OS_PAGE_SIZE))
    }) {
        return Some((p, false));
    }
    provider_alloc(size.next_multiple_of(OS_PAGE_SIZE), align.max(OS_PAGE_SIZE)).map(|p| (p, false))
}

/// Bytes of region memory (all regions), for tests.
#[cfg(test)]
pub fn region_bytes() -> usize {
    MEMORY.with(|s| {
        s.regions[..s.count]
            .iter()
            .map(|r| r.units << CHUNK_SHIFT)
            .sum()
    })
}

/// Resize a chunk of region memory where it lies (realloc of a huge
/// block): false when the units after it are taken, or it is not region
/// memory.
pub fn resize(addr: *mut u8, old: usize, new: usize) -> bool {
    MEMORY.with(|s| s.resize_units(addr.addr(), old, new))
}

/// Give chunk memory back (to its region, else to the page provider).
pub fn free(addr: *mut u8, size: usize) {
    if !MEMORY.with(|s| s.give_units(addr.addr(), size)) {
        provider_free(addr, size.next_multiple_of(OS_PAGE_SIZE));
    }
}
