/* Retention (d): thread churn. Each generation starts a new thread while
 * the previous generation's thread still runs; each thread allocates OPS
 * blocks of 1 KiB and swaps every one into a random slot of a shared array,
 * freeing (after checking) whatever block it took out: blocks allocated by
 * the other live thread or by threads long gone. After GENERATIONS the main
 * thread frees what is left in the array.
 *
 * Usage: thread_churn [GENERATIONS=300] [OPS=4000]
 */
#include "retention.h"

#define SLOTS 4096
#define BLOCK 1024

static _Atomic(uintptr_t) slots[SLOTS];
static long ops;

static void check_free(unsigned char *p)
{
    if (!p)
        return;
    unsigned tag;
    memcpy(&tag, p + 4, sizeof tag);
    ret_check(p + 8, BLOCK - 8, tag);
    free(p);
}

static void *generation(void *arg)
{
    uint64_t rng = bench_seed((uint64_t)(uintptr_t)arg);
    for (long i = 0; i < ops; i++) {
        unsigned char *p = ret_malloc(BLOCK);
        unsigned tag = (unsigned)bench_rand(&rng);
        memcpy(p + 4, &tag, sizeof tag);
        ret_fill(p + 8, BLOCK - 8, tag);
        unsigned s = (unsigned)(bench_rand(&rng) % SLOTS);
        check_free((unsigned char *)atomic_exchange(&slots[s], (uintptr_t)p));
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long gens = bench_arg_long(argc, argv, 1, 300);
    ops = bench_arg_long(argc, argv, 2, 4000);
    if (gens < 1 || ops < 1)
        return 2;
    long flt0 = ret_minflt();
    double t0 = bench_now();
    pthread_t prev, cur;
    ret_thread(&prev, generation, (void *)(uintptr_t)1);
    for (long g = 1; g < gens; g++) {
        ret_thread(&cur, generation, (void *)(uintptr_t)(g + 1));
        pthread_join(prev, NULL);
        prev = cur;
    }
    pthread_join(prev, NULL);
    for (int s = 0; s < SLOTS; s++)
        check_free((unsigned char *)atomic_exchange(&slots[s], 0));
    char extra[64];
    snprintf(extra, sizeof extra, "generations=%ld ops=%ld", gens, ops);
    ret_result("thread_churn", 2, (double)(gens * ops), bench_now() - t0, flt0, extra);
    return 0;
}
