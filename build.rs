//! Writes the embedded-mode configuration, and with feature `header` the C
//! header.
//!
//! `embedded_config.rs` is written on every build. The header is generated
//! from the `mirs_*` declarations with cbindgen only under feature `header`
//! (an optional build-dependency, so a Rust dependent never compiles
//! cbindgen): `$OUT_DIR/mirs.h`, which the test `header_is_fresh` compares
//! with the committed `include/mirs.h`. `make` (and `make header`) also set
//! `MIRS_UPDATE_HEADER=1` to refresh the committed copy.

/// Embedded-mode sizes chosen at build time, written to
/// `$OUT_DIR/embedded_config.rs` (included by `src/platform/embedded.rs`):
/// `MIRS_STATIC_REGION_MB` (feature `static-region`: MiB of the static
/// region, default 32; any whole number of MiB, as the embedded chunk is
/// 1 MiB) and `MIRS_MAX_THREADS` (threads with
/// a heap at once, default 256) and `MIRS_PROVIDER_MAX_MB` (MiB mirs may
/// hold from the embedder's page provider, default 0: no cap).
fn embedded_config(out_dir: &str) {
    println!("cargo:rerun-if-env-changed=MIRS_STATIC_REGION_MB");
    println!("cargo:rerun-if-env-changed=MIRS_MAX_THREADS");
    let read = |name: &str, default: usize| -> usize {
        match std::env::var(name) {
            Ok(v) => v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
            Err(_) => default,
        }
    };
    let region_mb = read("MIRS_STATIC_REGION_MB", 32);
    // Checked only when the static region is built (the variable may be set
    // in the environment of an unrelated, e.g. hosted, build).
    let static_region = std::env::var_os("CARGO_FEATURE_STATIC_REGION").is_some();
    assert!(
        !static_region || region_mb > 0,
        "MIRS_STATIC_REGION_MB={region_mb}: a positive number (MiB) is needed"
    );
    println!("cargo:rerun-if-env-changed=MIRS_PROVIDER_MAX_MB");
    let provider_max_mb = read("MIRS_PROVIDER_MAX_MB", 0);
    let max_threads = read("MIRS_MAX_THREADS", 256);
    assert!(
        (1..=1 << 20).contains(&max_threads),
        "MIRS_MAX_THREADS={max_threads}: 1 ..= 1048576"
    );
    let config = format!(
        "/// MiB in the static region (`MIRS_STATIC_REGION_MB`).\n\
         pub const STATIC_REGION_MB: usize = {region_mb};\n\
         /// Threads with a heap at once (`MIRS_MAX_THREADS`).\n\
         pub const MAX_THREADS: usize = {max_threads};\n\
         /// MiB mirs may hold from the page provider (`MIRS_PROVIDER_MAX_MB`, 0: no cap).\n\
         pub const PROVIDER_MAX_MB: usize = {provider_max_mb};\n"
    );
    let path = format!("{out_dir}/embedded_config.rs");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(config.as_str()) {
        std::fs::write(&path, config).expect("OUT_DIR is writable");
    }
}

/// `$OUT_DIR/mirs.h` from src/c_api, and `include/mirs.h` with `MIRS_UPDATE_HEADER=1`.
#[cfg(feature = "header")]
fn header(crate_dir: &str, out_dir: &str) {
    println!("cargo:rerun-if-changed=src/c_api");
    println!("cargo:rerun-if-changed=src/platform");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=MIRS_UPDATE_HEADER");
    let mut config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .expect("cbindgen.toml parses");
    // The compile-time version, from Cargo.toml (as mirs_version() at run time).
    let part = |name: &str| std::env::var(name).expect("cargo sets the version parts");
    let (major, minor, patch) = (
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
    );
    let version = format!(
        "\n// The version of this header (mirs_version() returns the library's:\n\
         // MIRS_VERSION_MAJOR * 10000 + MIRS_VERSION_MINOR * 100 + MIRS_VERSION_PATCH).\n\
         #define MIRS_VERSION_MAJOR {major}\n\
         #define MIRS_VERSION_MINOR {minor}\n\
         #define MIRS_VERSION_PATCH {patch}\n\
         #define MIRS_VERSION (MIRS_VERSION_MAJOR * 10000 + MIRS_VERSION_MINOR * 100 + MIRS_VERSION_PATCH)"
    );
    config.after_includes = Some(config.after_includes.unwrap_or_default() + &version);
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header from src/c_api");
    bindings.write_to_file(format!("{out_dir}/mirs.h"));
    if std::env::var_os("MIRS_UPDATE_HEADER").is_some_and(|v| v == "1") {
        bindings.write_to_file(format!("{crate_dir}/include/mirs.h"));
    }
}

fn main() {
    // Without `header` nothing but the two environment variables above
    // matters: rerun only when build.rs itself changes.
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    embedded_config(&out_dir);
    #[cfg(feature = "header")]
    header(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
        &out_dir,
    );
}
