//! A free block: the first word of free memory links it into a free list.
//!
//! ```text
//! page.free -> [next|........] -> [next|........] -> null
//! ```
//! Only free blocks are `Block`s; a block handed to a caller is plain memory.

use core::ptr;

#[repr(C)]
pub struct Block {
    next: *mut Block,
}

impl Block {
    /// # Safety
    /// `block` points at a free block of a live page.
    #[inline(always)]
    pub unsafe fn next(block: *mut Block) -> *mut Block {
        // SAFETY: the caller guarantees a free block, whose first word is the link.
        unsafe { (*block).next }
    }

    /// # Safety
    /// `block` points at memory of at least one word that the caller owns.
    #[inline(always)]
    pub unsafe fn set_next(block: *mut Block, next: *mut Block) {
        // SAFETY: the caller owns the block; writing its first word is in bounds.
        unsafe { (*block).next = next }
    }

    /// Length and last block of a list.
    ///
    /// # Safety
    /// `head` starts a well-formed, null-terminated list of free blocks.
    pub unsafe fn count_and_tail(head: *mut Block) -> (usize, *mut Block) {
        let (mut count, mut tail, mut cur) = (0, ptr::null_mut(), head);
        while !cur.is_null() {
            count += 1;
            tail = cur;
            // SAFETY: `cur` is a member of the list.
            cur = unsafe { Block::next(cur) };
        }
        (count, tail)
    }

    /// Does the list starting at `head` contain `block`?
    ///
    /// # Safety
    /// As for [`Block::count_and_tail`].
    pub unsafe fn list_contains(head: *mut Block, block: *mut Block) -> bool {
        let mut cur = head;
        while !cur.is_null() {
            if cur == block {
                return true;
            }
            // SAFETY: `cur` is a member of the list.
            cur = unsafe { Block::next(cur) };
        }
        false
    }
}
