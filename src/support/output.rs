//! Formatted output without allocating: `core::fmt` into a fixed stack
//! buffer, flushed through the platform (`write(2)` when hosted) or another
//! [`Sink`]; and the one place errors in the calling program are reported.

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

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

/// Print a line to the platform's error output: `mirs_print!("x = {}", x)`.
macro_rules! mirs_print {
    ($($arg:tt)*) => {{
        let mut w = $crate::support::output::Writer::new();
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!($($arg)*));
    }};
}
// Used by the panic handler and the embedded platform, which not every build has.
#[allow(unused_imports)]
pub(crate) use mirs_print;

/// An error in the program using mirs (a free or realloc of a pointer mirs
/// does not own, a double free, a corrupted free list): see [`report_error`].
/// The caller has already made the operation harmless (ignored it). The
/// message is the line without its `mirs: ` prefix, e.g.
/// `warning!("free(): invalid pointer {:p}, {}", p, what)`.
macro_rules! warning {
    ($($arg:tt)*) => {
        $crate::support::output::report_error(format_args!($($arg)*))
    };
}
pub(crate) use warning;

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

/// Report an error in the calling program: one line on the error output,
/// `mirs: <what>`, by default (glibc prints and aborts; mirs prints and goes
/// on, the error made harmless). With `MIRS_ABORT_ON_ERROR=1` the line ends
/// in `: aborting (MIRS_ABORT_ON_ERROR=1)` and the process aborts (`SIGABRT`
/// when hosted, as glibc does); with `MIRS_VERBOSE=0` nothing is printed.
/// Rate-limited ([`ReportBudget`]) so a buggy loop cannot flood the output:
/// a burst of `MIRS_MAX_WARNINGS` lines (100), then one line per
/// [`REPORT_REFILL_MS`]; the first report refused says so, and the next one
/// printed says how many were left out. (Every error is counted in the
/// statistics either way: `invalid frees`, `corrupt lists`.)
#[cold]
#[inline(never)]
pub(crate) fn report_error(what: fmt::Arguments<'_>) {
    if crate::support::options::abort_on_error() {
        mirs_print!("mirs: {}: aborting (MIRS_ABORT_ON_ERROR=1)\n", what);
        crate::platform::abort();
    }
    if !crate::support::options::verbose() {
        return;
    }
    let burst = crate::support::options::max_warnings().min(u32::MAX as u64) as u32;
    match REPORTS.take(crate::platform::now_ms(), burst) {
        Report::Print { suppressed: 0 } => mirs_print!("mirs: {}\n", what),
        Report::Print { suppressed } => mirs_print!(
            "mirs: ({} error reports suppressed)\nmirs: {}\n",
            suppressed,
            what
        ),
        Report::SuppressFirst => mirs_print!(
            "mirs: {}\nmirs: further error reports suppressed for a while (MIRS_VERBOSE=0 \
             silences them, MIRS_ABORT_ON_ERROR=1 aborts on the first)\n",
            what
        ),
        Report::Suppress => {}
    }
}

/// After the burst, one more report may be printed per this many ms.
pub const REPORT_REFILL_MS: u64 = 10_000;

/// What [`ReportBudget::take`] allows for one report.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// Print it, after saying how many were suppressed since the last one.
    Print { suppressed: u64 },
    /// The budget just ran out: print it and say further ones are left out.
    SuppressFirst,
    /// Leave it out (counted, for the next printed report).
    Suppress,
}

/// A token bucket of integers (no floats in the allocator) holding `burst`
/// tokens, of which `used` are taken; one comes back per
/// [`REPORT_REFILL_MS`] since `refilled_at`. Racing
/// reporters may each see a token the other took back or miss one refill:
/// the limit is approximate, the output bounded.
pub struct ReportBudget {
    used: AtomicU32,
    refilled_at: AtomicU64,
    suppressed: AtomicU64,
}

static REPORTS: ReportBudget = ReportBudget::new();

impl ReportBudget {
    pub const fn new() -> ReportBudget {
        ReportBudget {
            used: AtomicU32::new(0),
            refilled_at: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// One report at time `now` (ms), with a bucket of `burst` tokens:
    /// print it or not.
    pub fn take(&self, now: u64, burst: u32) -> Report {
        let last = self.refilled_at.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) / REPORT_REFILL_MS;
        if due > 0
            && self
                .refilled_at
                .compare_exchange(
                    last,
                    last + due * REPORT_REFILL_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let back = due.min(u32::MAX as u64) as u32;
            let _ = self
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                    Some(u.saturating_sub(back))
                });
        }
        let took = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u < burst).then_some(u + 1)
            });
        match took {
            Ok(u) if u + 1 == burst && self.suppressed.load(Ordering::Relaxed) == 0 => {
                // The last token: this report is printed, the next ones are not.
                self.suppressed.store(u64::MAX, Ordering::Relaxed);
                Report::SuppressFirst
            }
            Ok(_) => match self.suppressed.swap(0, Ordering::Relaxed) {
                u64::MAX => Report::Print { suppressed: 0 },
                n => Report::Print { suppressed: n },
            },
            Err(_) => {
                let _ = self
                    .suppressed
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(if n == u64::MAX {
                            1
                        } else {
                            n.saturating_add(1)
                        })
                    });
                Report::Suppress
            }
        }
    }
}

impl Default for ReportBudget {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The burst is printed, the report that ends it says further ones are
    /// left out, those are left out silently, and one token per refill
    /// period brings printing back with the count of what was left out.
    #[test]
    fn report_budget_limits_the_rate() {
        const BURST: u32 = 100;
        let b = ReportBudget::new();
        for _ in 0..BURST - 1 {
            assert_eq!(b.take(5, BURST), Report::Print { suppressed: 0 });
        }
        assert_eq!(b.take(5, BURST), Report::SuppressFirst);
        for _ in 0..1000 {
            assert_eq!(b.take(REPORT_REFILL_MS - 1, BURST), Report::Suppress);
        }
        assert_eq!(
            b.take(REPORT_REFILL_MS, BURST),
            Report::Print { suppressed: 1000 }
        );
        assert_eq!(b.take(REPORT_REFILL_MS, BURST), Report::Suppress);
        assert_eq!(
            b.take(2 * REPORT_REFILL_MS, BURST),
            Report::Print { suppressed: 1 }
        );
        // A long quiet spell refills the whole burst, no more.
        let later = 1000 * REPORT_REFILL_MS;
        let printed = (0..2 * BURST)
            .filter(|_| b.take(later, BURST) != Report::Suppress)
            .count();
        assert_eq!(printed, BURST as usize);
        // A burst of 0 prints nothing.
        assert_eq!(ReportBudget::new().take(5, 0), Report::Suppress);
    }
}
