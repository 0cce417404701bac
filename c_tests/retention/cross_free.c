/* Retention (a): one thread allocates a large block (default 5,000,000
 * bytes, written in full), a second thread frees it; ROUNDS rounds, each
 * with two fresh threads. Every block is freed by a thread that did not
 * allocate it, after its allocator has exited.
 *
 * Usage: cross_free [ROUNDS=200] [BYTES=5000000]
 */
#include "retention.h"

static size_t bytes;

static void *alloc_one(void *arg)
{
    unsigned char *p = ret_malloc(bytes);
    ret_fill(p, bytes, (unsigned)(uintptr_t)arg);
    return p;
}

static void *free_one(void *arg)
{
    free(arg);
    return NULL;
}

int main(int argc, char **argv)
{
    long rounds = bench_arg_long(argc, argv, 1, 200);
    bytes = (size_t)bench_arg_long(argc, argv, 2, 5000000);
    if (rounds < 1 || bytes < 16)
        return 2;
    long flt0 = ret_minflt();
    double t0 = bench_now();
    for (long r = 0; r < rounds; r++) {
        pthread_t a, b;
        void *p;
        ret_thread(&a, alloc_one, (void *)(uintptr_t)r);
        pthread_join(a, &p);
        ret_check(p, bytes, (unsigned)r);
        ret_thread(&b, free_one, p);
        pthread_join(b, NULL);
    }
    char extra[64];
    snprintf(extra, sizeof extra, "rounds=%ld bytes=%zu", rounds, bytes);
    ret_result("cross_free", 2, (double)rounds, bench_now() - t0, flt0, extra);
    return 0;
}
