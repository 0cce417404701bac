//! A heap's queue of pages of one bin (or the full / huge queues): a doubly
//! linked list through `Page::next` / `Page::prev`. The first page is where
//! malloc allocates; `Heap` mirrors it into `pages_direct`.

use crate::page::Page;
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
    /// `page` is live and in no queue.
    pub unsafe fn push_front(&mut self, page: *mut Page) {
        // SAFETY: the caller guarantees `page` is live and unlinked; `first`
        // is a live member of this queue or null.
        unsafe {
            (*page).prev = ptr::null_mut();
            (*page).next = self.first;
            if self.first.is_null() {
                self.last = page;
            } else {
                (*self.first).prev = page;
            }
        }
        self.first = page;
    }

    /// # Safety
    /// `page` is live and in no queue.
    pub unsafe fn push_back(&mut self, page: *mut Page) {
        // SAFETY: as in `push_front`.
        unsafe {
            (*page).next = ptr::null_mut();
            (*page).prev = self.last;
            if self.last.is_null() {
                self.first = page;
            } else {
                (*self.last).next = page;
            }
        }
        self.last = page;
    }

    /// # Safety
    /// `page` is a member of this queue.
    pub unsafe fn remove(&mut self, page: *mut Page) {
        // SAFETY: `page` and its neighbours are live members of this queue.
        unsafe {
            let (prev, next) = ((*page).prev, (*page).next);
            if prev.is_null() {
                self.first = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                self.last = prev;
            } else {
                (*next).prev = prev;
            }
            (*page).next = ptr::null_mut();
            (*page).prev = ptr::null_mut();
        }
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
        // SAFETY: queue members are live pages.
        self.cur = unsafe { (*page).next };
        Some(page)
    }
}
