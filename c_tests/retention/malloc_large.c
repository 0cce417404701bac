/* Retention (e) and benchmark: the malloc-large pattern of mimalloc-bench
 * (written anew): BUFFERS live buffers of 5-25 MiB (uniform random sizes);
 * each step allocates a new buffer and writes it in full (the benchmark's
 * value-initialised array), and only then frees the buffer it replaces.
 * Reports time and minor page faults: an allocator that maps fresh memory
 * for every block faults every page of it.
 *
 * Usage: malloc_large [ITERATIONS=400] [BUFFERS=20]
 */
#include "retention.h"

#define MAX_BUFFERS 64
#define MIN_SIZE ((size_t)5 << 20)
#define MAX_SIZE ((size_t)25 << 20)

int main(int argc, char **argv)
{
    long iters = bench_arg_long(argc, argv, 1, 400);
    long nbuf = bench_arg_long(argc, argv, 2, 20);
    if (iters < 1 || nbuf < 1 || nbuf > MAX_BUFFERS)
        return 2;
    unsigned char *buf[MAX_BUFFERS] = {0};
    size_t size[MAX_BUFFERS] = {0};
    unsigned tag[MAX_BUFFERS] = {0};
    uint64_t rng = bench_seed(42);
    long flt0 = ret_minflt();
    double t0 = bench_now();
    for (long i = 0; i < iters; i++) {
        long k = i % nbuf;
        size_t s = MIN_SIZE + (size_t)(bench_rand(&rng) % (MAX_SIZE - MIN_SIZE + 1));
        unsigned char *p = ret_malloc(s);
        ret_fill(p, s, (unsigned)i);
        if (buf[k]) {
            ret_check(buf[k], size[k], tag[k]);
            free(buf[k]);
        }
        buf[k] = p;
        size[k] = s;
        tag[k] = (unsigned)i;
    }
    for (long k = 0; k < nbuf; k++)
        if (buf[k]) {
            ret_check(buf[k], size[k], tag[k]);
            free(buf[k]);
        }
    char extra[64];
    snprintf(extra, sizeof extra, "iterations=%ld buffers=%ld", iters, nbuf);
    ret_result("malloc_large", 1, (double)iters, bench_now() - t0, flt0, extra);
    return 0;
}
