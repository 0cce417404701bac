//! Nothing to export: bench/build_peers.sh builds this crate only so that
//! tikv-jemalloc-sys's build script compiles jemalloc (unprefixed), then
//! links the resulting libjemalloc_pic.a into an override library itself.
#![no_std]

#[cfg(feature = "jemalloc")]
use tikv_jemalloc_sys as _;
