//! The panic handler of standalone builds (libmirs.so, libmirs.a). Panics
//! never unwind (panic = "abort" everywhere); this prints and aborts.

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::output::mirs_print!("mirs: fatal: {}\n", info);
    crate::platform::abort()
}

/// The precompiled `core` refers to the unwinding personality routine even
/// though nothing here unwinds (panic = "abort"); define it so the standalone
/// libraries link without libgcc_s. It is never called.
#[no_mangle]
extern "C" fn rust_eh_personality() {}
