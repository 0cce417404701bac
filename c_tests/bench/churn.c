/* Small-object churn: the allocator's thread-local fast path.
 *
 * Each thread (independent, nothing shared) loops over three patterns with
 * sizes 8..256 bytes from a precomputed table: an immediate malloc/free
 * pair, a burst of BURST blocks freed in LIFO order, and a burst freed in
 * FIFO order. Every block's first byte is written. Runs for SECONDS; with
 * more threads it measures how well the fast path scales (no contention).
 *
 * Usage: churn THREADS [SECONDS]
 */
#include "bench_common.h"

#define BURST 64
#define NUM_SIZES 1024 /* power of two */
#define MIN_SIZE 8
#define MAX_SIZE 256
#define CHECK_EVERY 64 /* rounds between deadline checks */

static size_t sizes[NUM_SIZES];
static double deadline;

struct worker {
    uint64_t mallocs;
};

static inline char *xmalloc(size_t size)
{
    char *p = malloc(size);
    if (!p)
        abort();
    p[0] = 1;
    return p;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    char *burst[BURST];
    unsigned si = (unsigned)((uintptr_t)arg * 31);
    uint64_t n = 0;
    do {
        for (int r = 0; r < CHECK_EVERY; r++) {
            /* Pairs: the block just freed is the next one handed out. */
            for (int i = 0; i < BURST; i++) {
                char *p = xmalloc(sizes[si++ & (NUM_SIZES - 1)]);
                BENCH_ESCAPE(p);
                free(p);
            }
            /* LIFO burst. */
            for (int i = 0; i < BURST; i++)
                burst[i] = xmalloc(sizes[si++ & (NUM_SIZES - 1)]);
            for (int i = BURST - 1; i >= 0; i--)
                free(burst[i]);
            /* FIFO burst. */
            for (int i = 0; i < BURST; i++)
                burst[i] = xmalloc(sizes[si++ & (NUM_SIZES - 1)]);
            for (int i = 0; i < BURST; i++)
                free(burst[i]);
            n += 3 * BURST;
        }
    } while (bench_now() < deadline);
    w->mallocs = n;
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = 1;
    double seconds = 2.0;
    if (!bench_args(argc, argv, "churn", "THREADS", BENCH_MAX_THREADS, &threads, "SECONDS",
                    &seconds))
        return 2;
    uint64_t rng = bench_seed(7);
    for (int i = 0; i < NUM_SIZES; i++)
        sizes[i] = MIN_SIZE + bench_rand(&rng) % (MAX_SIZE - MIN_SIZE + 1);

    static struct worker workers[BENCH_MAX_THREADS];
    double t0 = bench_now();
    deadline = t0 + seconds;
    bench_run(run, workers, sizeof workers[0], threads);
    double elapsed = bench_now() - t0;
    uint64_t total = 0;
    for (long i = 0; i < threads; i++)
        total += workers[i].mallocs;
    bench_result("churn", threads, (double)total, elapsed, NULL);
    return 0;
}
