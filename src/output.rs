//! Formatted output without allocating: `core::fmt` into a fixed stack
//! buffer, flushed through the platform (`write(2)` when hosted) or another
//! [`Sink`]; and the one place errors in the calling program are reported.

use core::fmt;

/// Where a [`Writer`] flushes its buffer.
pub trait Sink {
    fn write(&mut self, bytes: &[u8]);
}

/// The platform's error output (`write(2)` on fd 2 when hosted, not a
/// cancellation point).
pub struct Stderr;

impl Sink for Stderr {
    fn write(&mut self, bytes: &[u8]) {
        crate::platform::write_stderr(bytes);
    }
}

/// `core::fmt` into a 512-byte stack buffer, flushed to its sink when full
/// and when dropped: formatted output that never allocates.
pub struct Writer<S: Sink = Stderr> {
    buf: [u8; 512],
    len: usize,
    sink: S,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    pub const fn new() -> Writer {
        Writer::with_sink(Stderr)
    }
}

impl<S: Sink> Writer<S> {
    pub const fn with_sink(sink: S) -> Writer<S> {
        Writer {
            buf: [0; 512],
            len: 0,
            sink,
        }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            self.sink.write(&self.buf[..self.len]);
        }
        self.len = 0;
    }
}

impl<S: Sink> fmt::Write for Writer<S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

impl<S: Sink> Drop for Writer<S> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A short string formatted on the stack (for padding a composite value);
/// what does not fit in its 32 bytes is an error.
pub(crate) struct StackStr {
    buf: [u8; 32],
    len: usize,
}

impl StackStr {
    pub(crate) const fn new() -> StackStr {
        StackStr {
            buf: [0; 32],
            len: 0,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Print a line to the platform's error output: `mirs_print!("x = {}", x)`.
macro_rules! mirs_print {
    ($($arg:tt)*) => {{
        let mut w = $crate::output::Writer::new();
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!($($arg)*));
    }};
}
// Used by the panic handler and the embedded platform, which not every build has.
#[allow(unused_imports)]
pub(crate) use mirs_print;

/// An error in the program using mirs (a free or realloc of a pointer mirs
/// does not own, a double free, a corrupted free list): see [`report_error`].
/// The caller has already made the operation harmless (ignored it).
macro_rules! warning {
    ($($arg:tt)*) => {
        $crate::output::report_error(format_args!($($arg)*))
    };
}
pub(crate) use warning;

/// Report an error in the calling program. With `MIRS_ABORT_ON_ERROR=1` it
/// is printed and the process aborts (`SIGABRT` when hosted, as glibc does
/// on a detected double free); otherwise it is printed only with
/// `MIRS_VERBOSE=1`, at most `MIRS_MAX_WARNINGS` times (256), so a program
/// that frees garbage in a loop cannot flood its output.
#[cold]
#[inline(never)]
pub(crate) fn report_error(what: fmt::Arguments<'_>) {
    if crate::options::abort_on_error() {
        mirs_print!("mirs: error: {}: aborting (MIRS_ABORT_ON_ERROR=1)\n", what);
        crate::platform::abort();
    }
    if crate::options::verbose() && take_warning_budget() {
        mirs_print!("mirs: warning: {}\n", what);
    }
}

static WARNINGS_PRINTED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// May one more warning be printed (`MIRS_MAX_WARNINGS`, default 256)?
pub fn take_warning_budget() -> bool {
    let max = crate::options::max_warnings();
    WARNINGS_PRINTED
        .fetch_update(
            core::sync::atomic::Ordering::Relaxed,
            core::sync::atomic::Ordering::Relaxed,
            |n| (n < max).then_some(n + 1),
        )
        .is_ok()
}
