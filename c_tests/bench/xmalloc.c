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

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define BATCH 256
#define RING 16 /* batches in flight per pair (power of two) */
#define MIN_SIZE 8
#define MAX_SIZE 512
#define MAX_PAIRS 128

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
    long threads = bench_arg_long(argc, argv, 1, 1);
    double seconds = bench_arg_double(argc, argv, 2, 2.0);
    if (threads < 1 || threads > MAX_PAIRS || !(seconds > 0)) {
        fprintf(stderr, "usage: xmalloc PAIRS(1..%d) [SECONDS]\n", MAX_PAIRS);
        return 2;
    }
    /* Allocated once up front; not part of the measured traffic. */
    pairs = aligned_alloc(64, (size_t)threads * sizeof *pairs);
    if (!pairs)
        return 1;
    memset(pairs, 0, (size_t)threads * sizeof *pairs);
    pthread_t prod[MAX_PAIRS], cons[MAX_PAIRS];
    double t0 = bench_now();
    deadline = t0 + seconds;
    for (long i = 0; i < threads; i++) {
        if (pthread_create(&cons[i], NULL, consumer, &pairs[i]) != 0 ||
            pthread_create(&prod[i], NULL, producer, &pairs[i]) != 0) {
            fprintf(stderr, "xmalloc: pthread_create failed\n");
            return 1;
        }
    }
    for (long i = 0; i < threads; i++) {
        pthread_join(prod[i], NULL);
        pthread_join(cons[i], NULL);
    }
    double elapsed = bench_now() - t0;
    uint64_t freed = 0;
    for (long i = 0; i < threads; i++)
        freed += pairs[i].freed;
    free(pairs);
    char extra[64];
    snprintf(extra, sizeof extra, "pairs=%ld blocks=%llu", threads, (unsigned long long)freed);
    bench_result("xmalloc", threads, (double)freed, elapsed, extra);
    return 0;
}
