//! Run-time options: read once from the environment (`MIRS_*`) at process
//! start without allocating, changed at any time with `mirs_option_set`,
//! read with `mirs_option_get`; kept in atomics.
//!
//! | option (`MIRS_OPTION_*`) | variable             | default | values  | meaning |
//! |--------------------------|----------------------|---------|---------|---------|
//! | `SHOW_STATS`             | `MIRS_SHOW_STATS`    | 0       | 0, 1    | print the statistics table to stderr at process exit |
//! | `VERBOSE`                | `MIRS_VERBOSE`       | 1       | 0, 1    | report errors in the program (invalid and double frees, corrupted free lists) on stderr, one line each, rate-limited; 0 silences |
//! | `ABORT_ON_ERROR`         | `MIRS_ABORT_ON_ERROR`| 0       | 0, 1    | abort (SIGABRT) on a detected invalid or double free, as glibc does |
//! | `PURGE_DELAY`            | `MIRS_PURGE_DELAY`   | 10      | 0 ..= 10^9 ms | delay before unused memory goes back to the OS |
//! | `STATS_JSON`             | `MIRS_STATS_JSON`    | 0       | 0, 1    | print the statistics as JSON to stderr at process exit |
//! | `MAX_WARNINGS`           | `MIRS_MAX_WARNINGS`  | 100     | 0 ..= 10^9 | error reports printed in a burst; then one per 10 s (output.rs) |
//! | `HUGE_PAGES`             | `MIRS_HUGE_PAGES`    | 1       | 0, 1    | ask for transparent huge pages on the 2 MiB pages big blocks cover whole (hosted); 0: no huge-page advice at all |
//!
//! A boolean variable takes `1`/`yes`/`true`/`on` or `0`/`no`/`false`/`off`
//! (any case). A value that does not parse or is out of range is reported
//! once on stderr and the default kept. Keep `man/mirs.3` and the README in
//! step with this table (`tests` check the names).

use crate::base::constants::PURGE_DELAY_MS;
use core::sync::atomic::{AtomicI64, Ordering};

/// The options, numbered as in the C header (`mirs_option_t`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub enum Opt {
    ShowStats = 0,
    Verbose = 1,
    AbortOnError = 2,
    PurgeDelay = 3,
    StatsJson = 4,
    MaxWarnings = 5,
    HugePages = 6,
}

/// How an option's value is written and checked.
#[derive(Clone, Copy)]
enum Kind {
    Bool,
    /// An integer in `0 ..= max`, with its unit for the warning.
    Int {
        max: i64,
        unit: &'static str,
    },
}

struct Desc {
    opt: Opt,
    env: &'static [u8],
    default: i64,
    kind: Kind,
}

const MAX_WARNINGS_DEFAULT: i64 = 100;

const DESCS: [Desc; OPTIONS] = [
    Desc {
        opt: Opt::ShowStats,
        env: b"MIRS_SHOW_STATS",
        default: 0,
        kind: Kind::Bool,
    },
    Desc {
        opt: Opt::Verbose,
        env: b"MIRS_VERBOSE",
        default: 1,
        kind: Kind::Bool,
    },
    Desc {
        opt: Opt::AbortOnError,
        env: b"MIRS_ABORT_ON_ERROR",
        default: 0,
        kind: Kind::Bool,
    },
    Desc {
        opt: Opt::PurgeDelay,
        env: b"MIRS_PURGE_DELAY",
        default: PURGE_DELAY_MS as i64,
        kind: Kind::Int {
            max: 1_000_000_000,
            unit: "milliseconds",
        },
    },
    Desc {
        opt: Opt::StatsJson,
        env: b"MIRS_STATS_JSON",
        default: 0,
        kind: Kind::Bool,
    },
    Desc {
        opt: Opt::MaxWarnings,
        env: b"MIRS_MAX_WARNINGS",
        default: MAX_WARNINGS_DEFAULT,
        kind: Kind::Int {
            max: 1_000_000_000,
            unit: "warnings",
        },
    },
    Desc {
        opt: Opt::HugePages,
        env: b"MIRS_HUGE_PAGES",
        default: 1,
        kind: Kind::Bool,
    },
];

/// Number of options.
pub const OPTIONS: usize = 7;

static VALUES: [AtomicI64; OPTIONS] = {
    let mut v = [const { AtomicI64::new(0) }; OPTIONS];
    let mut i = 0;
    while i < OPTIONS {
        v[i] = AtomicI64::new(DESCS[i].default);
        i += 1;
    }
    v
};

