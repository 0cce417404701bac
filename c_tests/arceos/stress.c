/* ArceOS app: cross-thread allocation stress, every block pattern-checked.
 *
 * ROUNDS rounds; each creates THREADS threads and joins them. Thread t runs
 * OPS operations on its slot table (kept across rounds, so a block may be
 * freed by a thread of a later round, after its owner ended): a free slot is
 * filled with a new block, a full one is checked and either freed or, one
 * time in three, handed to thread (t+1)'s queue, which that thread checks
 * and frees. Sizes: 96% 1..600 B, 3% 1..60 KB, 1% 40..440 KB. Every block is
 * filled with a pattern of its own and checked in full before it is freed.
 * At the end main checks and frees whatever is left.
 *
 * -DPROVIDER_CAP_MB=N caps the allocator's page provider at N MiB from the
 * start of main (mirs: mirs_provider_limit; C mimalloc's glue:
 * mimalloc_arceos_provider_limit), below the cap the build set.
 *
 * -DLIVE_CAP_MB=N keeps the program's live bytes at most N MiB: a malloc
 * that would pass it is not made (the slot stays empty), so with enough
 * SLOTS the live bytes stay near N for most of the run instead of peaking
 * once (the static-region test: 24 MiB live in a 32 MiB region).
 *
 * Last line: `stress: ops=N nulls=N corrupt=N leaked=N create_failed=N` (all but
 * ops must be 0). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef THREADS
#define THREADS 4
#endif
#ifndef ROUNDS
#define ROUNDS 4
#endif
#ifndef OPS
#define OPS 5000
#endif
/* Present when axlibc is switched to mirs (weak: the stock build has none). */
extern size_t mirs_arceos_provider_peak(void) __attribute__((weak));
extern size_t mirs_arceos_provider_cap(void) __attribute__((weak));
extern void mirs_provider_limit(size_t bytes) __attribute__((weak));
extern void mirs_stats_print(void) __attribute__((weak));
/* Present when axlibc is switched to C mimalloc (arceos-glue-mimalloc). */
extern size_t mimalloc_arceos_provider_peak(void) __attribute__((weak));
extern size_t mimalloc_arceos_provider_cap(void) __attribute__((weak));
extern void mimalloc_arceos_provider_limit(size_t bytes) __attribute__((weak));
/* Called through pointers held in data (absolute relocations): in a kernel
 * linked high, a PC-relative reference to a missing weak symbol (address 0)
 * is out of range (riscv64's medany code model). */
static struct {
    size_t (*mirs_peak)(void), (*mirs_cap)(void), (*mi_peak)(void), (*mi_cap)(void);
    void (*mirs_limit)(size_t), (*mi_limit)(size_t), (*mirs_stats)(void);
} volatile const hooks = {
    mirs_arceos_provider_peak, mirs_arceos_provider_cap, mimalloc_arceos_provider_peak,
    mimalloc_arceos_provider_cap, mirs_provider_limit, mimalloc_arceos_provider_limit, mirs_stats_print,
};

#ifndef SLOTS
#define SLOTS 256 /* blocks each thread holds at most (about half are live) */
#endif
#define QUEUE 512

struct block {
    uint64_t *p;
    size_t size;
    uint64_t seed;
};

struct queue {
    pthread_mutex_t lock;
    int head, count;
    struct block items[QUEUE];
};

static struct block slots[THREADS][SLOTS];
static struct queue queues[THREADS];

/* Per-thread counters, summed by main after the joins. */
struct counts {
    long allocs, frees, handed, received, nulls, corrupt;
    size_t first_null; /* size of the first failed malloc */
};
static struct counts counts[THREADS];

/* Bytes the program holds, and the most it held (all threads). */
static long live_bytes, peak_live;

