/* Retention (c): each round a worker thread allocates COUNT blocks of 64
 * bytes and exits; then the main thread frees every other block and a
 * second, new thread frees the rest. The blocks' pages are abandoned when
 * the worker exits and are freed into by two threads that never allocate
 * that size class.
 *
 * Usage: half_free [ROUNDS=200] [COUNT=20000]
 */
#include "retention.h"

static long count;

static void *worker(void *arg)
{
    unsigned char **blocks = arg;
    for (long i = 0; i < count; i++) {
        blocks[i] = ret_malloc(64);
        ret_fill(blocks[i], 64, (unsigned)i);
    }
    return NULL;
}

static void *free_odd(void *arg)
{
    unsigned char **blocks = arg;
    for (long i = 1; i < count; i += 2) {
        ret_check(blocks[i], 64, (unsigned)i);
        free(blocks[i]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long rounds = bench_arg_long(argc, argv, 1, 200);
    count = bench_arg_long(argc, argv, 2, 20000);
    if (rounds < 1 || count < 2)
        return 2;
    /* The pointer array itself is allocated once, before the measurement. */
    unsigned char **blocks = ret_malloc((size_t)count * sizeof *blocks);
    long flt0 = ret_minflt();
    double t0 = bench_now();
    for (long r = 0; r < rounds; r++) {
        pthread_t w, f;
        ret_thread(&w, worker, blocks);
        pthread_join(w, NULL);
        for (long i = 0; i < count; i += 2) {
            ret_check(blocks[i], 64, (unsigned)i);
            free(blocks[i]);
        }
        ret_thread(&f, free_odd, blocks);
        pthread_join(f, NULL);
    }
    double elapsed = bench_now() - t0;
    free(blocks);
    char extra[64];
    snprintf(extra, sizeof extra, "rounds=%ld count=%ld", rounds, count);
    ret_result("half_free", 2, (double)(rounds * count), elapsed, flt0, extra);
    return 0;
}
