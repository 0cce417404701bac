//! The libc names, exported with the `override` feature so that linking
//! libmirs.a or preloading libmirs.so replaces glibc's malloc. Each follows
//! glibc's documented behaviour (see the table in `c_api`).

use super::prefixed::*;
use crate::base::constants::OS_PAGE_SIZE;
use crate::entry::alloc;
use crate::platform::EINVAL;
use core::ffi::{c_int, c_void};

#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    alloc::malloc(size).cast()
}

/// # Safety
/// C's `free` contract (see `mirs_free`).
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { crate::entry::free::free(p.cast()) };
}

/// # Safety
/// C's `free` contract (see `mirs_free`).
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { crate::entry::free::free(p.cast()) };
}

#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    // The bodies, not the exported `mirs_*` functions: a call to an
    // exported name goes through the GOT (it is interposable).
    alloc::calloc(count, size).cast()
}

/// # Safety
/// C's `realloc` contract (see `mirs_realloc`).
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { realloc_c(p, size) }
}

/// # Safety
/// C's `realloc` contract (see `mirs_realloc`).
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc_c(p, total) },
        None => crate::heap::out_of_memory().cast(),
    }
}

/// # Safety
/// `out` is valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    out: *mut *mut c_void,
    alignment: usize,
    size: usize,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { posix_memalign_c(out, alignment, size) }
}

#[no_mangle]
pub extern "C" fn aligned_alloc(alignment: usize, size: usize) -> *mut c_void {
    aligned_alloc_c(alignment, size)
}

/// glibc: a non-power-of-two alignment is rounded up to the next power of
/// two; one above `SIZE_MAX / 2 + 1` fails with EINVAL.
#[no_mangle]
pub extern "C" fn memalign(alignment: usize, size: usize) -> *mut c_void {
    let Some(alignment) = alignment.checked_next_power_of_two() else {
        crate::platform::set_errno(EINVAL);
        return core::ptr::null_mut();
    };
    alloc::malloc_aligned(size, alignment.max(1)).cast()
}

#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    alloc::malloc_aligned(size, OS_PAGE_SIZE).cast()
}

/// Page aligned, size rounded up to a whole page (at least one).
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    match size.max(1).checked_next_multiple_of(OS_PAGE_SIZE) {
        Some(rounded) => alloc::malloc_aligned(rounded, OS_PAGE_SIZE).cast(),
        None => crate::heap::out_of_memory().cast(),
    }
}

/// # Safety
/// See `mirs_usable_size`.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: forwarded contract.
    unsafe { alloc::usable_size(p.cast()) }
}

/// Collect and return unused memory to the OS; 1 when something was released.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    let before = crate::support::stats::current(crate::support::stats::Counter::Reserved);
    let purged = crate::support::stats::total(crate::support::stats::Counter::Purged);
    crate::thread::collect_current(true);
    let released = crate::support::stats::current(crate::support::stats::Counter::Reserved)
        < before
        || crate::support::stats::total(crate::support::stats::Counter::Purged) > purged;
    released as c_int
}

/// glibc's summary lines first (the shape scripts and glibc's tests look
/// for, with mirs's figures: one arena for the process, "mmap" = chunks
/// mapped), then mirs's own table. Like everything mirs prints, not a
/// cancellation point.
#[no_mangle]
pub extern "C" fn malloc_stats() {
    use crate::support::stats::{peak, Counter};
    use core::fmt::Write;
    let m = mallinfo2();
    {
        let mut w = crate::support::output::Writer::new();
        let _ = writeln!(w, "Arena 0:");
        let _ = writeln!(w, "system bytes     = {:>10}", m.arena);
        let _ = writeln!(w, "in use bytes     = {:>10}", m.uordblks);
        let _ = writeln!(w, "Total (incl. mmap):");
        let _ = writeln!(w, "system bytes     = {:>10}", m.arena);
        let _ = writeln!(w, "in use bytes     = {:>10}", m.uordblks);
        let _ = writeln!(w, "max mmap regions = {:>10}", peak(Counter::Chunks).max(0));
        let _ = writeln!(
            w,
            "max mmap bytes   = {:>10}",
            peak(Counter::Reserved).max(0)
        );
    }
    crate::report::print_text();
}

/// glibc's `struct mallinfo2`, filled from mirs's statistics.
#[repr(C)]
pub struct Mallinfo2 {
    pub arena: usize,
    pub ordblks: usize,
    pub smblks: usize,
    pub hblks: usize,
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    pub uordblks: usize,
    pub fordblks: usize,
    pub keepcost: usize,
}

/// `arena`: bytes mapped; `ordblks`: pages in use; `hblks`: chunks mapped;
/// `hblkhd`: bytes of singleton pages (large and huge blocks); `usmblks`:
/// peak page memory; `uordblks`: bytes in use (the live bytes of the
/// statistics report: exact for the calling thread's heap, exited threads'
/// pages and large blocks; other running threads' pages counted whole, as
/// only their owners can read them); `fordblks`: mapped and not in use. The
/// others are 0 (no fastbins). Slow (walks the caller's pages): for
/// reporting, not for every allocation.
#[no_mangle]
pub extern "C" fn mallinfo2() -> Mallinfo2 {
    use crate::support::stats::{current, peak, Counter};
    let reserved = current(Counter::Reserved).max(0) as usize;
    let in_use = crate::report::bytes_in_use();
    Mallinfo2 {
        arena: reserved,
        ordblks: current(Counter::Pages).max(0) as usize,
        smblks: 0,
        hblks: current(Counter::Chunks).max(0) as usize,
        hblkhd: current(Counter::SingletonBytes).max(0) as usize,
        usmblks: peak(Counter::PageBytes).max(0) as usize,
        fsmblks: 0,
        uordblks: in_use,
        fordblks: reserved.saturating_sub(in_use),
        keepcost: 0,
    }
}

