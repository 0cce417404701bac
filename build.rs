//! Regenerates `include/mirs.h` from the `mirs_*` declarations with cbindgen.
//! The header is committed; `src/tests/header.rs` fails when it is stale.

fn main() {
    println!("cargo:rerun-if-changed=src/c_api");
    println!("cargo:rerun-if-changed=src/platform/embedded.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .expect("cbindgen.toml parses");
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(format!("{crate_dir}/include/mirs.h"));
        }
        // A header we cannot regenerate must not break the library build;
        // the header test reports it.
        Err(e) => println!("cargo:warning=cbindgen could not generate include/mirs.h: {e}"),
    }
}
