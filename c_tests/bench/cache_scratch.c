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

#include <pthread.h>
#include <stdatomic.h>

#define OBJ_SIZE 8
#define ITERATIONS 1000
#define REPETITIONS 150000
#define MAX_THREADS 256

static long repetitions;
static atomic_int start_flag;

static void *worker(void *arg)
{
    free(arg); /* the foreign object: its memory may now be reused here */
    while (!atomic_load_explicit(&start_flag, memory_order_acquire))
        ;
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
    long threads = bench_arg_long(argc, argv, 1, 1);
    double scale = bench_arg_double(argc, argv, 2, 1.0);
    if (threads < 1 || threads > MAX_THREADS || !(scale > 0)) {
        fprintf(stderr, "usage: cache_scratch THREADS(1..%d) [SCALE]\n", MAX_THREADS);
        return 2;
    }
    repetitions = (long)(REPETITIONS * scale);
    if (repetitions < 1)
        repetitions = 1;

    void *objs[MAX_THREADS];
    for (long i = 0; i < threads; i++)
        objs[i] = malloc(OBJ_SIZE);
    pthread_t tids[MAX_THREADS];
    for (long i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, worker, objs[i]) != 0) {
            fprintf(stderr, "cache_scratch: pthread_create failed\n");
            return 1;
        }
    /* Time from the common start: thread creation is not the subject. */
    double t0 = bench_now();
    atomic_store_explicit(&start_flag, 1, memory_order_release);
    for (long i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    double elapsed = bench_now() - t0;

    /* ops = object writes (one per byte-pass over an object). */
    double ops = (double)threads * ITERATIONS * (double)repetitions;
    char extra[64];
    snprintf(extra, sizeof extra, "repetitions=%ld", repetitions);
    bench_result("cache_scratch", threads, ops, elapsed, extra);
    return 0;
}
