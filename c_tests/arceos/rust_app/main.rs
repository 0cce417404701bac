//! A Rust app on ArceOS's axstd for the global-allocator switch
//! (c_tests/arceos/axalloc.py, docs/arceos.md section 9). Built with stock
//! axalloc and with axalloc switched to mirs; what it runs is chosen at
//! build time:
//!
//! - `APP_MODE=stress` (`make test-arceos`): APP_THREADS threads x ROUNDS
//!   rounds of Vec/Box/String/BTreeMap churn, a third of the blocks freed
//!   by another thread (mailboxes), blocks outliving their thread into the
//!   next round, every block's contents checked before it is freed; rounds
//!   repeat until APP_SOAK_MS (guest) have passed; with mirs, a
//!   timer-interrupt hook allocates, checks and frees all along.
//!   Prints `rust-stress: ops=N corrupt=N irq_ops=N irq_corrupt=N ...`.
//! - `APP_MODE=bench`: APP_THREADS threads x APP_OPS operations each (a
//!   fixed count, so guest instructions per operation can be compared),
//!   the same mix without checks. Prints `rust-bench: threads=T ops=N ns=N`.
//!
//! Sizes follow bench_malloc_thread's inverse-square distribution over
//! [4, 32768] bytes (integer arithmetic: no floating point needed).

#![no_std]
#![no_main]

extern crate alloc;
#[macro_use]
extern crate axstd as std;

use std::boxed::Box;
use std::collections::BTreeMap;
use std::string::String;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;
use std::vec::Vec;

const MODE: &str = match option_env!("APP_MODE") {
    Some(m) => m,
    None => "stress",
};
const THREADS: usize = parse(option_env!("APP_THREADS"), 4);
const OPS: usize = parse(option_env!("APP_OPS"), 200_000);
/// At least this many rounds, and more until APP_SOAK_MS guest milliseconds
/// have passed (the interrupt test's duration).
const ROUNDS: usize = 4;
const SOAK_MS: u128 = parse(option_env!("APP_SOAK_MS"), 3000) as u128;
const STRESS_OPS: usize = 6_000;
const SLOTS: usize = 512;

const fn parse(s: Option<&str>, default: usize) -> usize {
    let Some(s) = s else { return default };
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    v
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// bench_malloc_thread's size: p(s) ~ 1/s^2 on [4, 32768].
    fn size(&mut self) -> usize {
        const A: u64 = 4;
        const B: u64 = 32768;
        let u = self.next() >> 32; // u / 2^32 in [0, 1)
        let den = (B << 32) - u * (B - A);
        ((A * B) << 32).div_ceil(den).clamp(A, B) as usize
    }
}

/// `APP_RAW` (bench): every block is a bare allocation (one byte
/// written), so an operation is one allocation and one free and little else.
const RAW: bool = option_env!("APP_RAW").is_some();

/// A bare allocation of `size` bytes from the global allocator.
struct RawBlock(core::ptr::NonNull<u8>, usize);

// SAFETY: the block is plain memory owned by this value alone.
unsafe impl Send for RawBlock {}

impl RawBlock {
    fn new(size: usize) -> RawBlock {
        let layout = core::alloc::Layout::from_size_align(size, 1).unwrap();
        // SAFETY: `size` is at least 4, so the layout is not zero-sized.
        let p = unsafe { alloc::alloc::alloc(layout) };
        let Some(p) = core::ptr::NonNull::new(p) else {
            alloc::alloc::handle_alloc_error(layout)
        };
        // SAFETY: the block has `size >= 1` writable bytes.
        unsafe { p.as_ptr().write(size as u8) };
        RawBlock(p, size)
    }
}

impl Drop for RawBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe {
            alloc::alloc::dealloc(
                self.0.as_ptr(),
                core::alloc::Layout::from_size_align_unchecked(self.1, 1),
            )
        };
    }
}

