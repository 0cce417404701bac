/* xmalloc-style producer/consumer (after the method of Lever & Boreham's
 * xmalloc-test): memory is allocated on one thread and freed on another,
 * so every free is a cross-thread free.
 *
 * THREADS producer/consumer pairs (2*THREADS threads). A producer mallocs
 * batches of BATCH blocks (random sizes in [MIN_SIZE, MAX_SIZE], first byte
 * written) and passes each batch through a single-producer/single-consumer
 * ring to its consumer, which frees every block. Runs for SECONDS.
 *
 * Usage: xmalloc THREADS [SECONDS]
 */
#include "bench_common.h"

#include <sched.h>

#define BATCH 256
#define RING 16 /* batches in flight per pair (power of two) */
#define MIN_SIZE 8
#define MAX_SIZE 512
#define MAX_PAIRS (BENCH_MAX_THREADS / 2)

/* Producer-written and consumer-written fields on separate cache lines, so
 * the only sharing measured is the allocator's (and the batches handed over). */
struct pair {
    void *ring[RING][BATCH];
    _Alignas(64) _Atomic unsigned long head; /* batches produced */
    atomic_int done;
    _Alignas(64) _Atomic unsigned long tail; /* batches consumed */
    uint64_t freed;
};

static struct pair *pairs;
static double deadline;

static void *producer(void *arg)
{
    struct pair *p = arg;
    uint64_t rng = bench_seed((uint64_t)(uintptr_t)arg);
    unsigned long head = 0;
    while (bench_now() < deadline) {
        /* Wait for a free ring slot; yield since threads may outnumber cores. */
        while (head - atomic_load_explicit(&p->tail, memory_order_acquire) == RING)
            sched_yield();
        void **batch = p->ring[head & (RING - 1)];
        for (int i = 0; i < BATCH; i++) {
            size_t size = MIN_SIZE + bench_rand(&rng) % (MAX_SIZE - MIN_SIZE + 1);
            char *b = malloc(size);
            if (!b) {
                fprintf(stderr, "xmalloc: malloc(%zu) failed\n", size);
                abort();
            }
            b[0] = 1;
            batch[i] = b;
        }
        atomic_store_explicit(&p->head, ++head, memory_order_release);
    }
    atomic_store_explicit(&p->done, 1, memory_order_release);
    return NULL;
}

static void *consumer(void *arg)
{
    struct pair *p = arg;
    unsigned long tail = 0;
    for (;;) {
        unsigned long head = atomic_load_explicit(&p->head, memory_order_acquire);
        if (tail == head) {
            /* Read `done` before re-reading head: nothing can follow done. */
            if (atomic_load_explicit(&p->done, memory_order_acquire) &&
                tail == atomic_load_explicit(&p->head, memory_order_acquire))
                break;
            sched_yield();
            continue;
        }
        void **batch = p->ring[tail & (RING - 1)];
        for (int i = 0; i < BATCH; i++)
            free(batch[i]);
        p->freed += BATCH;
        atomic_store_explicit(&p->tail, ++tail, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = 1;
    double seconds = 2.0;
    if (!bench_args(argc, argv, "xmalloc", "PAIRS", MAX_PAIRS, &threads, "SECONDS", &seconds))
        return 2;
    /* Allocated once up front; not part of the measured traffic. */
    pairs = aligned_alloc(64, (size_t)threads * sizeof *pairs);
    if (!pairs)
        return 1;
    memset(pairs, 0, (size_t)threads * sizeof *pairs);
    double t0 = bench_now();
    deadline = t0 + seconds;
    bench_spawn(consumer, pairs, sizeof pairs[0], threads);
    bench_spawn(producer, pairs, sizeof pairs[0], threads);
    bench_join();
    double elapsed = bench_now() - t0;
    uint64_t freed = 0;
    for (long i = 0; i < threads; i++)
        freed += pairs[i].freed;
    free(pairs);
    bench_result("xmalloc", threads, (double)freed, elapsed, "pairs=%ld blocks=%llu", threads,
                 (unsigned long long)freed);
    return 0;
}
