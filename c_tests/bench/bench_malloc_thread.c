/* Multi-threaded malloc/free throughput, after the method of glibc's
 * benchtests/bench-malloc-thread.c (written anew here).
 *
 * Each thread keeps a working set of WORKING_SET slots. One iteration frees
 * the block in a slot picked from a precomputed random index table and puts a
 * newly malloc'd block there, whose size comes from a precomputed table drawn
 * from an inverse-square distribution over [MIN_SIZE, MAX_SIZE] (small sizes
 * dominate, as in real programs); every byte of the new block is written. The
 * threads stop at a CLOCK_MONOTONIC deadline checked every CHECK_EVERY
 * iterations (no alarm/signals: axlibc lacks them).
 *
 * Usage: bench_malloc_thread THREADS [SECONDS]
 * BENCH_ITERS=N (a multiple of 256): exactly N iterations per thread instead.
 * Without arguments (ArceOS main gets none) NUM_THREADS / DURATION are used.
 */
#include "bench_common.h"

#if defined(MIRS_ARCEOS) && defined(__x86_64__)
#include <cpuid.h>
/* The (v)CPU this thread runs on: the initial APIC id from CPUID leaf 1, so
 * the ArceOS run can tell whether its threads really ran on both vCPUs. */
static unsigned current_cpu(void)
{
    unsigned a, b, c, d;
    __cpuid(1, a, b, c, d);
    return (b >> 24) & 31;
}
#define TRACK_CPUS 1
#endif

#ifndef NUM_THREADS
#define NUM_THREADS 1
#endif
#ifndef DURATION
#define DURATION 2.0
#endif

#define WORKING_SET 1024
#define NUM_INDICES 4096 /* power of two: index with a mask */
#define NUM_SIZES 8000
#define MIN_SIZE 4
#define MAX_SIZE 32768
#define CHECK_EVERY 256

static size_t size_table[NUM_SIZES];
static unsigned index_table[NUM_INDICES];
static double duration;

struct worker {
    unsigned id;
    uint64_t iterations;
    double elapsed;
    unsigned cpus; /* with TRACK_CPUS: bit n set when seen on CPU n */
};

/* Inverse-CDF sample of p(s) ~ 1/s^2 on [MIN_SIZE, MAX_SIZE]:
 * F(s) = (1/a - 1/s) / (1/a - 1/b)  =>  s = 1 / (1/a - u (1/a - 1/b)). */
static size_t inverse_square_size(uint64_t *rng)
{
    double u = (double)(bench_rand(rng) >> 11) * (1.0 / 9007199254740992.0);
    double ia = 1.0 / MIN_SIZE, ib = 1.0 / MAX_SIZE;
    size_t s = (size_t)(1.0 / (ia - u * (ia - ib)));
    return s < MIN_SIZE ? MIN_SIZE : s > MAX_SIZE ? MAX_SIZE : s;
}

static void init_tables(void)
{
    uint64_t rng = bench_seed(42);
    for (int i = 0; i < NUM_SIZES; i++)
        size_table[i] = inverse_square_size(&rng);
    for (int i = 0; i < NUM_INDICES; i++)
        index_table[i] = (unsigned)(bench_rand(&rng) % WORKING_SET);
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    void *slots[WORKING_SET] = {0};
    /* Threads start at different table offsets so they do not move in step. */
    unsigned ri = w->id * 997, rs = w->id * 1327 % NUM_SIZES;
    uint64_t iters = 0, fixed = bench_fixed_work();

    bench_wait();
    double start = bench_now(), deadline = start + duration, now;
    do {
        for (int k = 0; k < CHECK_EVERY; k++) {
            unsigned slot = index_table[ri++ & (NUM_INDICES - 1)];
            size_t size = size_table[rs];
            if (++rs == NUM_SIZES)
                rs = 0;
            free(slots[slot]);
            char *p = malloc(size);
            if (!p) {
                fprintf(stderr, "bench_malloc_thread: malloc(%zu) failed\n", size);
                abort();
            }
            memset(p, (int)iters, size);
            slots[slot] = p;
        }
        iters += CHECK_EVERY;
#ifdef TRACK_CPUS
        w->cpus |= 1u << current_cpu();
#endif
        now = bench_now();
    } while (fixed ? iters < fixed : now < deadline);

    for (int i = 0; i < WORKING_SET; i++)
        free(slots[i]);
    w->iterations = iters;
    w->elapsed = now - start;
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = NUM_THREADS;
    duration = DURATION;
    if (!bench_args(argc, argv, "bench_malloc_thread", "THREADS", BENCH_MAX_THREADS, &threads,
                    "SECONDS", &duration))
        return 2;
    init_tables();

    static struct worker workers[BENCH_MAX_THREADS];
    for (long i = 0; i < threads; i++)
        workers[i].id = (unsigned)i;
    double t0 = bench_now();
    bench_run(run_worker, workers, sizeof workers[0], threads);
    double wall = bench_now() - t0;

    uint64_t total = 0;
    double busy = 0;
    for (long i = 0; i < threads; i++) {
        total += workers[i].iterations;
        busy += workers[i].elapsed;
    }
    long rss = bench_max_rss_kib();

    printf("total iterations: %llu\n", (unsigned long long)total);
#ifdef TRACK_CPUS
    for (long i = 0; i < threads; i++)
        printf("thread %ld: %llu iterations, cpus 0x%x\n", i, (unsigned long long)workers[i].iterations,
               workers[i].cpus);
#endif
    /* glibc benchtests JSON: time_per_iteration is thread-time per iteration. */
    printf("{\n \"timing_type\": \"clock_gettime\",\n \"functions\": {\n  \"malloc\": {\n   \"\": {\n");
    printf("    \"duration\": %g,\n", busy * 1e9);
    printf("    \"iterations\": %g,\n", (double)total);
    printf("    \"time_per_iteration\": %g,\n", total ? busy * 1e9 / (double)total : 0.0);
    if (rss >= 0)
        printf("    \"max_rss\": %ld,\n", rss);
    printf("    \"threads\": %ld,\n", threads);
    printf("    \"min_size\": %d,\n", MIN_SIZE);
    printf("    \"max_size\": %d,\n", MAX_SIZE);
    printf("    \"random_seed\": 42\n   }\n  }\n }\n}\n");

    bench_result("malloc_thread", threads, (double)total, wall, "iterations=%llu",
                 (unsigned long long)total);
    return 0;
}
