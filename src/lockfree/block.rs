//! A free block: the first word of free memory links it into a free list.
//!
//! ```text
//! page.free -> [next|........] -> [next|........] -> null
//! ```
//! Only free blocks are `Block`s; a block handed to a caller is plain memory.
//!
//! A page's lists store their links through its [`ListKey`], encoded with a
//! secret per-page key in every build (the idea of glibc's safe-linking), so
//! neither a use-after-free write nor a small overflow from the block below
//! can plant a pointer that malloc would follow: the forged or damaged link
//! decodes to an address outside the page, which `pop_free` refuses before
//! it follows it. Default: `rotl(p ^ k, 17)`, two instructions each way;
//! `secure`: two keys and a per-page rotation, and every link checked to be
//! a block start.

#[repr(C)]
pub struct Block {
    #[cfg(not(loom))]
    next: usize,
    /// Under loom a tracked cell, so the models see every link read and
    /// write of the real lists (a read not ordered after the write is reported).
    #[cfg(loom)]
    next: loom::cell::UnsafeCell<usize>,
}

/// How a page stores free-list links: a secret key per page.
#[derive(Clone, Copy)]
pub struct ListKey {
    #[cfg(not(feature = "secure"))]
    k: usize,
    #[cfg(feature = "secure")]
    k: [usize; 2],
}

/// Default build: the fixed rotation of a stored link. Any change to a
/// stored link's low byte (where an overflow from the block below lands
/// first, on a little-endian machine) moves the decoded pointer's bits
/// 47..54: far outside any page.
#[cfg(not(feature = "secure"))]
const LINK_ROTATION: u32 = 17;

impl ListKey {
    /// No secret key (heap delayed lists, tests): links are only rotated.
    #[cfg(not(feature = "secure"))]
    pub const PLAIN: ListKey = ListKey { k: 0 };
    #[cfg(feature = "secure")]
    pub const PLAIN: ListKey = ListKey { k: [0, 0] };

    /// A key from two random words (the default build uses the first).
    pub fn new(random: [usize; 2]) -> ListKey {
        #[cfg(feature = "secure")]
        {
            ListKey { k: random }
        }
        #[cfg(not(feature = "secure"))]
        {
            ListKey { k: random[0] }
        }
    }

    /// Between 8 and 42: a change to a stored link's low byte (a one-byte
    /// overflow from the block below) moves the decoded pointer by a
    /// multiple of 4 MiB (bits 22 and up), out of the page, where `pop_free`
    /// refuses it; with a rotation of 57-63 it would stay inside.
    #[cfg(feature = "secure")]
    #[inline(always)]
    fn rotation(self) -> u32 {
        8 + (self.k[1] as u32 % 35)
    }

    /// Secure: `((p + k0) rotl r) ^ k1`; default: `(p ^ k) rotl 17`. A word
    /// written by the program decodes to garbage, not to a chosen address.
    #[inline(always)]
    pub fn encode(self, p: *mut Block) -> usize {
        #[cfg(feature = "secure")]
        {
            ((p as usize).wrapping_add(self.k[0])).rotate_left(self.rotation()) ^ self.k[1]
        }
        #[cfg(not(feature = "secure"))]
        {
            (p as usize ^ self.k).rotate_left(LINK_ROTATION)
        }
    }

    #[inline(always)]
    pub fn decode(self, v: usize) -> *mut Block {
        #[cfg(feature = "secure")]
        {
            ((v ^ self.k[1]).rotate_right(self.rotation())).wrapping_sub(self.k[0]) as *mut Block
        }
        #[cfg(not(feature = "secure"))]
        {
            (v.rotate_right(LINK_ROTATION) ^ self.k) as *mut Block
        }
    }

    /// A small PRNG stream derived from the key (secure carving order).
    #[cfg(feature = "secure")]
    pub fn seed(self) -> u64 {
        (self.k[0] ^ self.k[1].rotate_left(17)) as u64 | 1
    }
}

impl Block {
    /// The next block of a plain list.
    ///
    /// # Safety
    /// `block` points at a free block of a live page.
    #[inline(always)]
    pub unsafe fn next(block: *mut Block) -> *mut Block {
        // SAFETY: as the caller guarantees.
        unsafe { Block::next_with(block, ListKey::PLAIN) }
    }

    /// # Safety
    /// `block` points at memory of at least one word that the caller owns.
    #[inline(always)]
    pub unsafe fn set_next(block: *mut Block, next: *mut Block) {
        // SAFETY: as the caller guarantees.
        unsafe { Block::set_next_with(block, next, ListKey::PLAIN) }
    }

    /// The next block of a list stored with `key`.
    ///
    /// # Safety
    /// `block` points at a free block of a live page.
    #[inline(always)]
    pub unsafe fn next_with(block: *mut Block, key: ListKey) -> *mut Block {
        // SAFETY: the caller guarantees a free block, whose first word is the link.
        key.decode(unsafe { Block::load_link(block) })
    }

    /// # Safety
    /// `block` points at memory of at least one word that the caller owns.
    #[inline(always)]
    pub unsafe fn set_next_with(block: *mut Block, next: *mut Block, key: ListKey) {
        // SAFETY: the caller owns the block; writing its first word is in bounds.
        unsafe { Block::store_link(block, key.encode(next)) }
    }

