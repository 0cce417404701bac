//! Run-time options from the environment (`MIRS_*`), read once at process
//! start without allocating and kept in atomics.
//!
//! | variable              | meaning                                          |
//! |-----------------------|--------------------------------------------------|
//! | `MIRS_SHOW_STATS=1`   | print statistics to stderr at process exit       |
//! | `MIRS_VERBOSE=0`      | silence the error reports (invalid or double frees, corrupted free lists), printed by default, rate-limited |
//! | `MIRS_ABORT_ON_ERROR=1` | abort (SIGABRT) on a detected invalid or double free, as glibc does |
//! | `MIRS_PURGE_DELAY=ms` | delay before unused memory goes back to the OS   |

use crate::constants::PURGE_DELAY_MS;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static SHOW_STATS: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(true);
static ABORT_ON_ERROR: AtomicBool = AtomicBool::new(false);
static PURGE_DELAY: AtomicU64 = AtomicU64::new(PURGE_DELAY_MS);

fn parse_bool(v: &[u8]) -> bool {
    matches!(
        v,
        b"1" | b"yes" | b"true" | b"on" | b"YES" | b"TRUE" | b"ON"
    )
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u64)
    })
}

/// Read the environment (called once from process init).
pub fn init() {
    if let Some(v) = crate::platform::env_var(b"MIRS_SHOW_STATS") {
        SHOW_STATS.store(parse_bool(v), Ordering::Relaxed);
    }
    if let Some(v) = crate::platform::env_var(b"MIRS_VERBOSE") {
        VERBOSE.store(parse_bool(v), Ordering::Relaxed);
    }
    if let Some(v) = crate::platform::env_var(b"MIRS_ABORT_ON_ERROR") {
        ABORT_ON_ERROR.store(parse_bool(v), Ordering::Relaxed);
    }
    if let Some(ms) = crate::platform::env_var(b"MIRS_PURGE_DELAY").and_then(parse_u64) {
        PURGE_DELAY.store(ms, Ordering::Relaxed);
    }
}

/// (Read at process exit, which only the hosted platform sees.)
#[cfg_attr(not(feature = "hosted"), allow(dead_code))]
pub fn show_stats() -> bool {
    SHOW_STATS.load(Ordering::Relaxed)
}

/// Errors in the calling program are reported (the default; `MIRS_VERBOSE=0`
/// silences them).
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Errors in the calling program (invalid or double frees) abort the process.
pub fn abort_on_error() -> bool {
    ABORT_ON_ERROR.load(Ordering::Relaxed)
}

pub fn purge_delay_ms() -> u64 {
    PURGE_DELAY.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert!(parse_bool(b"1") && parse_bool(b"yes") && !parse_bool(b"0") && !parse_bool(b""));
        assert_eq!(parse_u64(b"250"), Some(250));
        assert_eq!(parse_u64(b"2x"), None);
        assert_eq!(parse_u64(b""), None);
    }
}
