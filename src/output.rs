//! Formatted output without allocating: `core::fmt` into a fixed stack
//! buffer, flushed through the platform (`write(2)` when hosted).

use core::fmt;

pub struct Writer {
    buf: [u8; 512],
    len: usize,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    pub const fn new() -> Writer {
        Writer {
            buf: [0; 512],
            len: 0,
        }
    }

    pub fn flush(&mut self) {
        crate::platform::write_stderr(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl fmt::Write for Writer {
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

impl Drop for Writer {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Print a line to the platform's error output: `mirs_print!("x = {}", x)`.
macro_rules! mirs_print {
    ($($arg:tt)*) => {{
        let mut w = $crate::output::Writer::new();
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!($($arg)*));
    }};
}
pub(crate) use mirs_print;

/// A warning, printed only with `MIRS_VERBOSE=1` (and at most a few hundred,
/// so a program that frees garbage in a loop cannot flood its output).
macro_rules! warning {
    ($($arg:tt)*) => {{
        if $crate::options::verbose() && $crate::output::take_warning_budget() {
            $crate::output::mirs_print!("mirs: warning: {}\n", format_args!($($arg)*));
        }
    }};
}
pub(crate) use warning;

static WARNINGS_LEFT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(256);

pub fn take_warning_budget() -> bool {
    WARNINGS_LEFT
        .fetch_update(
            core::sync::atomic::Ordering::Relaxed,
            core::sync::atomic::Ordering::Relaxed,
            |n| n.checked_sub(1),
        )
        .is_ok()
}

/// A free (or realloc) of a pointer that is not a live block mirs handed
/// out: counted, reported with `MIRS_VERBOSE=1`, and otherwise ignored.
#[cold]
#[inline(never)]
pub(crate) fn invalid_free(p: *mut u8, what: &str) {
    crate::stats::add(crate::stats::Counter::InvalidFrees, 1);
    warning!("free of {} ignored: {:p}", what, p);
}
