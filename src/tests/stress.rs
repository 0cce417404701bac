//! Multi-threaded stress with verification.
//!
//! Parameters: `THREADS` threads per round, `ROUNDS` rounds of create/join,
//! `OPS` operations per thread per round; sizes from 0 to 4 MiB (mostly
//! small); every block is filled with a pattern derived from its id and
//! checked before it is freed; about a third of the blocks go through a
//! shared array of atomic slots (swap), so other threads free them and many
//! outlive the thread that allocated them. At the end every heap and every
//! abandoned page is walked with the invariant checks, and no live block
//! may remain anywhere.

use super::api;
use crate::base::constants::LARGE_OBJ_SIZE_MAX;
use crate::entry::alloc;
use crate::mem::arena;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::vec::Vec;

const THREADS: usize = 8;
const ROUNDS: usize = 4;
const OPS: usize = if cfg!(debug_assertions) {
    6_000
} else {
    40_000
};
const SLOTS: usize = 512;

/// A block in flight: a header at its start records the id and size, so the
/// thread that frees it can check the whole pattern.
#[repr(C)]
struct Header {
    id: u64,
    size: usize,
}

const HEADER: usize = std::mem::size_of::<Header>();

fn pattern_byte(id: u64, i: usize) -> u8 {
    (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 ^ (i as u8).wrapping_mul(31)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn size(&mut self) -> usize {
        match self.below(1000) {
            0..=899 => self.below(1025) as usize,
            900..=989 => self.below(64 * 1024) as usize,
            _ => self.below(4 << 20) as usize,
        }
    }
}

struct Shared {
    slots: Vec<AtomicPtr<u8>>,
    next_id: AtomicU64,
    live_bytes: AtomicUsize,
    checked: AtomicU64,
}

/// Allocate and fill a block; tiny requests get no header (they are tracked
/// by the local list only), larger ones carry it for cross-thread checks.
fn make_block(shared: &Shared, size: usize) -> *mut u8 {
    let size = size.max(HEADER);
    let p = alloc::malloc(size);
    assert!(!p.is_null(), "malloc({size}) failed");
    assert!(api::usable_size(p) >= size);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    // SAFETY: `p` has at least `size >= HEADER` writable bytes.
    unsafe {
        p.cast::<Header>().write(Header { id, size });
        for i in HEADER..size {
            *p.add(i) = pattern_byte(id, i);
        }
    }
    shared.live_bytes.fetch_add(size, Ordering::Relaxed);
    p
}

fn check_and_free(shared: &Shared, p: *mut u8) {
    // SAFETY: `p` is a live block made by `make_block`.
    unsafe {
        let Header { id, size } = p.cast::<Header>().read();
        assert!(api::usable_size(p) >= size, "usable size shrank");
        for i in HEADER..size {
            assert_eq!(
                *p.add(i),
                pattern_byte(id, i),
                "block {id} corrupted at byte {i} of {size}"
            );
        }
        shared.live_bytes.fetch_sub(size, Ordering::Relaxed);
    }
    shared.checked.fetch_add(1, Ordering::Relaxed);
    api::free(p);
}

fn worker(shared: &Shared, seed: u64) {
    let mut rng = Rng(seed | 1);
    let mut mine: Vec<*mut u8> = Vec::new();
    for _ in 0..OPS {
        match rng.below(6) {
            // allocate
            0..=2 => mine.push(make_block(shared, rng.size())),
            // free one of ours
            3 => {
                if !mine.is_empty() {
                    let i = rng.below(mine.len() as u64) as usize;
                    check_and_free(shared, mine.swap_remove(i));
                }
            }
            // exchange through the shared slots: about a third of all blocks
            _ => {
                let block = if mine.is_empty() || rng.below(2) == 0 {
                    make_block(shared, rng.size())
                } else {
                    mine.swap_remove(rng.below(mine.len() as u64) as usize)
                };
                let slot = &shared.slots[rng.below(SLOTS as u64) as usize];
                let theirs = slot.swap(block, Ordering::AcqRel);
                if !theirs.is_null() {
                    if rng.below(2) == 0 {
                        check_and_free(shared, theirs);
                    } else {
                        mine.push(theirs);
                    }
                }
            }
        }
    }
    // Leave some blocks behind in the slots (they outlive this thread), free the rest.
    for p in mine {
        let slot = &shared.slots[rng.below(SLOTS as u64) as usize];
        let theirs = slot.swap(p, Ordering::AcqRel);
        if !theirs.is_null() {
            check_and_free(shared, theirs);
        }
    }
    // The exiting thread's heap is consistent before it is abandoned.
    crate::thread::check_current();
}

#[test]
fn threads_exchange_blocks_and_everything_is_accounted_for() {
    let shared = Arc::new(Shared {
        slots: (0..SLOTS)
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect(),
        next_id: AtomicU64::new(1),
        live_bytes: AtomicUsize::new(0),
        checked: AtomicU64::new(0),
    });
    for round in 0..ROUNDS {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    worker(&shared, (round * THREADS + t) as u64 * 7919 + 17)
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // Between rounds: blocks of exited threads sit in abandoned pages
        // and in the slots; the walk checks every page's invariants.
        // Every block still live sits in a slot, so the allocator's count of
        // live blocks over all abandoned pages must equal the slot count
        // (singletons, above the size classes, belong to no page queue).
        let in_slots = shared
            .slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|p| !p.is_null() && api::usable_size(*p) <= LARGE_OBJ_SIZE_MAX)
            .count();
        assert_eq!(
            walk_abandoned(),
            in_slots,
            "live blocks in abandoned pages vs. blocks held"
        );
        assert!(
            arena::directory_mirrors_list(),
            "the chunk directory copies the list"
        );
    }
    for slot in &shared.slots {
        let p = slot.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            check_and_free(&shared, p);
        }
    }
    assert_eq!(shared.live_bytes.load(Ordering::Relaxed), 0);
    assert!(shared.checked.load(Ordering::Relaxed) > (THREADS * ROUNDS * OPS / 4) as u64);
    // Every block was freed: nothing live may remain in this thread's heap or
    // in any abandoned page (frees by this thread pushed them there).
    crate::thread::collect_current(false);
    assert_eq!(
        crate::thread::check_current(),
        0,
        "live blocks left in the main heap"
    );
    assert_eq!(walk_abandoned(), 0, "live blocks left in abandoned pages");
    crate::collect(true);
    assert!(
        arena::directory_mirrors_list(),
        "the chunk directory copies the list"
    );
}

