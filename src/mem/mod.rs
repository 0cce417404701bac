//! Memory: chunks of 64 slices and the page headers in them, the maps
//! that validate pointers, and the arena that hands out spans.

pub(crate) mod arena;
pub(crate) mod chunk;
pub(crate) mod chunk_map;
pub(crate) mod page;
pub(crate) mod page_map;
