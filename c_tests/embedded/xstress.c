/* xstress.c: the cross-thread stress that a 128 MiB ArceOS guest must pass,
 * run against embedded mirs on the host.
 *
 *   xstress region      memory: only the static region (build with 32 MiB)
 *   xstress provider    memory: a page provider capped at 64 MiB with
 *                       mirs_provider_limit (build without a static region)
 *
 * 4 threads x 4 rounds x 5,000 operations; sizes mostly below 600 B, 3% of
 * 1-60 KB, 1% of 40-440 KB; a third of the blocks go through a shared array
 * of slots, so other threads (of this round or a later one) free them;
 * threads are created and joined every round. Every block is filled with a
 * pattern and checked whole before it is freed. Prints `nulls=N corrupt=N`
 * and the provider's peak; every malloc must succeed. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "mirs_test.h"

#define THREADS 4
#define ROUNDS 4
#define OPS 5000
#define SLOTS 512
#define LOCAL 64

static _Atomic(uintptr_t) slots[SLOTS];
static atomic_long nulls, corrupt, checked;

struct hdr {
    size_t size;
    uint32_t seed;
};

static uint32_t rng(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static size_t pick_size(uint32_t *s)
{
    uint32_t r = rng(s) % 100;
    if (r < 1)
        return 40000 + rng(s) % 400000;
    if (r < 4)
        return 1000 + rng(s) % 59000;
    return sizeof(struct hdr) + rng(s) % 590;
}

static void *make(uint32_t *s)
{
    size_t size = pick_size(s);
    unsigned char *p = malloc(size);
    if (!p) {
        atomic_fetch_add(&nulls, 1);
        return NULL;
    }
    struct hdr h = {size, rng(s)};
    memcpy(p, &h, sizeof h);
    memset(p + sizeof h, (int)(h.seed & 0xff), size - sizeof h);
    return p;
}

static void check_free(void *v)
{
    if (!v)
        return;
    unsigned char *p = v;
    struct hdr h;
    memcpy(&h, p, sizeof h);
    int bad = h.size < sizeof h || h.size > 440000 + 40000;
    for (size_t i = sizeof h; !bad && i < h.size; i++)
        bad = p[i] != (unsigned char)(h.seed & 0xff);
    if (bad)
        atomic_fetch_add(&corrupt, 1);
    atomic_fetch_add(&checked, 1);
    free(p);
}

static void *worker(void *arg)
{
    uint32_t s = (uint32_t)(uintptr_t)arg * 2654435761u + 12345;
    void *local[LOCAL] = {0};
    for (int op = 0; op < OPS; op++) {
        void *p = make(&s);
        if (rng(&s) % 3 == 0) {
            uintptr_t old = atomic_exchange(&slots[rng(&s) % SLOTS], (uintptr_t)p);
            check_free((void *)old);
        } else {
            int i = (int)(rng(&s) % LOCAL);
            check_free(local[i]);
            local[i] = p;
        }
    }
    for (int i = 0; i < LOCAL; i++)
        check_free(local[i]);
    return NULL;
}

/* ---- the page provider ---------------------------------------------------- */

static atomic_long provider_out, provider_peak;

static void *provider_alloc(size_t size, size_t align)
{
    size_t span = size + align;
    unsigned char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    void *start = harness_trim_to_alignment(raw, span, size, align);
    long out = atomic_fetch_add(&provider_out, (long)size) + (long)size;
    long peak = atomic_load(&provider_peak);
    while (out > peak && !atomic_compare_exchange_weak(&provider_peak, &peak, out))
        ;
    return start;
}

static void provider_free(void *p, size_t size)
{
    munmap(p, size);
    atomic_fetch_sub(&provider_out, (long)size);
}

int main(int argc, char **argv)
{
    int provider = argc > 1 && strcmp(argv[1], "provider") == 0;
    const long cap = 64L << 20;
    if (provider) {
        mirs_page_provider_set(provider_alloc, provider_free);
        mirs_provider_limit((size_t)cap);
    }
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t th[THREADS];
        for (int t = 0; t < THREADS; t++)
            CHECK(pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)(round * THREADS + t + 1)) == 0);
        for (int t = 0; t < THREADS; t++)
            pthread_join(th[t], NULL);
    }
    for (int i = 0; i < SLOTS; i++)
        check_free((void *)atomic_exchange(&slots[i], 0));
    printf("xstress %s: nulls=%ld corrupt=%ld checked=%ld provider peak %.1f MiB, held at end %.1f MiB\n",
           provider ? "provider (cap 64 MiB)" : "static region", atomic_load(&nulls),
           atomic_load(&corrupt), atomic_load(&checked), atomic_load(&provider_peak) / 1048576.0,
           atomic_load(&provider_out) / 1048576.0);
    CHECKF(atomic_load(&nulls) == 0, "%ld mallocs returned NULL", atomic_load(&nulls));
    CHECKF(atomic_load(&corrupt) == 0, "%ld blocks corrupted", atomic_load(&corrupt));
    CHECK(atomic_load(&checked) >= (long)(THREADS * ROUNDS * OPS * 9 / 10));
    if (provider)
        CHECKF(atomic_load(&provider_peak) <= cap, "provider peak %ld over the cap", atomic_load(&provider_peak));
    return test_report();
}
