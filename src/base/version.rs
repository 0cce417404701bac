//! The crate's version, from Cargo.toml (the C header's `MIRS_VERSION`
//! comes from the same numbers, build.rs).

/// `major * 10000 + minor * 100 + patch`, from Cargo.toml's version (as
/// `MIRS_VERSION` in `include/mirs.h`).
pub const VERSION: i32 = parse_version_part(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
    + parse_version_part(env!("CARGO_PKG_VERSION_MINOR")) * 100
    + parse_version_part(env!("CARGO_PKG_VERSION_PATCH"));

/// A decimal version component (at compile time).
const fn parse_version_part(s: &str) -> i32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version parts are decimal");
        v = v * 10 + (b[i] - b'0') as i32;
        i += 1;
    }
    v
}
/// The version as text (`major.minor.patch`), as the statistics report it.
pub const VERSION_STRING: &str = env!("CARGO_PKG_VERSION");
