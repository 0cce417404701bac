//! Generates the C header from the `mirs_*` declarations with cbindgen.
//!
//! Every build writes `$OUT_DIR/mirs.h`; the test `header_is_fresh` fails
//! when the committed `include/mirs.h` differs from it. `make` (and `make
//! header`) set `MIRS_UPDATE_HEADER=1` to refresh the committed copy.

fn main() {
    println!("cargo:rerun-if-changed=src/c_api");
    println!("cargo:rerun-if-changed=src/platform/embedded.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=MIRS_UPDATE_HEADER");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header from src/c_api");
    bindings.write_to_file(format!("{out_dir}/mirs.h"));
    if std::env::var_os("MIRS_UPDATE_HEADER").is_some_and(|v| v == "1") {
        bindings.write_to_file(format!("{crate_dir}/include/mirs.h"));
    }
}
