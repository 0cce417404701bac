/* Retention (f) and benchmark: an mstress-like churn, after the pattern of
 * mimalloc's test/test-stress.c (written anew). Each of ROUNDS rounds runs
 * THREADS threads that allocate zeroed blocks of 1-16 words (now and then
 * 100x, 1000x or 10000x that), keep a growing list of them and a list of
 * retained ones, free random ones, trade random ones with a shared array of
 * atomic slots (so they are freed by other threads, often after their
 * allocator exited), then free what they still hold and exit. Between
 * rounds the main thread frees about half of the shared array; after the
 * last round all of it. Each block is stamped and checked before it is freed.
 *
 * Usage: mstress [THREADS=2] [SCALE=50] [ROUNDS=10]
 */
#include "retention.h"

#define TRANSFER_SLOTS 1000
#define MAX_THREADS 64
#define STAMP 0x9e3779b97f4a7c15ULL

static _Atomic(uintptr_t) transfer[TRANSFER_SLOTS];
static long scale;
static atomic_long total_allocs;

static int one_in(uint64_t *rng, unsigned n) { return bench_rand(rng) % n == 0; }

/* A zeroed block of `words` words (maybe scaled up), stamped with its size. */
static uint64_t *new_block(size_t words, uint64_t *rng)
{
    if (one_in(rng, 100)) {
        if (one_in(rng, 100))
            words *= 10000;
        else if (one_in(rng, 10))
            words *= 1000;
        else
            words *= 100;
    }
    uint64_t *p = calloc(words, sizeof *p);
    if (!p) {
        fprintf(stderr, "mstress: calloc(%zu words) returned NULL\n", words);
        abort();
    }
    for (size_t i = 0; i < words; i++)
        p[i] = (words - i) ^ STAMP;
    return p;
}

static void drop_block(uint64_t *p)
{
    if (!p)
        return;
    size_t words = (size_t)(p[0] ^ STAMP);
    if (words == 0 || words > (size_t)64 * 10000 || (p[words - 1] ^ STAMP) != 1) {
        fprintf(stderr, "mstress: block %p corrupted\n", (void *)p);
        abort();
    }
    free(p);
}

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t rng = bench_seed(id * 7919);
    long to_alloc = 100 * scale * (long)(id % 8 + 1);
    long to_retain = to_alloc / 2;
    uint64_t **live = NULL, **kept = ret_malloc((size_t)(to_retain + 1) * sizeof *kept);
    long live_cap = 0, live_n = 0, kept_n = 0, allocs = 0;
    while (to_alloc > 0 || to_retain > 0) {
        if (to_retain == 0 || (to_alloc > 0 && one_in(&rng, 2))) {
            if (live_n == live_cap) {
                live_cap += 50000;
                live = realloc(live, (size_t)live_cap * sizeof *live);
                if (!live)
                    abort();
            }
            live[live_n++] = new_block((size_t)1 << (bench_rand(&rng) % 5), &rng);
            to_alloc--;
        } else {
            kept[kept_n++] = new_block((size_t)1 << (bench_rand(&rng) % 7), &rng);
            to_retain--;
        }
        allocs++;
        if (live_n > 0 && bench_rand(&rng) % 3 != 0) { /* two in three: free one */
            long i = (long)(bench_rand(&rng) % (uint64_t)live_n);
            drop_block(live[i]);
            live[i] = NULL;
        }
        if (live_n > 0 && one_in(&rng, 4)) { /* one in four: trade one */
            long i = (long)(bench_rand(&rng) % (uint64_t)live_n);
            unsigned t = (unsigned)(bench_rand(&rng) % TRANSFER_SLOTS);
            live[i] = (uint64_t *)atomic_exchange(&transfer[t], (uintptr_t)live[i]);
        }
    }
    for (long i = 0; i < kept_n; i++)
        drop_block(kept[i]);
    for (long i = 0; i < live_n; i++)
        drop_block(live[i]);
    free(kept);
    free(live);
    atomic_fetch_add(&total_allocs, allocs);
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = bench_arg_long(argc, argv, 1, 2);
    scale = bench_arg_long(argc, argv, 2, 50);
    long rounds = bench_arg_long(argc, argv, 3, 10);
    if (threads < 1 || threads > MAX_THREADS || scale < 1 || rounds < 1)
        return 2;
    uint64_t rng = bench_seed(3);
    long flt0 = ret_minflt();
    double t0 = bench_now();
    for (long r = 0; r < rounds; r++) {
        pthread_t tids[MAX_THREADS];
        for (long i = 0; i < threads; i++)
            ret_thread(&tids[i], worker, (void *)(uintptr_t)(r * threads + i + 1));
        for (long i = 0; i < threads; i++)
            pthread_join(tids[i], NULL);
        for (int t = 0; t < TRANSFER_SLOTS; t++)
            if (r + 1 == rounds || one_in(&rng, 2))
                drop_block((uint64_t *)atomic_exchange(&transfer[t], 0));
    }
    char extra[64];
    snprintf(extra, sizeof extra, "scale=%ld rounds=%ld", scale, rounds);
    ret_result("mstress", threads, (double)atomic_load(&total_allocs), bench_now() - t0, flt0,
               extra);
    return 0;
}