/// glibc's old `struct mallinfo` (deprecated in 2.33, still called): the
/// `mallinfo2` figures in `int`s, saturated at `INT_MAX` where glibc's wrap.
#[repr(C)]
pub struct Mallinfo {
    pub arena: c_int,
    pub ordblks: c_int,
    pub smblks: c_int,
    pub hblks: c_int,
    pub hblkhd: c_int,
    pub usmblks: c_int,
    pub fsmblks: c_int,
    pub uordblks: c_int,
    pub fordblks: c_int,
    pub keepcost: c_int,
}

#[no_mangle]
pub extern "C" fn mallinfo() -> Mallinfo {
    let m = mallinfo2();
    let int = |v: usize| v.min(c_int::MAX as usize) as c_int;
    Mallinfo {
        arena: int(m.arena),
        ordblks: int(m.ordblks),
        smblks: int(m.smblks),
        hblks: int(m.hblks),
        hblkhd: int(m.hblkhd),
        usmblks: int(m.usmblks),
        fsmblks: int(m.fsmblks),
        uordblks: int(m.uordblks),
        fordblks: int(m.fordblks),
        keepcost: int(m.keepcost),
    }
}

/// A C stream as a [`Sink`]: `fwrite` of the formatted chunks.
#[cfg(feature = "hosted")]
struct FileSink(*mut libc::FILE);

#[cfg(feature = "hosted")]
impl crate::support::output::Sink for FileSink {
    fn write(&mut self, bytes: &[u8]) {
        // SAFETY: `malloc_info`'s caller passes an open stream; the slice is live.
        unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), self.0) };
    }
}

/// glibc's `malloc_info`: the statistics as XML on `fp`, in glibc's element
/// shape: one `<heap>` for the process; `<sizes>` empty, since mirs keeps no
/// per-size free counts; `total type="rest"`: `size` = mapped bytes not in
/// use (`fordblks`: `system` minus `size` is the bytes in use, `uordblks`),
/// `count` = pages in use; `system`/`aspace`: bytes
/// mapped (`max`: the peak). `options` must be 0 (else EINVAL, as glibc).
///
/// The XML is formatted into a fixed stack buffer and handed to the stream
/// with `fwrite`, not written to `fileno(fp)`: that keeps the stream's order
/// with what the caller already buffered in it and works for streams without
/// a descriptor (`open_memstream`, which is how programs usually parse it).
/// `fwrite` may allocate the stream's buffer through malloc, i.e. mirs; that
/// is safe, as here mirs holds nothing while calling it (glibc's own
/// `malloc_info` prints with `fprintf` the same way).
///
/// # Safety
/// `fp` is an open, writable stream.
#[cfg(feature = "hosted")]
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int {
    use crate::support::stats::{current, peak, Counter};
    use core::fmt::Write;
    if options != 0 {
        return EINVAL;
    }
    if fp.is_null() {
        return EINVAL;
    }
    let m = mallinfo2();
    let max = peak(Counter::Reserved).max(0) as usize;
    let pages = current(Counter::Pages).max(0);
    let mut w = crate::support::output::Writer::with_sink(FileSink(fp));
    let totals = |w: &mut crate::support::output::Writer<FileSink>| {
        let _ = writeln!(w, "<total type=\"fast\" count=\"0\" size=\"0\"/>");
        let _ = writeln!(
            w,
            "<total type=\"rest\" count=\"{pages}\" size=\"{}\"/>",
            m.fordblks
        );
    };
    let system = |w: &mut crate::support::output::Writer<FileSink>| {
        let _ = writeln!(w, "<system type=\"current\" size=\"{}\"/>", m.arena);
        let _ = writeln!(w, "<system type=\"max\" size=\"{max}\"/>");
        let _ = writeln!(w, "<aspace type=\"total\" size=\"{}\"/>", m.arena);
        let _ = writeln!(w, "<aspace type=\"mprotect\" size=\"{}\"/>", m.arena);
    };
    let _ = writeln!(w, "<malloc version=\"1\">");
    let _ = writeln!(w, "<heap nr=\"0\">");
    let _ = writeln!(w, "<sizes>");
    let _ = writeln!(w, "</sizes>");
    totals(&mut w);
    system(&mut w);
    let _ = writeln!(w, "</heap>");
    totals(&mut w);
    let _ = writeln!(w, "<total type=\"mmap\" count=\"0\" size=\"0\"/>");
    system(&mut w);
    let _ = writeln!(w, "</malloc>");
    0
}

// glibc's internal aliases, which some programs and libraries call directly.

#[no_mangle]
pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    malloc(size)
}

/// # Safety
/// C's `free` contract (see `mirs_free`).
#[no_mangle]
pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

#[no_mangle]
pub extern "C" fn __libc_calloc(count: usize, size: usize) -> *mut c_void {
    calloc(count, size)
}

/// # Safety
/// C's `realloc` contract (see `mirs_realloc`).
#[no_mangle]
pub unsafe extern "C" fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { realloc(p, size) }
}

#[no_mangle]
pub extern "C" fn __libc_memalign(alignment: usize, size: usize) -> *mut c_void {
    memalign(alignment, size)
}

#[no_mangle]
pub extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
    valloc(size)
}

#[no_mangle]
pub extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
    pvalloc(size)
}

/// # Safety
/// `out` is valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn __posix_memalign(
    out: *mut *mut c_void,
    alignment: usize,
    size: usize,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { posix_memalign_c(out, alignment, size) }
}
