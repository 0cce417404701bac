/* Larson-style server simulation (after Larson & Krishnan, "Memory
 * allocation for long-running server applications", 1998; method only).
 *
 * Each of THREADS lanes owns an array of SLOTS blocks. A worker thread on a
 * lane replaces random blocks (free one, malloc a random size in
 * [MIN_SIZE, MAX_SIZE]) for ROUNDS*SLOTS steps, then hands the array to a
 * fresh successor thread and exits. The successor frees blocks its
 * predecessor allocated, so the allocator sees a steady stream of frees of
 * other (often exited) threads' memory, as in a server whose connections
 * are served by short-lived threads. Runs until SECONDS have passed.
 *
 * Usage: larson THREADS [SECONDS]
 * BENCH_ITERS=N: exactly N generations per lane instead.
 */
#include "bench_common.h"

#define SLOTS 1000
#define ROUNDS 20
#define MIN_SIZE 8
#define MAX_SIZE 1000

struct lane {
    void *blocks[SLOTS];
    uint64_t rng;
    uint64_t ops;       /* malloc+free pairs done on this lane */
    unsigned generation; /* threads that have worked this lane */
};

static struct lane lanes[BENCH_MAX_THREADS];
static double deadline;

static void *lane_worker(void *arg)
{
    struct lane *l = arg;
    for (int i = 0; i < ROUNDS * SLOTS; i++) {
        unsigned victim = (unsigned)(bench_rand(&l->rng) % SLOTS);
        size_t size = MIN_SIZE + bench_rand(&l->rng) % (MAX_SIZE - MIN_SIZE + 1);
        free(l->blocks[victim]);
        char *p = malloc(size);
        if (!p) {
            fprintf(stderr, "larson: malloc(%zu) failed\n", size);
            abort();
        }
        /* Touch both ends, as a server filling a buffer header and trailer. */
        p[0] = (char)i;
        p[size - 1] = (char)i;
        l->blocks[victim] = p;
    }
    l->ops += (uint64_t)ROUNDS * SLOTS;
    l->generation++;
    return NULL;
}

/* One driver per lane: runs generations of workers back to back, each a new
 * thread inheriting the previous one's blocks. */
static void *lane_driver(void *arg)
{
    struct lane *l = arg;
    uint64_t fixed = bench_fixed_work();
    while (fixed ? l->generation < fixed : bench_now() < deadline) {
        pthread_t t;
        if (pthread_create(&t, NULL, lane_worker, arg) != 0) {
            fprintf(stderr, "larson: pthread_create failed\n");
            abort();
        }
        pthread_join(t, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = 1;
    double seconds = 2.0;
    if (!bench_args(argc, argv, "larson", "THREADS", BENCH_MAX_THREADS, &threads, "SECONDS",
                    &seconds))
        return 2;
    /* The main thread fills every lane, so the first generation already
     * frees foreign memory. */
    for (long t = 0; t < threads; t++) {
        lanes[t].rng = bench_seed((uint64_t)t);
        for (int i = 0; i < SLOTS; i++) {
            size_t size = MIN_SIZE + bench_rand(&lanes[t].rng) % (MAX_SIZE - MIN_SIZE + 1);
            lanes[t].blocks[i] = malloc(size);
        }
    }

    double t0 = bench_now();
    deadline = t0 + seconds;
    bench_spawn(lane_driver, lanes, sizeof lanes[0], threads);
    bench_join();
    double elapsed = bench_now() - t0;

    uint64_t ops = 0;
    unsigned gens = 0;
    for (long t = 0; t < threads; t++) {
        ops += lanes[t].ops;
        gens += lanes[t].generation;
        for (int i = 0; i < SLOTS; i++)
            free(lanes[t].blocks[i]);
    }
    bench_result("larson", threads, (double)ops, elapsed, "thread_generations=%u", gens);
    return 0;
}
