//! The mirs fuzz interpreter, shared by the libFuzzer target
//! (`fuzz_targets/ops.rs`) and the deterministic driver (`tests/replay.rs`).
//!
//! An input is a program of allocator operations ([`Op`], decoded from bytes
//! by [`decode`]; [`encode`] is its inverse for hand-written programs).
//! [`run`] executes it against a model: [`SLOTS`] slots of live blocks, each
//! block filled over its whole usable size with a pattern derived from its
//! seed. After every step it checks, for the block the step produced, the
//! alignment, `usable_size >= requested`, ownership, zeroing (calloc), the
//! preserved prefix (realloc) and that its usable range overlaps no other
//! live block; for every live block, the words at its start, middle and end
//! and its usable size; and before any block is freed, its whole pattern.
//! At the end of the input every block is checked and freed and the heap's
//! invariants are walked.
//!
//! Cross-thread frees: blocks are handed to a persistent worker thread in
//! batches; the interpreter waits for each batch to be freed (a join point),
//! so a run is deterministic. The worker also allocates blocks that the
//! main thread later frees, and is replaced on demand (its heap is then
//! abandoned with those blocks live, and freeing them reclaims the segments).

use mirs::c_api::prefixed::{mirs_aligned_alloc, mirs_posix_memalign, mirs_realloc};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

/// Live-block slots an input can address.
pub const SLOTS: usize = 64;
/// Largest alignment asked for: 1 << ALIGN_SHIFT_MAX (1 MiB).
pub const ALIGN_SHIFT_MAX: u32 = 20;
/// Cross-thread frees queued before the batch is handed over.
const BATCH: usize = 8;
/// Requested bytes live at once (more is skipped, to stay within the fuzzer's RSS limit).
const LIVE_BYTES_MAX: usize = 96 << 20;
const LARGE_BASE: usize = 512 << 10;
const HUGE_BASE: usize = 2 << 20;

/// One operation of a fuzz program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `malloc(size)` into `slot` (an occupied slot is freed first; so for every allocation).
    Malloc { slot: u8, size: usize },
    /// `calloc(count, size / count)`.
    Calloc { slot: u8, count: u8, size: usize },
    /// `realloc(slot, size)` (an empty slot: `realloc(NULL, size)`; size 0 frees).
    Realloc { slot: u8, size: usize },
    /// An aligned allocation of `1 << shift` bytes' alignment: posix_memalign when
    /// `shift >= 3`, aligned_alloc below.
    Aligned { slot: u8, shift: u8, size: usize },
    /// `free(slot)` on this thread.
    Free { slot: u8 },
    /// Hand `slot` to the worker thread, which frees it.
    FreeRemote { slot: u8 },
    /// The worker allocates `size` bytes into `slot` (freed later by this thread).
    RemoteAlloc { slot: u8, size: usize },
    /// Hand the queued cross-thread frees over now.
    Flush,
    /// `mirs_collect(force)`.
    Collect { force: bool },
    /// The worker thread exits (its heap is abandoned) and a new one starts.
    WorkerRestart,
    /// Shrink `slot` by realloc to `size * keep / 256` (the in-place path).
    Shrink { slot: u8, keep: u8 },
}

const OPCODES: u8 = 11;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn u16(&mut self) -> usize {
        self.byte() as usize | (self.byte() as usize) << 8
    }

    fn slot(&mut self) -> u8 {
        self.byte() % SLOTS as u8
    }

    /// Sizes, weighted to small: 1/2 below 64 bytes, 1/4 up to 1 KiB, 1/8 up to
    /// 16 KiB, 3/32 up to 512 KiB, 1/64 large (up to 2 MiB), 1/64 huge.
    fn size(&mut self) -> usize {
        match self.byte() & 31 {
            0..=15 => self.byte() as usize % 64,
            16..=23 => self.u16() % 1025,
            24..=27 => self.u16() % (16 << 10 | 1),
            28..=30 => self.u16() * 8,
            _ => {
                let b = self.byte();
                if b & 1 == 0 {
                    LARGE_BASE + self.u16() * 24
                } else {
                    HUGE_BASE + (b >> 1) as usize % 64 * (64 << 10) + self.u16()
                }
            }
        }
    }
}

