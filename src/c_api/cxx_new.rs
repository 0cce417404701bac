//! C++ `operator new` and `operator delete` (the Itanium ABI's LP64 names),
//! exported with `override` on hosted x86_64 Linux, so that a C++ program
//! reaches mirs directly instead of through libstdc++'s wrappers (a call and
//! two PLT jumps more per `new`, two to three jumps per `delete`).
//!
//! The failure path keeps libstdc++'s semantics exactly: a throwing `new`
//! that mirs cannot serve must run the new-handler loop and throw
//! `std::bad_alloc`, and no Rust frame may be on the stack when it throws
//! (mirs is built with `panic = "abort"` and cannot be unwound). So the
//! throwing forms are naked functions: they call mirs's malloc, return its
//! block, and on null *jump* (no frame of ours left) to the definition they
//! replace, found with `dlsym(RTLD_NEXT)`: libstdc++'s, which calls malloc
//! (mirs's) and the handler in its loop and throws. The `nothrow` forms
//! cannot throw, so they are plain functions that call the next `nothrow`
//! form on failure.
//!
//! Where there is no next definition (a static executable, or
//! `-static-libstdc++` with libmirs.a), the throwing forms run the
//! new-handler loop themselves, in the naked function, over the C++
//! runtime's `std::get_new_handler` and `std::__throw_bad_alloc` (weak
//! references: none without a C++ runtime). Their hand-written CFI lets a
//! handler's exception unwind through them. A `nothrow` form there returns
//! null without calling the handler (catching what a handler throws needs a
//! landing pad, which only C++ code has).
//!
//! `delete` is `free` in every form: the size and alignment arguments are
//! not needed (mirs finds both from the pointer) and not trusted.

use crate::entry::{alloc, free};
use crate::platform;
use core::ffi::{c_void, CStr};

/// mirs's attempt for `operator new(size)`: null when out of memory.
extern "C" fn new_first(size: usize) -> *mut c_void {
    alloc::malloc(size).cast()
}

/// mirs's attempt for `operator new(size, align)`. A non-power-of-two
/// alignment breaks `new`'s precondition; it goes to the next definition,
/// which fails it as glibc's `aligned_alloc` does.
extern "C" fn new_aligned_first(size: usize, align: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return core::ptr::null_mut();
    }
    alloc::malloc_aligned(size, align).cast()
}

/// The next definition of the symbol named by the NUL-terminated `name`,
/// or 0 (then the naked function runs the handler loop itself). Called
/// only when mirs is out of memory.
extern "C" fn next_new(name: *const u8) -> usize {
    // SAFETY: `name` is one of the NUL-terminated statics below.
    platform::next_symbol(unsafe { CStr::from_ptr(name.cast()) })
}

/// A throwing `new` failed with no C++ runtime to throw `std::bad_alloc`.
extern "C" fn no_cxx_runtime() -> ! {
    platform::write_stderr(
        b"mirs: out of memory in operator new, and no C++ runtime to throw std::bad_alloc\n",
    );
    platform::abort();
}

/// `name` NUL-terminated, as an array (for a static that asm can address).
const fn c_name<const N: usize>(name: &str) -> [u8; N] {
    let bytes = name.as_bytes();
    assert!(bytes.len() + 1 == N);
    let mut out = [0; N];
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i] != 0);
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The stack and register moves of a throwing `new` of one argument
/// (`size` in rdi) or two (`size`, `align` in rsi), each with its CFI:
/// `save` keeps the arguments across a call and realigns the stack (entry
/// leaves rsp 8 off 16-byte alignment), `restore` undoes it; `keep` moves
/// them into callee-saved registers for the handler loop (realigned too),
/// `reload` puts them back as arguments, `unkeep` restores the registers.
/// (Absolute CFA offsets: an adjustment after `.cfi_restore_state` would
/// count from the state before it.)
macro_rules! moves {
    (save one) => { "push rdi\n.cfi_def_cfa_offset 16" };
    (restore one) => { "pop rdi\n.cfi_def_cfa_offset 8" };
    (keep one) => { "push rbx\n.cfi_def_cfa_offset 16\n.cfi_offset rbx, -16\nmov rbx, rdi" };
    (reload one) => { "mov rdi, rbx" };
    (unkeep one) => { "pop rbx\n.cfi_def_cfa_offset 8\n.cfi_restore rbx" };
    (save two) => {
        "push rdi\n.cfi_def_cfa_offset 16\npush rsi\n.cfi_def_cfa_offset 24\nsub rsp, 8\n.cfi_def_cfa_offset 32"
    };
    (restore two) => {
        "add rsp, 8\n.cfi_def_cfa_offset 24\npop rsi\n.cfi_def_cfa_offset 16\npop rdi\n.cfi_def_cfa_offset 8"
    };
    (keep two) => {
        "push rbx\n.cfi_def_cfa_offset 16\n.cfi_offset rbx, -16\npush r12\n.cfi_def_cfa_offset 24\n.cfi_offset r12, -24\nsub rsp, 8\n.cfi_def_cfa_offset 32\nmov rbx, rdi\nmov r12, rsi"
    };
    (reload two) => { "mov rdi, rbx\nmov rsi, r12" };
    (unkeep two) => {
        "add rsp, 8\n.cfi_def_cfa_offset 24\npop r12\n.cfi_def_cfa_offset 16\n.cfi_restore r12\npop rbx\n.cfi_def_cfa_offset 8\n.cfi_restore rbx"
    };
}

