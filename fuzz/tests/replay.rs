//! The deterministic driver: the same programs the fuzzer runs, without
//! libFuzzer. `make test-fuzz` runs it when `cargo fuzz` is not installed.
//!
//! - `corpus`: every file of `corpus/ops/` (the committed seeds, plus
//!   whatever a local fuzzing run added) and of `artifacts/ops/` (crashes
//!   found by a fuzzing run, kept as regressions once fixed);
//! - `seeds`: the hand-written programs of [`seeds`], which also write the
//!   committed seed corpus when `MIRS_FUZZ_WRITE_SEEDS=1`;
//! - `generated`: `MIRS_FUZZ_CASES` (default 1500) pseudo-random inputs from
//!   fixed seeds, so a failure names a reproducible case.

use mirs_fuzz::{decode, encode, run, run_ops, Op, SLOTS};
use std::path::Path;

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

#[test]
fn corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = files_in(&root.join("corpus/ops"));
    assert!(
        corpus.len() >= 5,
        "the seed corpus is missing from fuzz/corpus/ops"
    );
    for file in corpus.iter().chain(&files_in(&root.join("artifacts/ops"))) {
        let data = std::fs::read(file).expect("read a corpus file");
        eprintln!("replay {} ({} bytes)", file.display(), data.len());
        run(&data);
    }
}

/// Structured programs that reach each path on purpose.
fn seeds() -> Vec<(&'static str, Vec<Op>)> {
    use Op::*;
    let slots = SLOTS as u8;
    let mut out = Vec::new();

    // Every size class edge, freed in a different order than allocated.
    let mut sizes = Vec::new();
    for (i, size) in [
        0,
        1,
        8,
        9,
        16,
        17,
        24,
        100,
        1000,
        1024,
        1025,
        4096,
        16 << 10,
        (16 << 10) + 1,
        100 << 10,
        128 << 10,
        500 << 10,
        2 << 20,
        (2 << 20) + 1,
        5 << 20,
    ]
    .into_iter()
    .enumerate()
    {
        sizes.push(Malloc {
            slot: i as u8,
            size,
        });
    }
    sizes.extend((0..20).map(|i| Free { slot: (i * 7) % 20 }));
    out.push(("seed-size-classes", sizes));

    // calloc after dirty frees, every count.
    let mut calloc = Vec::new();
    for i in 0..16u8 {
        calloc.push(Malloc {
            slot: i,
            size: 64 + i as usize * 100,
        });
    }
    calloc.extend((0..16).map(|slot| Free { slot }));
    for i in 0..16u8 {
        calloc.push(Calloc {
            slot: i,
            count: i,
            size: 64 + i as usize * 100,
        });
    }
    calloc.push(Calloc {
        slot: 20,
        count: 3,
        size: 3 << 20,
    });
    out.push(("seed-calloc", calloc));

    // realloc growing through every page kind, then shrinking in place, then to 0.
    let mut realloc = vec![Realloc { slot: 0, size: 5 }];
    let mut size = 5;
    while size < 6 << 20 {
        size = size * 3 + 7;
        realloc.push(Realloc { slot: 0, size });
        realloc.push(Malloc { slot: 1, size: 48 });
    }
    realloc.extend([
        Shrink { slot: 0, keep: 200 },
        Shrink { slot: 0, keep: 20 },
        Shrink { slot: 0, keep: 255 },
    ]);
    realloc.push(Realloc { slot: 0, size: 0 });
    out.push(("seed-realloc", realloc));

    // Every alignment up to 1 MiB, small and large sizes, some reallocated.
    let mut aligned = Vec::new();
    for shift in 0..=20u8 {
        aligned.push(Aligned {
            slot: shift,
            shift,
            size: 24 + shift as usize * 40,
        });
        aligned.push(Aligned {
            slot: 32 + shift,
            shift,
            size: (shift as usize) << 15,
        });
    }
    aligned.push(Aligned {
        slot: 60,
        shift: 20,
        size: 3 << 20,
    });
    aligned.extend((0..21).map(|s| Realloc {
        slot: s,
        size: 3000,
    }));
    aligned.extend((0..21).map(|s| FreeRemote { slot: 32 + s }));
    out.push(("seed-aligned", aligned));

    // Cross-thread traffic: remote frees of local blocks, local frees of the
    // worker's blocks, the worker exiting with blocks live (abandon, reclaim).
    let mut remote = Vec::new();
    for round in 0..4u8 {
        for i in 0..slots / 2 {
            remote.push(Malloc {
                slot: i,
                size: 16 + (i as usize * 24 + round as usize * 8) % 3000,
            });
            remote.push(RemoteAlloc {
                slot: slots / 2 + i,
                size: 32 + i as usize * 200,
            });
        }
        remote.extend((0..slots / 2).map(|i| FreeRemote { slot: i }));
        remote.push(WorkerRestart);
        remote.extend((slots / 2..slots).step_by(2).map(|slot| Free { slot }));
        remote.push(Collect {
            force: round % 2 == 1,
        });
    }
    remote.push(Flush);
    out.push(("seed-cross-thread", remote));

    // Many frees of one page then reuse: full pages, delayed frees.
    let mut full = Vec::new();
    for i in 0..slots {
        full.push(Malloc {
            slot: i,
            size: 4000,
        });
    }
    full.extend((0..slots).map(|slot| FreeRemote { slot }));
    full.push(Flush);
    for i in 0..slots {
        full.push(Malloc {
            slot: i,
            size: 4000,
        });
    }
    full.push(Collect { force: true });
    out.push(("seed-full-pages", full));
    out
}

#[test]
fn seeds_run_and_round_trip() {
    let write = std::env::var_os("MIRS_FUZZ_WRITE_SEEDS").is_some_and(|v| v == "1");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/ops");
    for (name, ops) in seeds() {
        let bytes = encode(&ops);
        let decoded = decode(&bytes);
        assert_eq!(
            decoded.len(),
            ops.len(),
            "{name}: encode/decode changed the op count"
        );
        run_ops(&decoded);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), &bytes).unwrap();
        }
    }
}

#[test]
fn generated() {
    let cases: u64 = std::env::var("MIRS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    for case in 0..cases {
        let mut x = 0x2545_f491_4f6c_dd1d ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let len = 1 + next() as usize % 2048;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // A failure panics inside; name the case first so it can be replayed.
        eprintln!("generated case {case} ({len} bytes)");
        run(&data);
    }
}
