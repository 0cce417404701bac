//! The allocator's settings, messages and counters: `MIRS_*` options,
//! allocation-free printing, statistics.

pub(crate) mod options;
pub(crate) mod output;
pub mod stats;
