//! Pointers packed with metadata in their top 16 bits (the `thread_free`
//! word's length, the tagged stack's ABA tag): only the low 48 bits of the
//! address are stored, and unpacking restores the top 16 from an anchor, the
//! address of a static of this library.
//!
//! Sign-extending bit 47 instead would break on kernels whose memory has it
//! clear under all-ones top bits (ArceOS on aarch64: `0xffff_0000_4xxx_xxxx`).
//! Every address mirs packs is a block or node in mirs's own memory, which
//! lies in the same half of the address space as its statics: user space
//! (top bits 0) hosted, the kernel's higher half embedded. The arena refuses
//! memory whose top bits differ ([`same_half`]), so the rule cannot break.

/// Address bits stored.
pub const ADDR_BITS: u32 = 48;
/// The stored part of an address.
pub const ADDR_MASK: usize = (1 << ADDR_BITS) - 1;

static ANCHOR: u8 = 0;

/// The top 16 bits every packed address shares. Hosted (Linux user space,
/// which the kernel keeps below 2^47 unless a mapping asks for more, and
/// mirs never does) they are 0: a constant, so unpacking costs one `and`.
#[inline(always)]
fn high_bits() -> usize {
    if cfg!(feature = "hosted") {
        0
    } else {
        core::ptr::addr_of!(ANCHOR) as usize & !ADDR_MASK
    }
}

/// The address whose low 48 bits are `low` (the top 16 bits of `low` are
/// ignored); 0 stays 0 (an empty stack).
#[inline(always)]
pub fn unpack(low: usize) -> usize {
    let low = low & ADDR_MASK;
    if low == 0 {
        0
    } else {
        low | high_bits()
    }
}

/// Can the memory at `base..base + size` be packed (same top 16 bits as
/// mirs's statics throughout)?
pub fn same_half(base: usize, size: usize) -> bool {
    let last = base.wrapping_add(size).wrapping_sub(1);
    last >= base && base & !ADDR_MASK == high_bits() && last & !ADDR_MASK == high_bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_null_stays_null() {
        let here = core::ptr::addr_of!(ANCHOR) as usize;
        assert_eq!(unpack(here & ADDR_MASK | 0xabcd << ADDR_BITS), here);
        assert_eq!(unpack(0), 0);
        assert_eq!(unpack(0xffff << ADDR_BITS), 0);
        assert!(same_half(here & !0xfff, 4096));
        assert!(!same_half(here ^ (1 << 63), 4096));
    }
}
