//! mirs as the global allocator of a std program on stable Rust: what the
//! program allocates is served by mirs (its pointer checks and statistics
//! say so), aligned as the layout asks, zeroed when asked, resized in place
//! when it fits, and handed back when threads exit.

use mirs::stats::{self, Counter};
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc;
use std::thread;

/// `mirs::owns` for blocks this test holds and no other thread touches.
fn owns(p: *const u8) -> bool {
    // SAFETY: every caller passes a pointer it holds (or a stack address,
    // which mirs refuses without reading it); no other thread frees it.
    unsafe { mirs::owns(p) }
}

/// `mirs::usable_size` for blocks this test holds.
fn usable_size(p: *const u8) -> usize {
    // SAFETY: as for `owns`.
    unsafe { mirs::usable_size(p) }
}

fn addr<T: ?Sized>(p: *const T) -> usize {
    p.cast::<u8>() as usize
}

#[test]
fn boxes_vectors_and_strings_come_from_mirs() {
    let b = Box::new(0x1234_5678_u64);
    let v: Vec<u32> = Vec::with_capacity(1000);
    let s = String::from("mirs serves this string");
    for p in [addr(&*b), addr(v.as_ptr()), addr(s.as_ptr())] {
        assert!(owns(p as *const u8), "{p:#x} is not a mirs block");
    }
    assert!(usable_size(v.as_ptr().cast()) >= 4000);
    assert!(usable_size(s.as_ptr()) >= s.len());
    // The check can fail: a stack address is not a mirs block.
    let on_stack = 7u64;
    assert!(!owns(addr(&on_stack) as *const u8));

    // Fresh blocks are carved from page memory, and counted there.
    let before = stats::blocks_carved_total();
    let many: Vec<Box<[u8; 2000]>> = (0..2000).map(|i| Box::new([i as u8; 2000])).collect();
    let carved = stats::blocks_carved_total() - before;
    assert!(
        carved >= 1000,
        "2000 live 2000-byte boxes, {carved} blocks carved"
    );
    for (i, b) in many.iter().enumerate() {
        assert!(owns(b.as_ptr()));
        assert!(b.iter().all(|&x| x == i as u8));
    }
}

#[test]
fn threads_create_heaps_and_hand_them_back_at_exit() {
    const THREADS: usize = 8;
    let created = stats::total(Counter::Threads);
    let done = stats::total(Counter::ThreadsDone);
    let (tx, rx) = mpsc::channel::<Vec<Box<[u64; 8]>>>();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut map = HashMap::new();
                for i in 0..5000u64 {
                    map.insert(i, format!("{t}:{i}"));
                }
                assert_eq!(map[&4321], format!("{t}:4321"));
                // Blocks that outlive the thread, freed by the main thread.
                let keep: Vec<Box<[u64; 8]>> = (0..1000)
                    .map(|i| Box::new([(t * 1000 + i) as u64; 8]))
                    .collect();
                tx.send(keep).unwrap();
            })
        })
        .collect();
    drop(tx);
    for w in workers {
        w.join().unwrap();
    }
    // pthread_join returns after the thread's key destructors ran: every
    // worker's heap was created on its first allocation and collected at exit.
    assert!(stats::total(Counter::Threads) >= created + THREADS as i64);
    assert!(stats::total(Counter::ThreadsDone) >= done + THREADS as i64);
    let mut seen = 0;
    for batch in rx {
        for b in batch {
            assert!(owns(b.as_ptr().cast()));
            let v = b[0] as usize;
            assert!(b.iter().all(|&x| x as usize == v));
            seen += 1;
        } // freed here, from the main thread, into the exited threads' pages
    }
    assert_eq!(seen, THREADS * 1000);
}

#[test]
fn collections_churn_and_keep_their_contents() {
    let mut map: HashMap<String, Vec<u32>> = HashMap::new();
    let mut tree: BTreeMap<u64, String> = BTreeMap::new();
    let mut queue: VecDeque<Box<u64>> = VecDeque::new();
    for round in 0..20u32 {
        for i in 0..2000u32 {
            let k = (i * 7919 + round) % 3000;
            map.entry(format!("key-{k}")).or_default().push(i);
            tree.insert(u64::from(k), "x".repeat((k % 50) as usize));
            queue.push_back(Box::new(u64::from(i)));
        }
        map.retain(|k, _| !k.ends_with('3'));
        tree.retain(|k, _| k % 3 != 0);
        while queue.len() > 500 {
            let b = queue.pop_front().unwrap();
            assert!(*b < 2000);
        }
    }
    for (k, s) in &tree {
        assert!(k % 3 != 0);
        assert_eq!(s.len(), (k % 50) as usize);
    }
    assert!(map.keys().all(|k| !k.ends_with('3')));
    assert!(map.values().all(|v| !v.is_empty()));
    assert_eq!(queue.len(), 500);
}

#[repr(align(32))]
struct A32([u8; 40]);
#[repr(align(64))]
struct A64(u64);
#[repr(align(4096))]
struct Page([u8; 100]);