/// A throwing `new`: calls `$first` over its arguments and returns its
/// block; on null jumps to the next definition or, with none, runs the
/// new-handler loop: `std::get_new_handler()` (none, or no C++ runtime:
/// jump to `std::__throw_bad_alloc`), else call the handler and try again.
/// The jumps leave the stack as at entry, so what they reach returns or
/// throws straight to our caller.
macro_rules! throwing_new {
    ($(#[$doc:meta])* $rust:ident, $export:literal, $first:ident ($($arg:ident),*), $n:ident) => {
        /// The export name as a C string, for `dlsym`.
        mod $rust {
            pub static NAME: [u8; $export.len() + 1] = crate::c_api::cxx_new::c_name($export);
        }

        $(#[$doc])*
        #[unsafe(naked)]
        #[export_name = $export]
        extern "C" fn $rust($($arg: usize),*) -> *mut c_void {
            core::arch::naked_asm!(
                ".cfi_startproc",
                ".weak _ZSt15get_new_handlerv",
                ".weak _ZSt17__throw_bad_allocv",
                moves!(save $n),
                "call {first}",
                moves!(restore $n),
                "test rax, rax",
                "jz 2f",
                "ret",
                "2:",
                moves!(save $n),
                "lea rdi, [rip + {name}]",
                "call {next}",
                moves!(restore $n),
                "test rax, rax",
                "jz 3f",
                "jmp rax",
                "3:",
                moves!(keep $n),
                "4:",
                "mov rax, qword ptr [rip + _ZSt15get_new_handlerv@GOTPCREL]",
                "test rax, rax",
                "jz 5f",
                "call rax",
                "test rax, rax",
                "jz 5f",
                "call rax",
                moves!(reload $n),
                "call {first}",
                "test rax, rax",
                "jz 4b",
                ".cfi_remember_state",
                moves!(unkeep $n),
                "ret",
                ".cfi_restore_state",
                "5:",
                "mov rax, qword ptr [rip + _ZSt17__throw_bad_allocv@GOTPCREL]",
                "test rax, rax",
                "jz 6f",
                ".cfi_remember_state",
                moves!(unkeep $n),
                "jmp rax",
                ".cfi_restore_state",
                "6:",
                "call {abort}",
                ".cfi_endproc",
                first = sym $first,
                name = sym $rust::NAME,
                next = sym next_new,
                abort = sym no_cxx_runtime,
            )
        }
    };
}

throwing_new!(
    /// `operator new(std::size_t)`.
    new, "_Znwm", new_first (size),
    one
);
throwing_new!(
    /// `operator new[](std::size_t)`.
    new_array, "_Znam", new_first (size),
    one
);
throwing_new!(
    /// `operator new(std::size_t, std::align_val_t)`.
    new_aligned, "_ZnwmSt11align_val_t", new_aligned_first (size, align),
    two
);
throwing_new!(
    /// `operator new[](std::size_t, std::align_val_t)`.
    new_array_aligned, "_ZnamSt11align_val_t", new_aligned_first (size, align),
    two
);

type NothrowNew = unsafe extern "C" fn(usize, *const c_void) -> *mut c_void;
type NothrowNewAligned = unsafe extern "C" fn(usize, usize, *const c_void) -> *mut c_void;

/// The next `nothrow` form after mirs's failed: it runs the new-handler
/// loop (its throwing `new` is ours, which falls through to libstdc++'s)
/// and catches whatever is thrown. Null with no next definition.
#[cold]
fn nothrow_next(name: &CStr, size: usize, tag: *const c_void) -> *mut c_void {
    match platform::next_symbol(name) {
        0 => core::ptr::null_mut(),
        next => {
            // SAFETY: `name` is a `nothrow` `operator new(size_t, const
            // nothrow_t&)`; it is noexcept, so nothing unwinds into us.
            let next: NothrowNew = unsafe { core::mem::transmute(next) };
            // SAFETY: its contract is C++'s: any size, the caller's tag.
            unsafe { next(size, tag) }
        }
    }
}

/// As [`nothrow_next`], for the aligned `nothrow` forms.
#[cold]
fn nothrow_next_aligned(name: &CStr, size: usize, align: usize, tag: *const c_void) -> *mut c_void {
    match platform::next_symbol(name) {
        0 => core::ptr::null_mut(),
        next => {
            // SAFETY: `name` is an aligned `nothrow` `operator new`, noexcept.
            let next: NothrowNewAligned = unsafe { core::mem::transmute(next) };
            // SAFETY: its contract is C++'s; the caller's arguments.
            unsafe { next(size, align, tag) }
        }
    }
}

/// A `nothrow` `new`: mirs's attempt (`$first` over the arguments), then
/// the next definition's (`$next`).
macro_rules! nothrow_new {
    ($(#[$doc:meta])* $rust:ident, $export:literal, $first:ident, $next:ident ($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        #[export_name = $export]
        extern "C" fn $rust($($arg: $ty,)* tag: *const c_void) -> *mut c_void {
            let p = $first($($arg),*);
            if !p.is_null() {
                return p;
            }
            // The name as a C string, checked at compile time.
            const NAME: &CStr = match CStr::from_bytes_with_nul(concat!($export, "\0").as_bytes()) {
                Ok(name) => name,
                Err(_) => panic!("a C++ symbol name with a NUL inside"),
            };
            $next(
                NAME,
                $($arg,)*
                tag,
            )
        }
    };
}

nothrow_new!(
    /// `operator new(std::size_t, const std::nothrow_t&)`.
    new_nothrow, "_ZnwmRKSt9nothrow_t", new_first, nothrow_next (size: usize)
);
nothrow_new!(
    /// `operator new[](std::size_t, const std::nothrow_t&)`.
    new_array_nothrow, "_ZnamRKSt9nothrow_t", new_first, nothrow_next (size: usize)
);
nothrow_new!(
    /// `operator new(std::size_t, std::align_val_t, const std::nothrow_t&)`.
    new_aligned_nothrow, "_ZnwmSt11align_val_tRKSt9nothrow_t", new_aligned_first,
    nothrow_next_aligned (size: usize, align: usize)
);
nothrow_new!(
    /// `operator new[](std::size_t, std::align_val_t, const std::nothrow_t&)`.
    new_array_aligned_nothrow, "_ZnamSt11align_val_tRKSt9nothrow_t", new_aligned_first,
    nothrow_next_aligned (size: usize, align: usize)
);

/// Every `operator delete` form: `free`, whatever the size, alignment or
/// tag arguments say (C++ passes them; mirs reads both from the pointer).
macro_rules! delete {
    ($($rust:ident $export:literal ($($ty:ty),*);)*) => {$(
        #[doc = concat!("`", $export, "`: `free(p)`.")]
        ///
        /// # Safety
        /// C++'s contract: `p` came from the matching `new` and is not used
        /// afterwards (a bad pointer is refused and reported, as by `free`).
        #[export_name = $export]
        unsafe extern "C" fn $rust(p: *mut c_void, $(_: $ty),*) {
            // SAFETY: forwarded contract.
            unsafe { free::free(p.cast()) };
        }
    )*};
}

delete! {
    delete "_ZdlPv" ();
    delete_array "_ZdaPv" ();
    delete_sized "_ZdlPvm" (usize);
    delete_array_sized "_ZdaPvm" (usize);
    delete_nothrow "_ZdlPvRKSt9nothrow_t" (*const c_void);
    delete_array_nothrow "_ZdaPvRKSt9nothrow_t" (*const c_void);
    delete_aligned "_ZdlPvSt11align_val_t" (usize);
    delete_array_aligned "_ZdaPvSt11align_val_t" (usize);
    delete_sized_aligned "_ZdlPvmSt11align_val_t" (usize, usize);
    delete_array_sized_aligned "_ZdaPvmSt11align_val_t" (usize, usize);
    delete_aligned_nothrow "_ZdlPvSt11align_val_tRKSt9nothrow_t" (usize, *const c_void);
    delete_array_aligned_nothrow "_ZdaPvSt11align_val_tRKSt9nothrow_t" (usize, *const c_void);
}
