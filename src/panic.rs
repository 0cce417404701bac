//! The panic handler of standalone builds (libmirs.so, libmirs.a). Panics
//! never unwind (panic = "abort" everywhere); this prints and aborts.

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::support::output::mirs_print!("mirs: fatal: {}\n", info);
    crate::platform::abort()
}

/// The precompiled `core` refers to the unwinding personality routine even
/// though nothing here unwinds (panic = "abort"); define it so the standalone
/// libraries link without libgcc_s. It is never called. As a lang item it
/// stays internal: exported from libmirs.so it could capture the personality
/// lookups of Rust libraries loaded into a preloaded process.
#[lang = "eh_personality"]
extern "C" fn eh_personality() {}
