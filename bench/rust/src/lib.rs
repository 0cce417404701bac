//! A threaded collections workload, the allocation pattern of ordinary Rust
//! programs: `String`s built by pushes, `HashMap` and `BTreeMap` churn, a
//! `Vec` grown element by element (a chain of reallocs), and boxes handed
//! to the next thread, which frees them (cross-thread frees). Every thread
//! does the same fixed work (`rounds` rounds), so the wall time at N threads
//! shows how the allocator scales.
//!
//! Usage: `rust-<allocator> THREADS ROUNDS`; prints one line:
//! `allocator threads rounds seconds peak_rss_kib checksum`.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Instant;

/// xorshift64*: a fixed, cheap sequence per thread (no allocation).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

type Batch = Vec<Box<[u64; 6]>>;

/// The state one thread churns.
struct Worker {
    rng: Rng,
    strings: Vec<String>,
    map: HashMap<u64, Vec<u8>>,
    tree: BTreeMap<String, usize>,
    to_next: Sender<Batch>,
    from_prev: Receiver<Batch>,
    sum: u64,
}

impl Worker {
    fn round(&mut self, r: usize) {
        // Strings of 1..=100 bytes, built a byte at a time.
        for _ in 0..100 {
            let i = self.rng.below(self.strings.len());
            let len = 1 + self.rng.below(100);
            let mut s = String::new();
            for k in 0..len {
                s.push((b'a' + (k % 26) as u8) as char);
            }
            self.strings[i] = s;
        }
        // A hash map of byte vectors, 8..=256 bytes, over 4096 keys.
        for _ in 0..100 {
            let k = self.rng.below(4096) as u64;
            let len = 8 + self.rng.below(249);
            self.map.insert(k, vec![k as u8; len]);
            let gone = self.rng.below(4096) as u64;
            if let Some(v) = self.map.remove(&gone) {
                self.sum += v.len() as u64;
            }
        }
        // An ordered map with formatted keys, at most 2000 entries.
        for _ in 0..50 {
            let k = self.rng.below(10_000);
            self.tree.insert(format!("key-{k:05}"), r);
        }
        while self.tree.len() > 2000 {
            self.tree.pop_first();
        }
        // A vector grown by pushes, then dropped.
        let n = 1 + self.rng.below(2048);
        let mut v = Vec::new();
        for i in 0..n {
            v.push(i as u64);
        }
        self.sum += black_box(&v).len() as u64;
        // Boxes for the next thread; free what the previous one sent.
        let batch: Batch = (0..32).map(|i| Box::new([(r + i) as u64; 6])).collect();
        let _ = self.to_next.send(batch);
        while let Ok(b) = self.from_prev.try_recv() {
            self.sum += b.iter().map(|x| x[0]).sum::<u64>() & 1;
        }
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Run the workload and print its line; `allocator` names the binary's
/// `#[global_allocator]`.
pub fn main(allocator: &str) {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("THREADS ROUNDS"))
        .collect();
    let (threads, rounds) = match args[..] {
        [t, r] if t > 0 => (t, r),
        _ => panic!("usage: rust-{allocator} THREADS ROUNDS"),
    };
    // Thread t sends to thread t + 1 (mod threads).
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads).map(|_| channel::<Batch>()).unzip();
    let mut receivers: Vec<Option<Receiver<Batch>>> = receivers.into_iter().map(Some).collect();
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let to_next = senders[(t + 1) % threads].clone();
            let from_prev = receivers[t].take().expect("one receiver per thread");
            std::thread::spawn(move || {
                let mut w = Worker {
                    rng: Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1)),
                    strings: vec![String::new(); 1000],
                    map: HashMap::new(),
                    tree: BTreeMap::new(),
                    to_next,
                    from_prev,
                    sum: 0,
                };
                for r in 0..rounds {
                    w.round(r);
                }
                // Batches still queued for this thread are dropped with the
                // receiver, after the senders are gone (see below).
                w.sum + w.strings.iter().map(String::len).sum::<usize>() as u64
            })
        })
        .collect();
    drop(senders);
    let checksum: u64 = handles.into_iter().map(|h| h.join().expect("worker")).sum();
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{allocator} {threads} {rounds} {seconds:.4} {} {checksum}",
        peak_rss_kib()
    );
}