/// A block of some kind, its contents derived from `seed`.
enum Block {
    Bytes(Vec<u8>),
    Words(Box<[u64]>),
    Text(String),
    Raw(#[allow(dead_code)] RawBlock),
}

impl Block {
    fn new(rng: &mut Rng, seed: u64) -> Block {
        let size = rng.size();
        if RAW {
            return Block::Raw(RawBlock::new(size));
        }
        match seed % 3 {
            0 => Block::Bytes((0..size).map(|i| (seed as usize + i) as u8).collect()),
            1 => Block::Words(
                (0..size.div_ceil(8))
                    .map(|i| seed ^ i as u64)
                    .collect::<Vec<_>>()
                    .into_boxed_slice(),
            ),
            _ => {
                let mut s = String::new();
                for i in 0..size {
                    s.push((b'a' + ((seed as usize + i) % 26) as u8) as char);
                }
                Block::Text(s)
            }
        }
    }

    fn check(&self, seed: u64) -> bool {
        match self {
            Block::Bytes(v) => v
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (seed as usize + i) as u8),
            Block::Words(w) => w.iter().enumerate().all(|(i, &x)| x == seed ^ i as u64),
            Block::Raw(_) => true,
            Block::Text(s) => s
                .bytes()
                .enumerate()
                .all(|(i, b)| b == b'a' + ((seed as usize + i) % 26) as u8),
        }
    }
}

type Mailbox = Mutex<Vec<(Block, u64)>>;

struct Shared {
    mailboxes: Vec<Mailbox>,
    ops: AtomicUsize,
    corrupt: AtomicUsize,
    handed: AtomicUsize,
    /// Blocks a thread leaves behind for the next round's thread.
    leftovers: Mutex<Vec<(Block, u64)>>,
}

fn check_into(shared: &Shared, block: &Block, seed: u64) {
    if !block.check(seed) {
        shared.corrupt.fetch_add(1, Ordering::Relaxed);
    }
}

/// One stress thread: churn its slots, hand a third of the blocks to the
/// next thread's mailbox, check what it frees, keep a BTreeMap in flux.
fn stress_thread(shared: Arc<Shared>, me: usize, round: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((me as u64 + 1) << 20) ^ round as u64);
    let mut slots: Vec<Option<(Block, u64)>> = (0..SLOTS).map(|_| None).collect();
    let mut map: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    // Adopt some blocks of the previous round's threads (already exited).
    let adopted: Vec<(Block, u64)> = {
        let mut l = shared.leftovers.lock();
        let n = l.len() / THREADS.max(1) + 1;
        let at = l.len().saturating_sub(n);
        l.split_off(at)
    };
    for (b, s) in adopted {
        check_into(&shared, &b, s);
    }
    for op in 0..STRESS_OPS {
        let i = (rng.next() % SLOTS as u64) as usize;
        if let Some((b, s)) = slots[i].take() {
            if rng.next() % 3 == 0 {
                let to = (me + 1) % THREADS;
                shared.mailboxes[to].lock().push((b, s));
                shared.handed.fetch_add(1, Ordering::Relaxed);
            } else {
                check_into(&shared, &b, s);
            }
        }
        let seed = rng.next();
        slots[i] = Some((Block::new(&mut rng, seed), seed));
        if op % 16 == 0 {
            let k = rng.next() % 256;
            if map.remove(&k).is_none() {
                map.insert(k, alloc::vec![k as u8; (k as usize) * 3 + 1]);
            }
        }
        if op % 32 == 0 {
            let mine: Vec<(Block, u64)> = core::mem::take(&mut *shared.mailboxes[me].lock());
            for (b, s) in mine {
                check_into(&shared, &b, s);
            }
        }
    }
    for (k, v) in &map {
        if v.len() != (*k as usize) * 3 + 1 || v.iter().any(|&b| b != *k as u8) {
            shared.corrupt.fetch_add(1, Ordering::Relaxed);
        }
    }
    // A quarter of the slots outlive this thread.
    let mut keep = Vec::new();
    for (i, slot) in slots.into_iter().enumerate() {
        if let Some((b, s)) = slot {
            if i % 4 == 0 {
                keep.push((b, s));
            } else {
                check_into(&shared, &b, s);
            }
        }
    }
    shared.leftovers.lock().extend(keep);
    shared.ops.fetch_add(STRESS_OPS, Ordering::Relaxed);
}

// ---------------------------------------------------------------- interrupt test (mirs only)

#[cfg(feature = "mirs")]
mod irq {
    use super::*;
    use std::sync::atomic::AtomicPtr;

