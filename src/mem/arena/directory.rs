//! The chunk directory (hosted): per listed normal chunk, in list order,
//! a copy of its free and dirty slices and its class, in one dense array,
//! so that the span search reads consecutive memory instead of one chunk
//! header per chunk. Headers lie 4 MiB apart, in the same cache sets, so
//! the list walk missed the cache at every chunk: with 256 threads coming
//! and going (`make bench-storm`, ~700 chunks) first fit visited ~100
//! headers per search, under the arena lock.
//!
//! A copy, and only a hint: every site that changes a listed chunk's bits
//! calls [`sync`], and the search checks the chunk's own bits before it
//! takes a run (a stale entry costs a miss, never a wrong span). Entries
//! are in `seq` order (chunks are appended and unlinked, never moved), so
//! a chunk's entry is found by binary search. The array is reserved once,
//! outside the lock (`MAP_NORESERVE` address space: only the pages used
//! become memory); a process with more chunks than it holds, a failed
//! reservation, or a child after `fork` (which may have stopped a critical
//! section half way) stop using it: `valid` goes false and the search walks
//! the list, as embedded always does (few chunks; best fit).

use crate::mem::chunk::{Chunk, ChunkMeta};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// A chunk as the search sees it.
#[derive(Clone, Copy)]
pub(super) struct Entry {
    pub(super) free: u64,
    pub(super) dirty: u64,
    pub(super) chunk: *mut Chunk,
    pub(super) seq: u64,
    pub(super) class: u8,
}

/// Chunks the directory holds at most (4 TiB of normal chunks hosted).
const CAPACITY: usize = 1 << 20;

pub(super) struct Directory {
    entries: *mut Entry,
    len: usize,
    /// The entries mirror the chunk list.
    valid: bool,
}

impl Directory {
    pub(super) const EMPTY: Directory = Directory {
        entries: ptr::null_mut(),
        len: 0,
        valid: cfg!(feature = "hosted"),
    };

    /// The entries, when they mirror the list.
    pub(super) fn entries(&self) -> Option<&[Entry]> {
        if !self.valid {
            return None;
        }
        if self.entries.is_null() {
            return Some(&[]);
        }
        // SAFETY: the first `len` entries are written; the array is ours
        // (under the arena lock, as `self` is).
        Some(unsafe { core::slice::from_raw_parts(self.entries, self.len) })
    }

    /// The index of the chunk with `seq`.
    pub(super) fn index_of(&self, seq: u64) -> Option<usize> {
        self.entries()?.binary_search_by_key(&seq, |e| e.seq).ok()
    }

    /// Does it mirror the list that starts at `first`, entry by entry?
    /// True for an unused one (embedded, or after `fork`). Lock held.
    #[cfg(all(test, not(loom), feature = "hosted"))]
    pub(super) fn mirrors(&self, first: *mut Chunk) -> bool {
        let Some(entries) = self.entries() else {
            return true;
        };
        let mut chunk = first;
        let mut i = 0;
        while !chunk.is_null() {
            // SAFETY: listed chunks are live; the caller holds the lock.
            let meta = unsafe { Chunk::meta(chunk) };
            let same = entries.get(i).is_some_and(|e| {
                e.chunk == chunk
                    && e.seq == meta.seq
                    && e.free == meta.free
                    && e.dirty == meta.dirty
                    && e.class == meta.class
            });
            if !same {
                return false;
            }
            i += 1;
            chunk = meta.next;
        }
        i == entries.len()
    }

    /// Stop using the entries (the search walks the list from now on).
    pub(super) fn invalidate(&mut self) {
        self.valid = false;
    }
}

/// The reserved array (hosted), null until [`reserve`].
static RESERVED: AtomicPtr<Entry> = AtomicPtr::new(ptr::null_mut());

/// Reserve the array if it is not yet (lock not held: a system call).
/// A failure leaves the directory unused.
pub(super) fn reserve() {
    #[cfg(feature = "hosted")]
    {
        if !RESERVED.load(Ordering::Acquire).is_null() {
            return;
        }
        let bytes = CAPACITY * core::mem::size_of::<Entry>();
        if let Some(m) = crate::platform::os_reserve(bytes, crate::base::constants::OS_PAGE_SIZE) {
            let fresh = m.base.cast::<Entry>();
            if RESERVED
                .compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: our reservation, which nobody else saw.
                unsafe { crate::platform::os_free(m.base, bytes) };
            }
        }
    }
}

fn entry_of(meta: &ChunkMeta, chunk: *mut Chunk) -> Entry {
    Entry {
        free: meta.free,
        dirty: meta.dirty,
        chunk,
        seq: meta.seq,
        class: meta.class,
    }
}

/// `chunk` was appended to the list (its `seq` the highest). Lock held.
pub(super) fn push(dir: &mut Directory, chunk: *mut Chunk, meta: &ChunkMeta) {
    if !dir.valid {
        return;
    }
    if dir.entries.is_null() {
        dir.entries = RESERVED.load(Ordering::Acquire);
    }
    if dir.entries.is_null() || dir.len == CAPACITY {
        dir.invalidate();
        return;
    }
    // SAFETY: `len < CAPACITY`: inside the reservation.
    let slot = unsafe { dir.entries.add(dir.len) };
    // SAFETY: as above; ours under the lock.
    unsafe { slot.write(entry_of(meta, chunk)) };
    dir.len += 1;
}

/// `chunk` (with `seq`) left the list. Lock held.
pub(super) fn remove(dir: &mut Directory, seq: u64) {
    let Some(i) = dir.index_of(seq) else {
        dir.invalidate();
        return;
    };
    // SAFETY: `i < len`: inside the array.
    let to = unsafe { dir.entries.add(i) };
    let from = to.wrapping_add(1);
    // SAFETY: entries `i + 1..len` move down by one, inside the array.
    unsafe { ptr::copy(from, to, dir.len - i - 1) };
    dir.len -= 1;
}

/// A listed chunk's bits changed: copy them. Lock held.
pub(super) fn sync(dir: &mut Directory, chunk: *mut Chunk, meta: &ChunkMeta) {
    match dir.index_of(meta.seq) {
        Some(i) => {
            // SAFETY: `i < len`: inside the array.
            let slot = unsafe { dir.entries.add(i) };
            // SAFETY: as above; ours under the lock.
            unsafe { *slot = entry_of(meta, chunk) };
        }
        None => dir.invalidate(),
    }
}
