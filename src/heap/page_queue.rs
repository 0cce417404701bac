//! A heap's queue of pages of one bin (or the full / huge queues): a doubly
//! linked list through `Page::next` / `Page::prev`. The first page is where
//! malloc allocates; `Heap` mirrors it into `pages_direct`.

use crate::mem::page::{OwnedPage, Page};
use core::ptr;

#[repr(C)]
pub struct PageQueue {
    pub(crate) first: *mut Page,
    pub(crate) last: *mut Page,
    /// Block size of the bin (0 for the full queue, the huge queue holds any).
    pub(crate) block_size: usize,
}

impl PageQueue {
    pub const fn new(block_size: usize) -> PageQueue {
        PageQueue {
            first: ptr::null_mut(),
            last: ptr::null_mut(),
            block_size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_null()
    }

    /// # Safety
    /// `page` is live and in no queue; the caller owns it and this queue's
    /// pages (the queue belongs to the caller's heap).
    pub unsafe fn push_front(&mut self, page: *mut Page) {
        // SAFETY: as the caller guarantees.
        let pg = unsafe { Page::owned(page) };
        // SAFETY: `first` is a live member of this queue or null.
        let first = unsafe { owned_or_null(self.first) };
        pg.set_prev(ptr::null_mut());
        pg.set_next(self.first);
        match first {
            None => self.last = page,
            Some(first) => first.set_prev(page),
        }
        self.first = page;
    }

    /// # Safety
    /// As for [`PageQueue::push_front`].
    pub unsafe fn push_back(&mut self, page: *mut Page) {
        // SAFETY: as in `push_front`.
        let pg = unsafe { Page::owned(page) };
        // SAFETY: `last` is a live member of this queue or null.
        let last = unsafe { owned_or_null(self.last) };
        pg.set_next(ptr::null_mut());
        pg.set_prev(self.last);
        match last {
            None => self.first = page,
            Some(last) => last.set_next(page),
        }
        self.last = page;
    }

    /// # Safety
    /// `page` is a member of this queue, whose pages the caller owns.
    pub unsafe fn remove(&mut self, page: *mut Page) {
        // SAFETY: `page` and its neighbours are live members of this queue.
        let pg = unsafe { Page::owned(page) };
        let (prev, next) = (pg.prev(), pg.next());
        // SAFETY: as above.
        match unsafe { owned_or_null(prev) } {
            None => self.first = next,
            Some(prev) => prev.set_next(next),
        }
        // SAFETY: as above.
        match unsafe { owned_or_null(next) } {
            None => self.last = prev,
            Some(next) => next.set_prev(prev),
        }
        pg.set_next(ptr::null_mut());
        pg.set_prev(ptr::null_mut());
    }

    /// Iterate over the pages (the iterator reads `next` before yielding, so
    /// the current page may be unlinked while iterating).
    pub fn iter(&self) -> PageIter {
        PageIter { cur: self.first }
    }
}

pub struct PageIter {
    cur: *mut Page,
}

impl Iterator for PageIter {
    type Item = *mut Page;
    fn next(&mut self) -> Option<*mut Page> {
        let page = self.cur;
        if page.is_null() {
            return None;
        }
        // SAFETY: queue members are live pages of the iterating heap's thread.
        self.cur = unsafe { Page::owned(page) }.next();
        Some(page)
    }
}

/// The owner's handle on a queue neighbour, None for null.
///
/// # Safety
/// `page` is null or a live page the caller owns.
unsafe fn owned_or_null(page: *mut Page) -> Option<OwnedPage> {
    // SAFETY: as the caller guarantees.
    (!page.is_null()).then(|| unsafe { Page::owned(page) })
}