/// The program in `data`; missing trailing bytes read as zero.
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut r = Reader { data, pos: 0 };
    let mut ops = Vec::new();
    while r.pos < data.len() {
        let op = match r.byte() % OPCODES {
            0 => Op::Malloc {
                slot: r.slot(),
                size: r.size(),
            },
            1 => Op::Calloc {
                slot: r.slot(),
                count: r.byte(),
                size: r.size(),
            },
            2 => Op::Realloc {
                slot: r.slot(),
                size: r.size(),
            },
            3 => Op::Aligned {
                slot: r.slot(),
                shift: r.byte() % (ALIGN_SHIFT_MAX as u8 + 1),
                size: r.size(),
            },
            4 => Op::Free { slot: r.slot() },
            5 => Op::FreeRemote { slot: r.slot() },
            6 => Op::RemoteAlloc {
                slot: r.slot(),
                size: r.size(),
            },
            7 => Op::Flush,
            8 => Op::Collect {
                force: r.byte() & 1 == 1,
            },
            9 => Op::WorkerRestart,
            _ => Op::Shrink {
                slot: r.slot(),
                keep: r.byte(),
            },
        };
        ops.push(op);
    }
    ops
}

fn encode_size(out: &mut Vec<u8>, size: usize) {
    let u16 =
        |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v.min(0xffff) as u16).to_le_bytes());
    if size < 64 {
        out.extend([0, size as u8]);
    } else if size <= 1024 {
        out.push(16);
        u16(out, size);
    } else if size <= 16 << 10 {
        out.push(24);
        u16(out, size);
    } else if size < LARGE_BASE {
        out.push(28);
        u16(out, size.div_ceil(8));
    } else if size < HUGE_BASE {
        out.extend([31, 0]);
        u16(out, (size - LARGE_BASE).div_ceil(24));
    } else {
        let extra = (size - HUGE_BASE).min(63 * (64 << 10) + 0xffff);
        out.extend([31, ((extra >> 16) as u8) << 1 | 1]);
        u16(out, extra & 0xffff);
    }
}

/// Bytes that [`decode`] turns into `ops` (sizes rounded to what the encoding holds).
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for &op in ops {
        match op {
            Op::Malloc { slot, size } => {
                out.extend([0, slot]);
                encode_size(&mut out, size);
            }
            Op::Calloc { slot, count, size } => {
                out.extend([1, slot, count]);
                encode_size(&mut out, size);
            }
            Op::Realloc { slot, size } => {
                out.extend([2, slot]);
                encode_size(&mut out, size);
            }
            Op::Aligned { slot, shift, size } => {
                out.extend([3, slot, shift]);
                encode_size(&mut out, size);
            }
            Op::Free { slot } => out.extend([4, slot]),
            Op::FreeRemote { slot } => out.extend([5, slot]),
            Op::RemoteAlloc { slot, size } => {
                out.extend([6, slot]);
                encode_size(&mut out, size);
            }
            Op::Flush => out.push(7),
            Op::Collect { force } => out.extend([8, force as u8]),
            Op::WorkerRestart => out.push(9),
            Op::Shrink { slot, keep } => out.extend([10, slot, keep]),
        }
    }
    out
}

// ------------------------------------------------------------------ patterns

/// Bytes of a block's pattern before it repeats. Filling and checking copy
/// and compare whole slices (memcpy / memcmp), so the fuzzer's comparison
/// tracing sees one call per chunk rather than one per byte.
const TEMPLATE: usize = 256;

