//! Reads `MIRS_PROVIDER_MAX_MB` (MiB the page provider may hold at once; 0
//! or unset: no cap) into `$OUT_DIR/provider_cap.rs`, and
//! `MIRS_ARCEOS_IRQ_MASK=0` (measurement only) into a cfg.

fn main() {
    println!("cargo:rerun-if-env-changed=MIRS_PROVIDER_MAX_MB");
    // MIRS_ARCEOS_IRQ_MASK=0: `global` without masking interrupts around mirs
    // calls. Unsound when interrupt handlers allocate: only for measuring
    // what the masking costs (make bench-arceos-rust).
    println!("cargo:rerun-if-env-changed=MIRS_ARCEOS_IRQ_MASK");
    println!("cargo::rustc-check-cfg=cfg(mirs_arceos_no_irq_mask)");
    if std::env::var("MIRS_ARCEOS_IRQ_MASK").is_ok_and(|v| v.trim() == "0") {
        println!("cargo:rustc-cfg=mirs_arceos_no_irq_mask");
    }
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