#[test]
fn u128_and_over_aligned_types_are_aligned() {
    for n in 1..200u128 {
        let b = Box::new(n);
        assert_eq!(addr(&*b) % 16, 0);
        let v: Vec<u128> = (0..n).collect();
        assert_eq!(addr(v.as_ptr()) % 16, 0, "Vec<u128> of {n}");
        assert_eq!(v.iter().sum::<u128>(), n * (n - 1) / 2);
    }
    let a32: Vec<Box<A32>> = (0..100).map(|i| Box::new(A32([i; 40]))).collect();
    let a64: Vec<A64> = (0..1000).map(A64).collect();
    let pages: Vec<Box<Page>> = (0..20).map(|i| Box::new(Page([i; 100]))).collect();
    for (i, b) in a32.iter().enumerate() {
        assert_eq!(addr(&**b) % 32, 0);
        assert!(b.0.iter().all(|&x| x == i as u8));
    }
    assert_eq!(addr(a64.as_ptr()) % 64, 0);
    assert!(a64.iter().enumerate().all(|(i, a)| a.0 == i as u64));
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(addr(&**p) % 4096, 0);
        assert!(owns(addr(&**p) as *const u8));
        assert_eq!(p.0[99], i as u8);
    }
    // Layouts smaller than their alignment (not a Rust type's, but legal).
    for align in [16, 32, 64, 256, 1 << 16] {
        for size in [1, 8, 15, 16, 17, 100] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a non-zero size; freed with the same layout.
            unsafe {
                let p = alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                assert!(usable_size(p) >= size);
                dealloc(p, layout);
            }
        }
    }
}

#[test]
fn zeroed_allocations_are_zero_fresh_and_reused() {
    // Small, large and huge (fresh from the OS) vec![0; n].
    for n in [1, 24, 1000, 100_000, 3 << 20, 16 << 20] {
        let v = vec![0u8; n];
        assert!(v.iter().all(|&x| x == 0), "vec![0; {n}]");
        let w = vec![0u64; n / 8 + 1];
        assert!(w.iter().all(|&x| x == 0));
    }
    // Reused blocks: dirty a block, free it, ask for zeroed memory of the
    // same layout (the same block comes back on the fast path).
    for (size, align) in [(48, 8), (48, 16), (200, 64), (5000, 4096), (3 << 20, 64)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero sizes, every pointer freed with its layout.
        unsafe {
            let dirty = alloc(layout);
            dirty.write_bytes(0xA5, size);
            dealloc(dirty, layout);
            let z = alloc_zeroed(layout);
            assert!(!z.is_null() && owns(z));
            assert_eq!(z as usize % align, 0);
            let bytes = std::slice::from_raw_parts(z, size);
            assert!(
                bytes.iter().all(|&x| x == 0),
                "alloc_zeroed({size}, {align})"
            );
            dealloc(z, layout);
        }
    }
}

#[test]
fn realloc_grows_and_shrinks_keeping_contents() {
    let mut v: Vec<u32> = Vec::new();
    for i in 0..300_000u32 {
        v.push(i);
    }
    v.truncate(1000);
    v.shrink_to_fit();
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
    assert!(usable_size(v.as_ptr().cast()) >= 4000);
    let mut s = String::new();
    for i in 0..10_000 {
        s.push_str(&i.to_string());
    }
    s.truncate(100);
    s.shrink_to_fit();
    assert!(s.starts_with("0123456789101112"));

    // Aligned layouts: in place while the block fits, aligned when moved.
    let layout = Layout::from_size_align(100, 64).unwrap();
    // SAFETY: each pointer is used with the layout it currently has.
    unsafe {
        let p = alloc(layout);
        for i in 0..100 {
            p.add(i).write(i as u8);
        }
        let usable = usable_size(p);
        assert!(usable >= 100);
        let q = realloc(p, layout, usable);
        assert_eq!(
            q, p,
            "growing within the block ({usable} bytes) stays in place"
        );
        let big = realloc(q, Layout::from_size_align(usable, 64).unwrap(), 200_000);
        assert_eq!(big as usize % 64, 0);
        assert!((0..100).all(|i| *big.add(i) == i as u8));
        let small = realloc(big, Layout::from_size_align(200_000, 64).unwrap(), 80);
        assert_eq!(small as usize % 64, 0);
        assert!((0..80).all(|i| *small.add(i) == i as u8));
        assert!(usable_size(small) < 200_000 / 2, "a big shrink moves");
        dealloc(small, Layout::from_size_align(80, 64).unwrap());

        // align 16 with a size below it: the block stays 16-aligned.
        let l16 = Layout::from_size_align(8, 16).unwrap();
        let a = alloc(l16);
        a.write_bytes(7, 8);
        let b = realloc(a, l16, 4);
        assert_eq!(b as usize % 16, 0);
        let c = realloc(b, Layout::from_size_align(4, 16).unwrap(), 40);
        assert_eq!(c as usize % 16, 0);
        assert!((0..4).all(|i| *c.add(i) == 7));
        dealloc(c, Layout::from_size_align(40, 16).unwrap());
    }
}