/// The pattern of a block with `seed`: byte `i` is `template(seed)[i % TEMPLATE]`.
fn template(seed: u64) -> [u8; TEMPLATE] {
    let mut t = [0u8; TEMPLATE];
    for (w, chunk) in t.chunks_exact_mut(8).enumerate() {
        let word = seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    t
}

/// Fill `len` bytes at `p` with the pattern of `seed`.
fn fill(p: usize, len: usize, seed: u64) {
    let t = template(seed);
    let mut i = 0;
    while i < len {
        let n = TEMPLATE.min(len - i);
        // SAFETY: the block has `len` usable bytes.
        unsafe { std::ptr::copy_nonoverlapping(t.as_ptr(), (p + i) as *mut u8, n) };
        i += n;
    }
}

/// The first offset in `from..to` whose byte differs from the pattern of `seed`.
fn mismatch(p: usize, from: usize, to: usize, seed: u64) -> Option<usize> {
    let t = template(seed);
    let mut i = from;
    while i < to {
        let k = i % TEMPLATE;
        let n = (TEMPLATE - k).min(to - i);
        // SAFETY: `p + from .. p + to` lies in the block.
        let got = unsafe { std::slice::from_raw_parts((p + i) as *const u8, n) };
        if got != &t[k..k + n] {
            return Some(
                i + got
                    .iter()
                    .zip(&t[k..])
                    .position(|(a, b)| a != b)
                    .unwrap_or(0),
            );
        }
        i += n;
    }
    None
}

// ------------------------------------------------------------------ the worker

enum Cmd {
    Free(Vec<usize>),
    Alloc(usize),
    Exit,
}

struct Worker {
    tx: Sender<Cmd>,
    rx: Receiver<usize>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn start() -> Worker {
        let (tx, cmds) = channel::<Cmd>();
        let (replies, rx) = channel::<usize>();
        let handle = std::thread::Builder::new()
            .name("mirs-fuzz-worker".into())
            .spawn(move || {
                for cmd in cmds {
                    let reply = match cmd {
                        Cmd::Free(blocks) => {
                            // SAFETY: the interpreter hands over blocks it allocated and forgets them.
                            blocks
                                .iter()
                                .for_each(|&p| unsafe { mirs::free(p as *mut u8) });
                            blocks.len()
                        }
                        Cmd::Alloc(size) => mirs::malloc(size) as usize,
                        Cmd::Exit => break,
                    };
                    replies
                        .send(reply)
                        .expect("the interpreter waits for each reply");
                }
            })
            .expect("spawn the worker thread");
        Worker {
            tx,
            rx,
            handle: Some(handle),
        }
    }

    fn call(&self, cmd: Cmd) -> usize {
        self.tx.send(cmd).expect("worker alive");
        self.rx.recv().expect("worker replies")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Exit);
        if let Some(h) = self.handle.take() {
            h.join().expect("worker thread exits cleanly");
        }
    }
}

