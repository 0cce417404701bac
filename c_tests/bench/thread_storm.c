/* Thread storm: many short-lived threads passing blocks between them
 * (issue 20's lock-convoy pattern). THREADS threads run at once; each
 * allocates OPS blocks (mostly 16 B-1 KiB, one in 16 of 8-64 KiB), writes
 * them, swaps each into a random slot of a shared array and frees what it
 * took out (a block of another thread, live or gone), then exits and a new
 * thread takes its place, until GENERATIONS threads have run. Exits leave
 * pages with live blocks behind (abandoned), and new threads adopt them.
 * The main thread frees what is left at the end.
 *
 * Usage: thread_storm [THREADS=256] [GENERATIONS=4096] [OPS=2000]
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

#define SLOTS 65536
#define MAX_THREADS 1024

static _Atomic(uintptr_t) slots[SLOTS];
static long ops;
static atomic_long started;
static long generations;

static void check_free(unsigned char *p)
{
    if (!p)
        return;
    size_t size;
    memcpy(&size, p, sizeof size);
    if (p[size - 1] != (unsigned char)size) {
        fprintf(stderr, "thread_storm: corrupted block %p\n", (void *)p);
        abort();
    }
    free(p);
}

static void *worker(void *arg)
{
    uint64_t rng = bench_seed((uint64_t)(uintptr_t)arg);
    {
        for (long i = 0; i < ops; i++) {
            uint64_t r = bench_rand(&rng);
            size_t size = (r & 15) == 0 ? 8192 + (size_t)((r >> 8) % (56 * 1024))
                                        : 16 + (size_t)((r >> 8) % 1008);
            unsigned char *p = malloc(size);
            if (!p)
                abort();
            memcpy(p, &size, sizeof size);
            p[size - 1] = (unsigned char)size;
            uintptr_t old = atomic_exchange(&slots[(r >> 32) % SLOTS], (uintptr_t)p);
            check_free((unsigned char *)old);
        }
        /* A new thread takes this one's place while generations remain. */
        if (atomic_fetch_add(&started, 1) >= generations)
            return NULL;
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker, (void *)(uintptr_t)bench_rand(&rng)) != 0)
            abort();
        pthread_attr_destroy(&attr);
        return NULL;
    }
}

int main(int argc, char **argv)
{
    long threads = bench_arg_long(argc, argv, 1, 256);
    generations = bench_arg_long(argc, argv, 2, 4096);
    ops = bench_arg_long(argc, argv, 3, 2000);
    if (threads < 1 || threads > MAX_THREADS || generations < threads || ops < 1)
        return 2;
    double t0 = bench_now();
    atomic_store(&started, threads);
    /* THREADS chains of threads, each thread starting its successor. */
    pthread_t first[MAX_THREADS];
    for (long i = 0; i < threads; i++)
        if (pthread_create(&first[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0)
            abort();
    for (long i = 0; i < threads; i++)
        pthread_join(first[i], NULL);
    /* Detached successors may still run: wait until every generation has
     * started and finished (started counts past `generations` once per
     * finishing thread that found none left). */
    while (atomic_load(&started) < generations + threads) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    /* The last detached threads have passed their final fetch_add; give
     * them a moment to return from worker. */
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
    double secs = bench_now() - t0;
    for (long i = 0; i < SLOTS; i++)
        check_free((unsigned char *)atomic_exchange(&slots[i], 0));
    printf("RESULT name=thread_storm threads=%ld ops_per_sec=%.0f seconds=%.3f max_rss_kib=%ld "
           "generations=%ld\n",
           threads, (double)generations * (double)ops / secs, secs, bench_max_rss_kib(), generations);
    return 0;
}
