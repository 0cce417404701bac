/* Fixed-size bursts, after the method of glibc's
 * benchtests/bench-malloc-simple.c (written anew): for each block size in
 * SIZES and burst length in COUNTS, repeatedly malloc COUNT blocks of that
 * size and then free them all, and time it. Each thread does the same
 * fixed work independently (THREADS > 1 runs everything on new threads,
 * which glibc serves from non-main arenas).
 *
 * Prints per-(size, count) nanoseconds per malloc+free pair, then the
 * aggregate RESULT line (pairs per second over the whole run).
 *
 * Usage: simple THREADS [SCALE]   (fixed work; SCALE multiplies it)
 */
#include "bench_common.h"

#define PAIRS_PER_CASE 1500000.0 /* malloc+free pairs per (size, count), times SCALE */

static const size_t SIZES[] = {16, 64, 256, 1024};
static const int COUNTS[] = {25, 100, 400, 1600};
#define NSIZES (sizeof SIZES / sizeof SIZES[0])
#define NCOUNTS (sizeof COUNTS / sizeof COUNTS[0])

static double scale;

struct worker {
    double ns_per_pair[NSIZES][NCOUNTS];
    uint64_t pairs;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    void *blocks[1600]; /* COUNTS max */
    for (unsigned s = 0; s < NSIZES; s++) {
        for (unsigned c = 0; c < NCOUNTS; c++) {
            int count = COUNTS[c];
            long rounds = (long)(PAIRS_PER_CASE * scale / count);
            if (rounds < 1)
                rounds = 1;
            double t0 = bench_now();
            for (long r = 0; r < rounds; r++) {
                for (int i = 0; i < count; i++) {
                    blocks[i] = malloc(SIZES[s]);
                    if (!blocks[i])
                        abort();
                }
                BENCH_ESCAPE(blocks);
                for (int i = 0; i < count; i++)
                    free(blocks[i]);
            }
            double dt = bench_now() - t0;
            uint64_t pairs = (uint64_t)rounds * (uint64_t)count;
            w->ns_per_pair[s][c] = dt * 1e9 / (double)pairs;
            w->pairs += pairs;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = 1;
    scale = 1.0;
    if (!bench_args(argc, argv, "simple", "THREADS", BENCH_MAX_THREADS, &threads, "SCALE", &scale))
        return 2;
    static struct worker workers[BENCH_MAX_THREADS];
    double t0 = bench_now();
    bench_run(run, workers, sizeof workers[0], threads);
    double elapsed = bench_now() - t0;

    uint64_t pairs = 0;
    for (long i = 0; i < threads; i++)
        pairs += workers[i].pairs;
    /* Thread 0's per-case timings (others ran the same work alongside). */
    for (unsigned s = 0; s < NSIZES; s++)
        for (unsigned c = 0; c < NCOUNTS; c++)
            printf("size=%zu count=%d ns_per_pair=%.2f\n", SIZES[s], COUNTS[c],
                   workers[0].ns_per_pair[s][c]);
    bench_result("simple", threads, (double)pairs, elapsed, NULL);
    return 0;
}