thread_local! {
    /// One worker per interpreting thread, kept across inputs (thread start-up
    /// would dominate short inputs otherwise).
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

fn with_worker<R>(f: impl FnOnce(&Worker) -> R) -> R {
    WORKER.with(|w| f(w.borrow_mut().get_or_insert_with(Worker::start)))
}

// ------------------------------------------------------------------ the model

#[derive(Clone, Copy, Debug)]
struct Live {
    addr: usize,
    /// Requested bytes.
    size: usize,
    /// `usable_size` when allocated; the pattern covers all of it.
    usable: usize,
    align: usize,
    seed: u64,
}

struct Model {
    slots: [Option<Live>; SLOTS],
    /// Usable range start -> slot, to find overlaps.
    by_addr: BTreeMap<usize, usize>,
    live_bytes: usize,
    pending_remote: Vec<usize>,
    next_seed: u64,
    step: usize,
}

impl Model {
    fn new() -> Model {
        Model {
            slots: [None; SLOTS],
            by_addr: BTreeMap::new(),
            live_bytes: 0,
            pending_remote: Vec::new(),
            next_seed: 0x243f_6a88_85a3_08d3,
            step: 0,
        }
    }

    fn seed(&mut self) -> u64 {
        self.next_seed = self
            .next_seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.next_seed | 1
    }

    fn fits(&self, size: usize) -> bool {
        self.live_bytes + size <= LIVE_BYTES_MAX
    }

    /// Check a block's whole pattern (before it is freed or resized).
    fn check_full(&self, b: &Live, what: &str) {
        if let Some(i) = mismatch(b.addr, 0, b.usable, b.seed) {
            panic!(
                "step {}: {what}: block {:#x} (size {}, usable {}, align {}) corrupt at offset {i}",
                self.step, b.addr, b.size, b.usable, b.align
            );
        }
    }

    /// Take a block out of the model, its contents checked.
    fn remove(&mut self, slot: usize, what: &str) -> Option<Live> {
        let b = self.slots[slot].take()?;
        self.check_full(&b, what);
        self.by_addr.remove(&b.addr);
        self.live_bytes -= b.size;
        Some(b)
    }

    /// Record a fresh block of `size` requested bytes at `p` aligned to `align`.
    /// `zeroed`: the first `size` bytes must read as zero. `keep`: a block whose
    /// first `keep.1` bytes must still hold the pattern of seed `keep.0`.
    fn insert(
        &mut self,
        slot: usize,
        p: *mut u8,
        size: usize,
        align: usize,
        zeroed: bool,
        keep: Option<(u64, usize)>,
    ) {
        let step = self.step;
        let addr = p as usize;
        assert!(
            !p.is_null(),
            "step {step}: allocation of {size} bytes returned NULL"
        );
        assert_eq!(
            addr % align.max(1),
            0,
            "step {step}: {addr:#x} is not {align}-aligned"
        );
        let min_align = if size > 8 { 16 } else { 8 };
        if align <= min_align {
            assert_eq!(
                addr % min_align,
                0,
                "step {step}: {size}-byte block {addr:#x} below the 16/8-byte rule"
            );
        }
        // SAFETY: a live block of the model, used by this thread only.
        let usable = unsafe { mirs::usable_size(p) };
        assert!(
            usable >= size,
            "step {step}: usable_size {usable} < requested {size} at {addr:#x}"
        );
        assert!(
            // SAFETY: as above.
            unsafe { mirs::owns(p) },
            "step {step}: mirs does not own its block {addr:#x}"
        );
        if zeroed {
            // SAFETY: the block has `size` readable bytes.
            let bytes = unsafe { std::slice::from_raw_parts(p, size) };
            const ZERO: [u8; 4096] = [0; 4096];
            for (c, chunk) in bytes.chunks(ZERO.len()).enumerate() {
                if chunk != &ZERO[..chunk.len()] {
                    let i = c * ZERO.len() + chunk.iter().position(|&b| b != 0).unwrap_or(0);
                    panic!("step {step}: calloc'd block {addr:#x} ({size} bytes) not zero at offset {i}");
                }
            }
        }
        if let Some((seed, len)) = keep {
            if let Some(i) = mismatch(addr, 0, len, seed) {
                panic!("step {step}: realloc to {addr:#x} ({size} bytes) lost byte {i} of the old contents");
            }
        }
        // No overlap with the live block starting closest below our end.
        if let Some((&start, &other)) = self.by_addr.range(..addr + usable).next_back() {
            let o = self.slots[other].expect("indexed slots are live");
            assert!(
                start + o.usable <= addr,
                "step {step}: new block {addr:#x}+{usable} overlaps live block {start:#x}+{}",
                o.usable
            );
        }
        let seed = self.seed();
        fill(addr, usable, seed);
        self.by_addr.insert(addr, slot);
        self.live_bytes += size;
        self.slots[slot] = Some(Live {
            addr,
            size,
            usable,
            align,
            seed,
        });
    }

    /// After every step: every live block's ends and middle, and its usable size.
    fn check_all_cheap(&self) {
        for b in self.slots.iter().flatten() {
            assert_eq!(
                // SAFETY: a live block of the model, used by this thread only.
                unsafe { mirs::usable_size(b.addr as *const u8) },
                b.usable,
                "step {}: usable size of live block {:#x} changed",
                self.step,
                b.addr
            );
            let n = b.usable;
            for (from, to) in [
                (0, n.min(16)),
                (n / 2, (n / 2 + 8).min(n)),
                (n.saturating_sub(16), n),
            ] {
                if let Some(i) = mismatch(b.addr, from, to, b.seed) {
                    panic!(
                        "step {}: live block {:#x} (size {}, usable {}) corrupt at offset {i}",
                        self.step, b.addr, b.size, n
                    );
                }
            }
        }
    }

    fn free_local(&mut self, slot: usize, what: &str) {
        if let Some(b) = self.remove(slot, what) {
            // SAFETY: the model's live block, removed from the model.
            unsafe { mirs::free(b.addr as *mut u8) };
        }
    }

    fn flush_remote(&mut self) {
        if !self.pending_remote.is_empty() {
            let batch = std::mem::take(&mut self.pending_remote);
            let n = batch.len();
            assert_eq!(with_worker(|w| w.call(Cmd::Free(batch))), n);
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Malloc { slot, size } => {
                let slot = slot as usize;
                self.free_local(slot, "malloc into an occupied slot");
                if self.fits(size) {
                    self.insert(slot, mirs::malloc(size), size, 1, false, None);
                }
            }
            Op::Calloc { slot, count, size } => {
                let slot = slot as usize;
                self.free_local(slot, "calloc into an occupied slot");
                let count = count as usize % 8 + 1;
                let elem = size / count;
                if self.fits(elem * count) {
                    let p = mirs::calloc(count, elem);
                    self.insert(slot, p, elem * count, 1, true, None);
                }
            }
            Op::Realloc { slot, size } => self.realloc(slot as usize, size),
            Op::Shrink { slot, keep } => {
                if let Some(b) = self.slots[slot as usize] {
                    self.realloc(slot as usize, b.size * keep as usize / 256);
                }
            }
            Op::Aligned { slot, shift, size } => {
                let slot = slot as usize;
                self.free_local(slot, "aligned allocation into an occupied slot");
                let align = 1usize << (shift as u32).min(ALIGN_SHIFT_MAX);
                if self.fits(size) {
                    let p = if align >= std::mem::size_of::<usize>() {
                        let mut out: *mut c_void = std::ptr::null_mut();
                        // SAFETY: `out` is a valid out-pointer.
                        let rc = unsafe { mirs_posix_memalign(&mut out, align, size) };
                        assert_eq!(
                            rc, 0,
                            "step {}: posix_memalign({align}, {size}) = {rc}",
                            self.step
                        );
                        out.cast::<u8>()
                    } else {
                        mirs_aligned_alloc(align, size).cast::<u8>()
                    };
                    self.insert(slot, p, size, align, false, None);
                }
            }
            Op::Free { slot } => self.free_local(slot as usize, "free"),
            Op::FreeRemote { slot } => {
                if let Some(b) = self.remove(slot as usize, "cross-thread free") {
                    self.pending_remote.push(b.addr);
                    if self.pending_remote.len() >= BATCH {
                        self.flush_remote();
                    }
                }
            }
            Op::RemoteAlloc { slot, size } => {
                let slot = slot as usize;
                self.free_local(slot, "remote allocation into an occupied slot");
                if self.fits(size) {
                    let p = with_worker(|w| w.call(Cmd::Alloc(size))) as *mut u8;
                    self.insert(slot, p, size, 1, false, None);
                }
            }
            Op::Flush => self.flush_remote(),
            Op::Collect { force } => {
                mirs::collect(force);
                mirs::internals::check_heap();
            }
            Op::WorkerRestart => {
                self.flush_remote();
                WORKER.with(|w| drop(w.borrow_mut().take()));
            }
        }
    }

    fn realloc(&mut self, slot: usize, size: usize) {
        let old = self.slots[slot];
        let grow = size.saturating_sub(old.map_or(0, |b| b.size));
        if !self.fits(grow) {
            return;
        }
        let old_addr = old.map_or(0, |b| b.addr);
        if let Some(b) = &old {
            self.check_full(b, "realloc");
        }
        // SAFETY: null or the model's live block, which it forgets below.
        let p = unsafe { mirs_realloc(old_addr as *mut c_void, size) }.cast::<u8>();
        if let Some(b) = old {
            // The old block is gone (moved, resized in place, or freed by size 0).
            self.by_addr.remove(&b.addr);
            self.live_bytes -= b.size;
            self.slots[slot] = None;
        }
        if size == 0 && old.is_some() {
            assert!(
                p.is_null(),
                "step {}: realloc(p, 0) returned {p:p}",
                self.step
            );
            return;
        }
        let keep = old.map(|b| (b.seed, b.size.min(size)));
        self.insert(slot, p, size, 1, false, keep);
    }

    /// End of input: check and free everything, hand over the remote frees.
    fn finish(&mut self) {
        for slot in 0..SLOTS {
            self.free_local(slot, "final free");
        }
        self.flush_remote();
        assert_eq!(self.live_bytes, 0);
        mirs::internals::check_heap();
    }
}

/// Run the program in `data`, panicking on the first discrepancy.
pub fn run(data: &[u8]) {
    run_ops(&decode(data));
}

/// Run a decoded program (see [`run`]).
pub fn run_ops(ops: &[Op]) {
    let mut model = Model::new();
    for &op in ops {
        model.step(op);
        model.check_all_cheap();
        model.step += 1;
    }
    model.finish();
}