fn parse_bool(v: &[u8]) -> Option<i64> {
    let mut lower = [0u8; 8];
    if v.len() > lower.len() {
        return None;
    }
    for (l, c) in lower.iter_mut().zip(v) {
        *l = c.to_ascii_lowercase();
    }
    match &lower[..v.len()] {
        b"1" | b"yes" | b"true" | b"on" => Some(1),
        b"0" | b"no" | b"false" | b"off" => Some(0),
        _ => None,
    }
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u64)
    })
}

/// `v` if it is a valid value for `kind`.
fn check(kind: Kind, v: i64) -> Option<i64> {
    match kind {
        Kind::Bool => (v == 0 || v == 1).then_some(v),
        Kind::Int { max, .. } => (0..=max).contains(&v).then_some(v),
    }
}

fn parse(kind: Kind, v: &[u8]) -> Option<i64> {
    match kind {
        Kind::Bool => parse_bool(v),
        Kind::Int { .. } => check(kind, i64::try_from(parse_u64(v)?).ok()?),
    }
}

/// Read the environment (called once from process init). A bad value is
/// reported once, and the option keeps its default.
pub fn init() {
    for d in &DESCS {
        let Some(v) = crate::platform::env_var(d.env) else {
            continue;
        };
        match parse(d.kind, v) {
            Some(value) => VALUES[d.opt as usize].store(value, Ordering::Relaxed),
            None => warn_bad_value(d, v),
        }
    }
}

/// One warning line, formatted on the stack and written to the platform's
/// error output directly (`output` reads the options: it cannot be used here).
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cold]
fn warn_bad_value(d: &Desc, v: &[u8]) {
    use core::fmt::Write;
    let name = core::str::from_utf8(d.env).unwrap_or("?");
    // At most 64 bytes of the value, shown as text when it is text.
    let shown = core::str::from_utf8(&v[..v.len().min(64)]).unwrap_or("(not UTF-8)");
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = match d.kind {
        Kind::Bool => write!(
            line,
            "mirs: warning: {name}={shown:?} is not 0/1 (no/yes, false/true, off/on): keeping the default {}",
            d.default
        ),
        Kind::Int { max, unit } => write!(
            line,
            "mirs: warning: {name}={shown:?} is not a number of {unit} from 0 to {max}: keeping the default {}",
            d.default
        ),
    };
    // The newline even when the line was cut.
    line.len = line.len.min(line.buf.len() - 1);
    line.buf[line.len] = b'\n';
    crate::platform::write_stderr(&line.buf[..line.len + 1]);
}

/// The option numbered `n` (as in `mirs_option_t`).
pub fn from_index(n: usize) -> Option<Opt> {
    DESCS.get(n).map(|d| d.opt)
}

/// An option's current value.
pub fn get(opt: Opt) -> i64 {
    VALUES[opt as usize].load(Ordering::Relaxed)
}

/// Set an option; false (and nothing changed) for a value out of its range.
pub fn set(opt: Opt, value: i64) -> bool {
    match check(DESCS[opt as usize].kind, value) {
        Some(v) => {
            VALUES[opt as usize].store(v, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

pub fn verbose() -> bool {
    get(Opt::Verbose) != 0
}

/// Errors in the calling program (invalid or double frees) abort the process.
pub fn abort_on_error() -> bool {
    get(Opt::AbortOnError) != 0
}

pub fn purge_delay_ms() -> u64 {
    get(Opt::PurgeDelay) as u64
}

pub fn max_warnings() -> u64 {
    get(Opt::MaxWarnings) as u64
}

/// Big blocks may ask the OS for transparent huge pages (region.rs).
pub fn huge_pages() -> bool {
    get(Opt::HugePages) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(parse_bool(b"1"), Some(1));
        assert_eq!(parse_bool(b"YES"), Some(1));
        assert_eq!(parse_bool(b"Off"), Some(0));
        assert_eq!(parse_bool(b""), None);
        assert_eq!(parse_bool(b"2"), None);
        assert_eq!(parse_u64(b"250"), Some(250));
        assert_eq!(parse_u64(b"2x"), None);
        assert_eq!(parse_u64(b""), None);
        let int = DESCS[Opt::PurgeDelay as usize].kind;
        assert_eq!(parse(int, b"abc"), None);
        assert_eq!(parse(int, b"1000000001"), None);
        assert_eq!(parse(int, b"0"), Some(0));
    }

    #[test]
    fn table_is_in_order() {
        for (i, d) in DESCS.iter().enumerate() {
            assert_eq!(d.opt as usize, i);
            assert_eq!(from_index(i), Some(d.opt));
        }
        assert_eq!(from_index(OPTIONS), None);
    }
}
