//! The base: sizes, address packing and size classes (pure arithmetic,
//! nothing below it).

pub(crate) mod address;
pub(crate) mod constants;
pub(crate) mod size_class;
pub(crate) mod version;
