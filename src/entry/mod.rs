//! The entry points: allocation and free, with their slow paths.

pub(crate) mod alloc;
pub(crate) mod free;
pub(crate) mod lookup;
