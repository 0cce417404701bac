//! Reads `MIRS_PROVIDER_MAX_MB` (MiB the page provider may hold at once; 0
//! or unset: no cap) into `$OUT_DIR/provider_cap.rs`.

fn main() {
    println!("cargo:rerun-if-env-changed=MIRS_PROVIDER_MAX_MB");
    let mb: usize = match std::env::var("MIRS_PROVIDER_MAX_MB") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("MIRS_PROVIDER_MAX_MB={v}: a number of MiB is needed")),
        _ => 0,
    };
    let bytes = mb
        .checked_mul(1024 * 1024)
        .unwrap_or_else(|| panic!("MIRS_PROVIDER_MAX_MB={mb}: too large"));
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(
        format!("{out}/provider_cap.rs"),
        format!(
            "/// Bytes the page provider may hold at once (`MIRS_PROVIDER_MAX_MB`; 0: no cap).\n\
             pub const PROVIDER_CAP_BYTES: usize = {bytes};\n"
        ),
    )
    .expect("OUT_DIR is writable");
}