/// Walk every abandoned page (the process is quiescent: all workers have
/// exited) and check each; returns the live blocks found.
fn walk_abandoned() -> usize {
    let mut live = 0;
    arena::for_each_abandoned(|page| {
        // SAFETY: an abandoned page stays in place while it is marked, and
        // no other thread touches it in a quiescent process: the caller
        // (holding the arena lock) acts as its owner.
        live += unsafe { crate::mem::page::Page::owned(page) }.check_invariants();
    });
    live
}

/// realloc remaps huge blocks (issue 20) while other threads free pointers
/// into them and allocate huge blocks of their own: a remapped chunk leaves
/// the chunk map before its header moves and comes back after, so a stale
/// or interior pointer is refused, never followed into unmapped memory, and
/// every block keeps its contents.
#[test]
fn huge_reallocs_race_with_invalid_frees() {
    const STEPS: usize = if cfg!(debug_assertions) { 60 } else { 200 };
    let current = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let probes = Arc::new(AtomicUsize::new(0));
    let prober = {
        let (current, done, probes) = (current.clone(), done.clone(), probes.clone());
        std::thread::spawn(move || {
            while done.load(Ordering::Acquire) == 0 {
                let p = current.load(Ordering::Acquire);
                if p != 0 {
                    // Interior: never a block start, whatever lies there now.
                    api::free((p + (1 << 20) + 64) as *mut u8);
                    probes.fetch_add(1, Ordering::AcqRel);
                }
                let own = alloc::malloc(5 << 20);
                assert!(!own.is_null());
                // SAFETY: our fresh block of 5 MiB.
                unsafe { core::ptr::write_bytes(own, 0x77, 5 << 20) };
                let own = api::realloc(own, 9 << 20);
                // SAFETY: the first 5 MiB were kept.
                assert_eq!(unsafe { *own.add((5 << 20) - 1) }, 0x77);
                api::free(own);
            }
        })
    };
    let mut p = alloc::malloc(5 << 20);
    let mut len = 5usize << 20;
    // SAFETY: a fresh block of `len` bytes.
    unsafe { core::ptr::write_bytes(p, 0xab, len) };
    for step in 0..STEPS {
        // Keep pace with the prober, so the two really overlap.
        while probes.load(Ordering::Acquire) < step / 2 {
            std::thread::yield_now();
        }
        let new_len = if step % 3 == 2 {
            len / 3
        } else {
            len + len / 2
        }
        .clamp(5 << 20, 96 << 20);
        current.store(0, Ordering::Release);
        let q = api::realloc(p, new_len);
        assert!(!q.is_null());
        let kept = len.min(new_len);
        // SAFETY: a live block of at least `new_len` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(q, kept) };
        assert!(bytes[..4096].iter().all(|&b| b == 0xab));
        assert!(bytes[kept - 4096..].iter().all(|&b| b == 0xab));
        if new_len > kept {
            // SAFETY: as above.
            unsafe { core::ptr::write_bytes(q.add(kept), 0xab, new_len - kept) };
        }
        current.store(q as usize, Ordering::Release);
        p = q;
        len = new_len;
    }
    done.store(1, Ordering::Release);
    prober.join().unwrap();
    assert!(probes.load(Ordering::Acquire) >= STEPS / 2 - 1);
    api::free(p);
    crate::thread::check_current();
}
