/* Allocation stress mix, after the method of mimalloc's test/test-stress.c
 * (written anew): rounds of threads allocate blocks of random sizes (mostly
 * small, sometimes medium or large), free random ones, and trade blocks
 * through a shared array of atomic pointers, so blocks are freed by threads
 * other than (and often outliving) their allocator. Some blocks survive
 * each round in the shared array and are freed by the next round's threads.
 *
 * Every block carries a header word (its size xor a cookie) checked when
 * it is freed, and the second word is written: a cheap check that the
 * allocator did not hand out overlapping memory.
 *
 * Usage: stress THREADS [SCALE]   (fixed work; SCALE multiplies it)
 */
#include "bench_common.h"

#define ROUNDS 10
#define STEPS 1500000        /* per thread per round, times SCALE */
#define LOCAL_SLOTS 512
#define TRANSFER_SLOTS 1024
#define COOKIE 0x5a5aa5a5c3c33c3cULL

static _Atomic(uintptr_t) transfer[TRANSFER_SLOTS];
static long steps;
static atomic_ullong total_ops;

/* Mostly small; 1 in 100 up to 64 KiB; 1 in 10000 up to 1 MiB. */
static size_t pick_size(uint64_t *rng)
{
    uint64_t r = bench_rand(rng);
    size_t words;
    if (r % 10000 == 0)
        words = 1 + (r >> 20) % (1 << 17);
    else if (r % 100 == 0)
        words = 1 + (r >> 20) % (1 << 13);
    else
        words = 1 + (r >> 20) % 40;
    return (words + 2) * sizeof(uint64_t);
}

static uint64_t *alloc_block(uint64_t *rng)
{
    size_t size = pick_size(rng);
    uint64_t *p = malloc(size);
    if (!p) {
        fprintf(stderr, "stress: malloc(%zu) failed\n", size);
        abort();
    }
    p[0] = size ^ COOKIE;
    p[1] = (uint64_t)(uintptr_t)p;
    return p;
}

static void free_block(uint64_t *p)
{
    if (!p)
        return;
    if (((p[0] ^ COOKIE) & 7) != 0 || p[1] != (uint64_t)(uintptr_t)p) {
        fprintf(stderr, "stress: corrupted block %p (header %llx)\n", (void *)p,
                (unsigned long long)p[0]);
        abort();
    }
    p[1] = 0;
    free(p);
}

/* A worker's argument: its seed, unique over all rounds. */
static void *worker(void *arg)
{
    uint64_t rng = bench_seed(*(uint64_t *)arg);
    uint64_t *local[LOCAL_SLOTS] = {0};
    uint64_t ops = 0;
    for (long s = 0; s < steps; s++) {
        uint64_t r = bench_rand(&rng);
        unsigned slot = (unsigned)(r % LOCAL_SLOTS);
        switch ((r >> 32) % 8) {
        case 0: case 1: case 2: case 3: /* replace a local block */
            free_block(local[slot]);
            local[slot] = alloc_block(&rng);
            ops++;
            break;
        case 4: case 5: /* allocate a few more into the slot (grow/shrink mix) */
            free_block(local[slot]);
            local[slot] = NULL;
            for (int k = 0; k < 3; k++) {
                unsigned j = (slot + k) % LOCAL_SLOTS;
                free_block(local[j]);
                local[j] = alloc_block(&rng);
                ops++;
            }
            break;
        default: { /* trade with the shared array: give ours, take another's */
            unsigned t = (unsigned)((r >> 40) % TRANSFER_SLOTS);
            uint64_t *mine = local[slot] ? local[slot] : alloc_block(&rng);
            uint64_t *theirs = (uint64_t *)atomic_exchange(&transfer[t], (uintptr_t)mine);
            local[slot] = theirs; /* freed later by us: a cross-thread free */
            ops++;
            break;
        }
        }
    }
    for (int i = 0; i < LOCAL_SLOTS; i++)
        free_block(local[i]);
    atomic_fetch_add(&total_ops, ops);
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = 1;
    double scale = 1.0;
    if (!bench_args(argc, argv, "stress", "THREADS", BENCH_MAX_THREADS, &threads, "SCALE", &scale))
        return 2;
    steps = (long)(STEPS * scale);
    if (steps < 1)
        steps = 1;
    double t0 = bench_now();
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t seeds[BENCH_MAX_THREADS];
        for (long i = 0; i < threads; i++)
            seeds[i] = (uint64_t)(round * BENCH_MAX_THREADS + i + 1);
        bench_spawn(worker, seeds, sizeof seeds[0], threads);
        bench_join();
    }
    double elapsed = bench_now() - t0;
    for (int i = 0; i < TRANSFER_SLOTS; i++)
        free_block((uint64_t *)atomic_exchange(&transfer[i], 0));
    bench_result("stress", threads, (double)atomic_load(&total_ops), elapsed, "rounds=%d steps=%ld",
                 ROUNDS, steps);
    return 0;
}