/* Take `size` live bytes if they stay within LIVE_CAP_MB; 0 otherwise. */
static int reserve_live(size_t size)
{
#ifdef LIVE_CAP_MB
    long now = __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
    do {
        if (now + (long)size > ((long)LIVE_CAP_MB << 20))
            return 0;
    } while (!__atomic_compare_exchange_n(&live_bytes, &now, now + (long)size, 1, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    now += (long)size;
    long peak = __atomic_load_n(&peak_live, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&peak_live, &peak, now, 1, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED))
        ;
#else
    (void)size;
#endif
    return 1;
}

static void account(long delta)
{
    long now = __atomic_add_fetch(&live_bytes, delta, __ATOMIC_RELAXED);
    long peak = __atomic_load_n(&peak_live, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&peak_live, &peak, now, 1, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED))
        ;
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint64_t word(uint64_t seed, size_t i)
{
    return (seed + i) * 0x9e3779b97f4a7c15ull;
}

static void fill(struct block *b)
{
    size_t words = b->size / 8;
    for (size_t i = 0; i < words; i++)
        b->p[i] = word(b->seed, i);
    unsigned char *tail = (unsigned char *)b->p;
    for (size_t i = words * 8; i < b->size; i++)
        tail[i] = (unsigned char)b->seed;
}

/* 1 when the block still holds its pattern. */
static int intact(const struct block *b)
{
    size_t words = b->size / 8;
    for (size_t i = 0; i < words; i++)
        if (b->p[i] != word(b->seed, i))
            return 0;
    const unsigned char *tail = (const unsigned char *)b->p;
    for (size_t i = words * 8; i < b->size; i++)
        if (tail[i] != (unsigned char)b->seed)
            return 0;
    return 1;
}

static void release(struct block *b, struct counts *c)
{
    if (!intact(b))
        c->corrupt++;
    free(b->p);
    account(-(long)b->size);
    c->frees++;
    b->p = NULL;
}

static size_t pick_size(uint64_t *rng)
{
    uint64_t r = next_rand(rng);
    unsigned pct = (unsigned)(r % 100);
    uint64_t v = r >> 8;
    if (pct == 0)
        return 40000 + (size_t)(v % 400001); /* 1%: 40..440 KB */
    if (pct <= 3)
        return 1000 + (size_t)(v % 59001); /* 3%: 1..60 KB */
    return 1 + (size_t)(v % 600); /* 96%: 1..600 B */
}

/* Hand `b` to thread `to`; 0 when its queue is full. */
static int hand_over(int to, struct block *b)
{
    struct queue *q = &queues[to];
    int ok = 0;
    pthread_mutex_lock(&q->lock);
    if (q->count < QUEUE) {
        q->items[(q->head + q->count) % QUEUE] = *b;
        q->count++;
        ok = 1;
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

/* Check and free what other threads handed to `t`. */
static void drain(int t, struct counts *c)
{
    struct queue *q = &queues[t];
    for (;;) {
        struct block b;
        pthread_mutex_lock(&q->lock);
        if (q->count == 0) {
            pthread_mutex_unlock(&q->lock);
            return;
        }
        b = q->items[q->head];
        q->head = (q->head + 1) % QUEUE;
        q->count--;
        pthread_mutex_unlock(&q->lock);
        release(&b, c);
        c->received++;
    }
}

struct arg {
    int t, round;
};

static void *worker(void *vp)
{
    struct arg *a = vp;
    int t = a->t;
    struct counts *c = &counts[t];
    uint64_t rng = 0x243f6a8885a308d3ull ^ ((uint64_t)(a->round * THREADS + t + 1) << 32);
    for (int op = 0; op < OPS; op++) {
        if ((op & 15) == 0)
            drain(t, c);
        struct block *b = &slots[t][next_rand(&rng) % SLOTS];
        if (b->p) {
            if (next_rand(&rng) % 3 == 0 && intact(b) && hand_over((t + 1) % THREADS, b)) {
                c->handed++;
                b->p = NULL;
            } else {
                release(b, c);
            }
            continue;
        }
        size_t size = pick_size(&rng);
        if (!reserve_live(size))
            continue;
        uint64_t *p = malloc(size);
        if (!p) {
#ifdef LIVE_CAP_MB
            account(-(long)size);
#endif
            if (!c->nulls++)
                c->first_null = size;
            continue;
        }
        c->allocs++;
#ifndef LIVE_CAP_MB
        account((long)size);
#endif
        b->p = p;
        b->size = size;
        b->seed = next_rand(&rng);
        fill(b);
    }
    drain(t, c);
    return NULL;
}

int main(void)
{
#ifdef PROVIDER_CAP_MB
    if (hooks.mirs_limit)
        hooks.mirs_limit((size_t)PROVIDER_CAP_MB << 20);
    if (hooks.mi_limit)
        hooks.mi_limit((size_t)PROVIDER_CAP_MB << 20);
#endif
    for (int t = 0; t < THREADS; t++)
        pthread_mutex_init(&queues[t].lock, NULL);
    struct counts total = {0};
    long create_failed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t th[THREADS];
        struct arg args[THREADS];
        int started[THREADS] = {0};
        for (int t = 0; t < THREADS; t++) {
            args[t].t = t;
            args[t].round = round;
            started[t] = pthread_create(&th[t], NULL, worker, &args[t]) == 0;
            create_failed += !started[t];
        }
        for (int t = 0; t < THREADS; t++)
            if (started[t])
                pthread_join(th[t], NULL);
        printf("stress: round %d done\n", round + 1);
    }
    /* Leftovers: main checks and frees blocks of threads that ended. */
    struct counts mc = {0};
    for (int t = 0; t < THREADS; t++) {
        drain(t, &mc);
        for (int s = 0; s < SLOTS; s++)
            if (slots[t][s].p)
                release(&slots[t][s], &mc);
    }
    for (int t = 0; t < THREADS; t++) {
        total.allocs += counts[t].allocs;
        total.frees += counts[t].frees;
        total.handed += counts[t].handed;
        total.received += counts[t].received;
        total.nulls += counts[t].nulls;
        total.corrupt += counts[t].corrupt;
    }
    for (int t = 0; t < THREADS; t++)
        if (counts[t].nulls && !total.first_null)
            total.first_null = counts[t].first_null;
    total.frees += mc.frees;
    total.received += mc.received;
    total.corrupt += mc.corrupt;
    long ops = (long)THREADS * ROUNDS * OPS;
    long leaked = total.allocs - total.frees;
    printf("stress: %d threads x %d rounds x %d ops: allocs=%ld frees=%ld cross_thread=%ld "
           "create_failed=%ld leaked=%ld\n",
           THREADS, ROUNDS, OPS, total.allocs, total.frees, total.handed, create_failed, leaked);
    if (total.nulls)
        printf("stress: first failed malloc: %zu bytes\n", total.first_null);
    printf("stress: peak live %ld KiB\n", peak_live >> 10);
    size_t cap = 0;
#ifdef PROVIDER_CAP_MB
    cap = (size_t)PROVIDER_CAP_MB << 20;
#endif
    if (hooks.mirs_peak && hooks.mirs_cap && hooks.mirs_peak())
        printf("stress: page provider peak %zu KiB (cap %zu KiB)\n", hooks.mirs_peak() >> 10,
               (cap ? cap : hooks.mirs_cap()) >> 10);
    if (hooks.mi_peak && hooks.mi_cap)
        printf("stress: page provider peak %zu KiB (cap %zu KiB)\n", hooks.mi_peak() >> 10, hooks.mi_cap() >> 10);
#ifndef PRINT_STATS /* -DPRINT_STATS=1: mirs's statistics after every run (arceos.py footprint) */
#define PRINT_STATS 0
#endif
    if ((total.nulls || PRINT_STATS) && hooks.mirs_stats)
        hooks.mirs_stats();
    printf("stress: ops=%ld nulls=%ld corrupt=%ld leaked=%ld create_failed=%ld\n", ops, total.nulls,
           total.corrupt, leaked, create_failed);
    return 0;
}
