/* Passive false-sharing test (after the method of Hoard's cache-scratch,
 * Berger et al. 2000).
 *
 * The main thread mallocs one small object per thread, back to back (so
 * they likely share a cache line), and hands one to each thread. Each
 * thread frees the object it got, then ITERATIONS times mallocs an object
 * of the same size, writes it REPETITIONS times and frees it. An allocator
 * that reuses the freed foreign object (or carves neighbouring objects for
 * different threads) makes the threads write to one cache line and the
 * run slows down sharply as threads are added. Fixed work per thread.
 *
 * Usage: cache_scratch THREADS [SCALE]   (SCALE multiplies the repetitions)
 */
#include "bench_common.h"

#define OBJ_SIZE 8
#define ITERATIONS 1000
#define REPETITIONS 150000

static long repetitions;

static void *worker(void *arg)
{
    free(*(void **)arg); /* the foreign object: its memory may now be reused here */
    bench_wait();
    for (int i = 0; i < ITERATIONS; i++) {
        volatile char *p = malloc(OBJ_SIZE);
        if (!p)
            abort();
        for (long r = 0; r < repetitions; r++)
            for (int k = 0; k < OBJ_SIZE; k++)
                p[k] = (char)(p[k] + 1);
        free((void *)p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = 1;
    double scale = 1.0;
    if (!bench_args(argc, argv, "cache_scratch", "THREADS", BENCH_MAX_THREADS, &threads, "SCALE",
                    &scale))
        return 2;
    repetitions = (long)(REPETITIONS * scale);
    if (repetitions < 1)
        repetitions = 1;

    void *objs[BENCH_MAX_THREADS];
    for (long i = 0; i < threads; i++)
        objs[i] = malloc(OBJ_SIZE);
    bench_spawn(worker, objs, sizeof objs[0], threads);
    /* Time from the common start: thread creation is not the subject. */
    double t0 = bench_now();
    bench_release();
    bench_join();
    double elapsed = bench_now() - t0;

    /* ops = object writes (one per byte-pass over an object). */
    double ops = (double)threads * ITERATIONS * (double)repetitions;
    bench_result("cache_scratch", threads, ops, elapsed, "repetitions=%ld", repetitions);
    return 0;
}