    /// # Safety
    /// `block` points at a readable word.
    #[cfg(not(loom))]
    #[inline(always)]
    unsafe fn load_link(block: *mut Block) -> usize {
        // SAFETY: as the caller guarantees.
        unsafe { (*block).next }
    }

    /// # Safety
    /// `block` points at a writable word the caller owns.
    #[cfg(not(loom))]
    #[inline(always)]
    unsafe fn store_link(block: *mut Block, v: usize) {
        // SAFETY: as the caller guarantees.
        unsafe { (*block).next = v }
    }

    /// # Safety
    /// `block` points at a live `Block` made by [`Block::for_model`].
    #[cfg(loom)]
    unsafe fn load_link(block: *mut Block) -> usize {
        // SAFETY: as the caller guarantees; loom checks the read is ordered
        // after the last write.
        unsafe { (*block).next.with(|p| *p) }
    }

    /// # Safety
    /// As for the loom `load_link`.
    #[cfg(loom)]
    unsafe fn store_link(block: *mut Block, v: usize) {
        // SAFETY: as the caller guarantees; loom checks the write races with nothing.
        unsafe { (*block).next.with_mut(|p| *p = v) }
    }

    /// A free block for the loom models (a tracked link, null).
    #[cfg(loom)]
    pub fn for_model() -> Block {
        Block {
            next: loom::cell::UnsafeCell::new(0),
        }
    }

    /// Does the block's second word hold `mark`, the value every free block
    /// of its page holds there ([`Block::set_free_mark`])?
    ///
    /// # Safety
    /// `block` points at a block (at least two words) the caller may read:
    /// its owner, or the thread freeing it.
    #[inline(always)]
    pub unsafe fn has_free_mark(block: *mut Block, mark: usize) -> bool {
        // SAFETY: as the caller guarantees; blocks are at least 16 bytes.
        unsafe { mark_word(block).read() == mark }
    }

    /// Mark a block being freed: its second word holds `mark` while it is
    /// free. A block handed out has it cleared ([`Block::clear_free_mark`]),
    /// so a second free of the same block finds the mark and is refused.
    ///
    /// # Safety
    /// `block` points at a block (at least two words) the caller is freeing.
    #[inline(always)]
    pub unsafe fn set_free_mark(block: *mut Block, mark: usize) {
        // SAFETY: as the caller guarantees.
        unsafe { mark_word(block).write(mark) }
    }

    /// Clear the free mark of a block being handed out.
    ///
    /// # Safety
    /// `block` points at a block (at least two words) the caller owns.
    #[inline(always)]
    pub unsafe fn clear_free_mark(block: *mut Block) {
        // SAFETY: as the caller guarantees.
        unsafe { mark_word(block).write(0) }
    }

    /// Length and last block of a list stored with `key`.
    ///
    /// # Safety
    /// `head` starts a well-formed, null-terminated list of free blocks.
    #[cfg(any(test, feature = "internals"))]
    pub unsafe fn count_and_tail(head: *mut Block, key: ListKey) -> (usize, *mut Block) {
        let (mut count, mut tail, mut cur) = (0, core::ptr::null_mut(), head);
        while !cur.is_null() {
            count += 1;
            tail = cur;
            // SAFETY: `cur` is a member of the list.
            cur = unsafe { Block::next_with(cur, key) };
        }
        (count, tail)
    }
}

/// A block's second word, where a free block holds its page's free mark.
#[inline(always)]
fn mark_word(block: *mut Block) -> *mut usize {
    block.cast::<usize>().wrapping_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_hides_pointers() {
        let key = ListKey::new([0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321]);
        for p in [0usize, 8, 0x7fff_dead_b000, usize::MAX & !7] {
            assert_eq!(key.decode(key.encode(p as *mut Block)) as usize, p);
        }
        assert_ne!(
            key.encode(core::ptr::null_mut()),
            0,
            "null is not stored as zero"
        );
        assert_ne!(key.encode(0x7fff_0000_1000 as *mut Block), 0x7fff_0000_1000);
    }

    /// An overflow from the block below rewrites a stored link from its low
    /// byte up: whatever it writes, the decoded pointer leaves the 512 KiB
    /// around the true one (no page is bigger), so `pop_free` refuses it.
    #[test]
    fn overflow_into_a_link_leaves_the_page() {
        let key = ListKey::new([0x5bd1_e995_3c6e_f372, 0x0fed_cba9_8765_4321]);
        let next = 0x7f3a_1240_0100usize;
        let stored = key.encode(next as *mut Block);
        for len in 1..=8 {
            for byte in [0u8, 0x41, 0xff, 0x10] {
                let mut bytes = stored.to_le_bytes();
                bytes[..len].fill(byte);
                let forged = usize::from_le_bytes(bytes);
                if forged == stored {
                    continue;
                }
                let decoded = key.decode(forged) as usize;
                assert!(
                    decoded.abs_diff(next) >= 512 << 10,
                    "len {len} byte {byte:#x}: {decoded:#x}"
                );
            }
        }
    }
}