    const RING: usize = 64;
    pub static OPS: AtomicUsize = AtomicUsize::new(0);
    pub static CORRUPT: AtomicUsize = AtomicUsize::new(0);
    pub static TICKS: AtomicUsize = AtomicUsize::new(0);
    static RUNNING: AtomicBool = AtomicBool::new(false);
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    /// Blocks made in interrupt context, freed by a later interrupt (on
    /// any CPU) or by the main task at the end.
    static SLOTS: [AtomicPtr<Vec<u64>>; RING] =
        [const { AtomicPtr::new(core::ptr::null_mut()) }; RING];

    fn check(v: &Vec<u64>) -> bool {
        let seed = v[0];
        v.iter()
            .enumerate()
            .skip(1)
            .all(|(i, &x)| x == seed.wrapping_add(i as u64))
    }

    /// Every timer interrupt on every CPU: 8 x (take a slot's block,
    /// check and free it, allocate a new one of 8..2 KiB and put it there).
    fn tick() {
        if !RUNNING.load(Ordering::Acquire) {
            return;
        }
        TICKS.fetch_add(1, Ordering::Relaxed);
        for _ in 0..8 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let mut rng = Rng(n as u64 * 0x9e37_79b9 + 1);
            let len = 1 + (rng.next() % 256) as usize;
            let seed = rng.next();
            let v: Vec<u64> = (0..len)
                .map(|i| {
                    if i == 0 {
                        seed
                    } else {
                        seed.wrapping_add(i as u64)
                    }
                })
                .collect();
            let fresh = Box::into_raw(Box::new(v));
            let old = SLOTS[n % RING].swap(fresh, Ordering::AcqRel);
            if !old.is_null() {
                // SAFETY: each pointer in SLOTS came from Box::into_raw and
                // is taken out by exactly one swap.
                let old = unsafe { Box::from_raw(old) };
                if !check(&old) {
                    CORRUPT.fetch_add(1, Ordering::Relaxed);
                }
            }
            OPS.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn start() {
        RUNNING.store(true, Ordering::Release);
        mirs_arceos::global::set_timer_hook(Some(tick));
    }

    pub fn stop() {
        RUNNING.store(false, Ordering::Release);
        mirs_arceos::global::set_timer_hook(None);
        for slot in &SLOTS {
            let p = slot.swap(core::ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: as in `tick`.
                let v = unsafe { Box::from_raw(p) };
                if !check(&v) {
                    CORRUPT.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- memory

const PAGE: usize = 4096;
static PEAK_PAGES: AtomicUsize = AtomicUsize::new(0);

fn used_kib() -> usize {
    let pages = axalloc::global_allocator().used_pages();
    PEAK_PAGES.fetch_max(pages, Ordering::Relaxed);
    pages * PAGE / 1024
}

fn memory_line(tag: &str) {
    let now = used_kib();
    print!(
        "{tag}: memory used_kib={now} peak_kib={}",
        PEAK_PAGES.load(Ordering::Relaxed) * PAGE / 1024
    );
    #[cfg(feature = "mirs")]
    {
        let st = mirs_arceos::global::stats();
        print!(
            " provider_kib={} provider_peak_kib={} fallback_allocs={} boot_frees={}",
            mirs_arceos::mirs_arceos_provider_held() / 1024,
            mirs_arceos::mirs_arceos_provider_peak() / 1024,
            st.fallback_allocs,
            st.foreign_frees
        );
    }
    println!();
}

fn stress() {
    println!(
        "rust-stress: {THREADS} threads x {ROUNDS} rounds x {STRESS_OPS} ops, sizes 4..32768 B (1/s^2), \
         a third handed to another thread, a quarter outliving their thread"
    );
    #[cfg(feature = "mirs")]
    irq::start();
    let shared = Arc::new(Shared {
        mailboxes: (0..THREADS).map(|_| Mutex::new(Vec::new())).collect(),
        ops: AtomicUsize::new(0),
        corrupt: AtomicUsize::new(0),
        handed: AtomicUsize::new(0),
        leftovers: Mutex::new(Vec::new()),
    });
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                used_kib();
                thread::sleep(core::time::Duration::from_millis(5));
            }
        })
    };
    let t0 = Instant::now();
    let mut round = 0;
    while round < ROUNDS || t0.elapsed().as_millis() < SOAK_MS {
        let handles: Vec<_> = (0..THREADS)
            .map(|me| {
                let shared = shared.clone();
                thread::spawn(move || stress_thread(shared, me, round))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        if round < ROUNDS {
            println!("rust-stress: round {round} done");
        }
        round += 1;
    }
    // Whatever is still in flight: mailboxes and leftovers.
    for mb in &shared.mailboxes {
        for (b, s) in core::mem::take(&mut *mb.lock()) {
            check_into(&shared, &b, s);
        }
    }
    for (b, s) in core::mem::take(&mut *shared.leftovers.lock()) {
        check_into(&shared, &b, s);
    }
    done.store(true, Ordering::Release);
    sampler.join().unwrap();
    let elapsed = t0.elapsed();
    #[cfg(feature = "mirs")]
    {
        irq::stop();
        println!(
            "rust-stress: irq ticks={} irq_ops={} irq_corrupt={}",
            irq::TICKS.load(Ordering::Relaxed),
            irq::OPS.load(Ordering::Relaxed),
            irq::CORRUPT.load(Ordering::Relaxed)
        );
    }
    memory_line("rust-stress");
    #[cfg(feature = "mirs")]
    {
        mirs_arceos::global::collect();
        memory_line("rust-stress: after collect");
        // Where the held memory is (docs/arceos.md 9.3): after the collect.
        mirs_arceos::global::print_stats();
    }
    println!(
        "rust-stress: rounds={round} ops={} handed={} corrupt={} in {} ms",
        shared.ops.load(Ordering::Relaxed),
        shared.handed.load(Ordering::Relaxed),
        shared.corrupt.load(Ordering::Relaxed),
        elapsed.as_millis()
    );
}

// ---------------------------------------------------------------- benchmark

/// One benchmark thread: OPS operations, each replacing a random slot's
/// block (a Vec, a Box or a String of a random size), an eighth of the old
/// blocks sent to the next thread instead of dropped; a BTreeMap insert or
/// remove every 16 operations; the mailbox drained every 64.
fn bench_thread(boxes: Arc<Vec<Mutex<Vec<Block>>>>, me: usize, start: Arc<AtomicUsize>) {
    let n = boxes.len();
    let mut rng = Rng(0x2545_f491 ^ ((me as u64 + 7) << 24));
    let mut slots: Vec<Option<Block>> = (0..SLOTS).map(|_| None).collect();
    let mut map: BTreeMap<u64, u64> = BTreeMap::new();
    start.fetch_add(1, Ordering::AcqRel);
    while start.load(Ordering::Acquire) < n {
        thread::yield_now();
    }
    for op in 0..OPS {
        let i = (rng.next() % SLOTS as u64) as usize;
        let seed = rng.next();
        let old = slots[i].replace(Block::new(&mut rng, seed));
        if let Some(b) = old {
            if n > 1 && seed % 8 == 0 {
                boxes[(me + 1) % n].lock().push(b);
            }
        }
        if op % 16 == 0 {
            let k = seed % 1024;
            if map.remove(&k).is_none() {
                map.insert(k, seed);
            }
        }
        if op % 64 == 0 && n > 1 {
            drop(core::mem::take(&mut *boxes[me].lock()));
        }
    }
}

/// The time-stamp counter: under QEMU `-icount shift=0` it counts one tick
/// per guest instruction (ArceOS's clock assumes a 4 GHz TSC, so its
/// nanoseconds would be a quarter of that).
fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86_64.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

fn bench() {
    let boxes: Arc<Vec<Mutex<Vec<Block>>>> =
        Arc::new((0..THREADS).map(|_| Mutex::new(Vec::new())).collect());
    let start = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let tsc0 = tsc();
    let handles: Vec<_> = (0..THREADS)
        .map(|me| {
            let boxes = boxes.clone();
            let start = start.clone();
            thread::spawn(move || bench_thread(boxes, me, start))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let ticks = tsc() - tsc0;
    let ns = t0.elapsed().as_nanos();
    memory_line("rust-bench");
    #[cfg(feature = "mirs")]
    mirs_arceos::global::print_stats();
    println!(
        "rust-bench: threads={THREADS} ops={} ns={ns} tsc={ticks}",
        THREADS * OPS
    );
}

#[unsafe(no_mangle)]
fn main() {
    used_kib();
    if MODE == "bench" {
        bench();
    } else {
        stress();
    }
}
