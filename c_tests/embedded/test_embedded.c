/* test_embedded.c: the embedded configuration of mirs, on Linux through harness.c.
 *
 * mirs is built without `hosted`, with a static region of REGION_MB MiB and room
 * for HEAP_SLOTS heaps (MIRS_MAX_THREADS); its malloc & co. replace glibc's (feature `override`).
 *
 * Usage: test_embedded THREADS  (1, 2, 4, ...)
 *   basics      contents of blocks of many sizes, calloc, realloc, alignment,
 *               ownership, foreign frees ignored
 *   exhaustion  THREADS threads allocate until the region is exhausted: NULL with
 *               errno ENOMEM; everything is freed (half by another thread) and
 *               the same amount can be allocated again; after the threads end, one
 *               block of half the region fits (freed memory coalesces)
 *   dead        ROUNDS rounds of THREADS threads, each allocating ~60% of the region
 *               over its life and leaving blocks for the next round to free: only
 *               reuse of dead threads' memory and heap slots (more threads than
 *               HEAP_SLOTS in all) lets this finish
 *   table full  without the alive hook (and mirs_thread_done), threads beyond the
 *               heap table get NULL + ENOMEM; with the hook again they work
 *   regions     mirs_region_add() of an mmap'd region adds room; a page provider
 *               is used when the regions are full and gets its memory back
 * Prints "N passed, N failed".
 */
#define _GNU_SOURCE
#include "harness.h"
#include "mirs_test.h"

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#ifndef REGION_MB
#define REGION_MB 64
#endif
#ifndef HEAP_SLOTS
#define HEAP_SLOTS 16 /* MIRS_MAX_THREADS of the build */
#endif

#define REGION ((size_t)REGION_MB << 20)
#define BLOCK (64 * 1024)
#define MAX_BLOCKS (REGION / BLOCK * 2 + 1024)
#define ROUNDS 12
#define MAXT 64

static int nthreads;
static pthread_barrier_t barrier;

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i + 1 < n; i += 61)
        p[i] = (unsigned char)(seed + i / 61);
    if (n)
        p[n - 1] = (unsigned char)(seed ^ 0x5a);
}

static bool intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i + 1 < n; i += 61)
        if (p[i] != (unsigned char)(seed + i / 61))
            return false;
    return n == 0 || p[n - 1] == (unsigned char)(seed ^ 0x5a);
}

/* ---- basics ---------------------------------------------------------------- */

static void test_basics(void)
{
    static unsigned char *blocks[400];
    size_t sizes[400];
    uint64_t rng = 7;
    for (int i = 0; i < 400; i++) {
        size_t n = i < 300 ? 1 + rng_next(&rng) % 2048
                 : i < 397 ? 1 + rng_next(&rng) % (128u << 10) : (2u << 20) + rng_next(&rng) % (1u << 20);
        sizes[i] = n;
        blocks[i] = malloc(n);
        CHECK(blocks[i] != NULL);
        if (blocks[i]) {
            CHECK(mirs_usable_size(blocks[i]) >= n);
            CHECK(is_aligned(blocks[i], n > 8 ? 16 : 8));
            fill(blocks[i], n, (unsigned)i);
        }
    }
    int bad = 0;
    for (int i = 0; i < 400; i++)
        if (blocks[i] && !intact(blocks[i], sizes[i], (unsigned)i))
            bad++;
    CHECKF(bad == 0, "%d blocks corrupted", bad);
    for (int i = 0; i < 300; i += 2) {
        unsigned char *q = realloc(blocks[i], sizes[i] * 2 + 100);
        CHECK(q != NULL);
        if (q) {
            CHECK(intact(q, sizes[i], (unsigned)i));
            blocks[i] = q;
        }
    }
    for (int i = 0; i < 400; i++)
        free(blocks[i]);

    unsigned char *z = calloc(1000, 1000);
    CHECK(z != NULL);
    bool zero = true;
    for (size_t i = 0; z && i < 1000 * 1000; i++)
        zero &= z[i] == 0;
    CHECK(zero);
    free(z);

    size_t aligns[] = {64, 4096, 1 << 20, 4 << 20, 8 << 20};
    for (size_t i = 0; i < sizeof aligns / sizeof *aligns; i++) {
        void *p = aligned_alloc(aligns[i], 1000);
        CHECKF(p && is_aligned(p, aligns[i]), "align %zu: %p", aligns[i], p);
        free(p);
    }
    int local;
    CHECK(!mirs_owns(&local));
    void *p = malloc(10);
    CHECK(mirs_owns(p));
    void *volatile foreign = &local;
    free(foreign); /* ignored */
    free(p);
    errno = 0;
    CHECK(malloc(SIZE_MAX / 2) == NULL && errno == ENOMEM);
    mirs_collect(true); /* retired pages and empty chunks back to the region */
}

/* ---- exhaustion ------------------------------------------------------------ */

static void *ex_blocks[MAXT][MAX_BLOCKS / 2];
static size_t ex_count[MAXT], ex_again[MAXT];
static atomic_int ex_enomem;

static size_t fill_until_null(int t)
{
    size_t n = 0;
    for (;;) {
        errno = 0;
        void *p = malloc(BLOCK);
        if (!p) {
            if (errno == ENOMEM)
                atomic_fetch_add(&ex_enomem, 1);
            return n;
        }
        if (n < MAX_BLOCKS / 2)
            ex_blocks[t][n++] = p;
        memset(p, t, 64);
    }
}

static void *exhaust_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    ex_count[t] = fill_until_null(t);
    pthread_barrier_wait(&barrier);
    /* First half: ours. Second half: the next thread's (cross-thread frees). */
    for (size_t i = 0; i < ex_count[t] / 2; i++)
        free(ex_blocks[t][i]);
    int other = (t + 1) % nthreads;
    for (size_t i = ex_count[other] / 2; i < ex_count[other]; i++)
        free(ex_blocks[other][i]);
    pthread_barrier_wait(&barrier);
    ex_again[t] = fill_until_null(t);
    pthread_barrier_wait(&barrier);
    for (size_t i = 0; i < ex_again[t]; i++)
        free(ex_blocks[t][i]);
    return NULL;
}

static void test_exhaustion(void)
{
    pthread_t th[MAXT];
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
    for (int t = 0; t < nthreads; t++)
        CHECK(pthread_create(&th[t], NULL, exhaust_worker, (void *)(intptr_t)t) == 0);
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&barrier);
    size_t first = 0, again = 0;
    for (int t = 0; t < nthreads; t++) {
        first += ex_count[t];
        again += ex_again[t];
    }
    size_t expect = REGION / BLOCK * 85 / 100;
    CHECKF(first >= expect, "only %zu blocks of 64 KiB in a %d MiB region", first, REGION_MB);
    CHECKF(again >= expect, "after freeing, only %zu blocks again (first %zu)", again, first);
    CHECKF(atomic_load(&ex_enomem) == 2 * nthreads, "%d of %d NULLs had errno ENOMEM",
           atomic_load(&ex_enomem), 2 * nthreads);
    printf("exhaustion: %zu blocks of 64 KiB, %zu after freeing (%d MiB region, %d threads)\n",
           first, again, REGION_MB, nthreads);
    /* Everything is free again: one block of half the region must fit. */
    void *big = malloc(REGION / 2);
    CHECKF(big != NULL, "malloc(%zu) after all was freed", REGION / 2);
    if (big)
        memset(big, 1, REGION / 2);
    free(big);
}

/* ---- dead threads ------------------------------------------------------------ */

#define LEFT 64
static void *leftover[MAXT][LEFT];
static atomic_long dead_failures;

static void *dead_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    /* Free what the previous round's thread of the next index left behind:
     * frees into the pages of a thread that has ended (abandoned). */
    int prev = (t + 1) % nthreads;
    for (int i = 0; i < LEFT; i++) {
        if (leftover[prev][i] && !intact(leftover[prev][i], 100, (unsigned)i))
            atomic_fetch_add(&dead_failures, 1);
        free(leftover[prev][i]);
        leftover[prev][i] = NULL;
    }
    pthread_barrier_wait(&barrier);
    size_t budget = REGION * 6 / 10 / (size_t)nthreads;
    static __thread void *mine[4096];
    size_t n = 0, used = 0;
    uint64_t rng = (uint64_t)t * 977 + 1;
    while (used < budget && n < 4096) {
        size_t size = rng_next(&rng) % 8 == 0 ? BLOCK : 128 + rng_next(&rng) % 2000;
        void *p = malloc(size);
        if (!p) {
            atomic_fetch_add(&dead_failures, 1);
            break;
        }
        fill(p, 100, (unsigned)n);
        mine[n++] = p;
        used += size;
    }
    for (size_t i = 0; i < n; i++) {
        if (!intact(mine[i], 100, (unsigned)i))
            atomic_fetch_add(&dead_failures, 1);
        if (i < LEFT && i >= 1) {
            leftover[t][i] = mine[i]; /* kept alive past this thread */
            fill(mine[i], 100, (unsigned)i);
        } else {
            free(mine[i]);
        }
    }
    return NULL;
}

static void test_dead_threads(void)
{
    long alive_before = atomic_load(&harness_alive_calls);
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
    for (int r = 0; r < ROUNDS; r++) {
        pthread_t th[MAXT];
        for (int t = 0; t < nthreads; t++)
            CHECK(pthread_create(&th[t], NULL, dead_worker, (void *)(intptr_t)t) == 0);
        for (int t = 0; t < nthreads; t++)
            pthread_join(th[t], NULL);
    }
    pthread_barrier_destroy(&barrier);
    for (int t = 0; t < MAXT; t++)
        for (int i = 0; i < LEFT; i++)
            free(leftover[t][i]);
    CHECKF(atomic_load(&dead_failures) == 0, "%ld failed allocations or corrupted blocks",
           atomic_load(&dead_failures));
    printf("dead threads: %d rounds x %d threads (%s), %ld alive-hook calls\n", ROUNDS, nthreads,
           harness_thread_done_mode() ? "mirs_thread_done" : "no mirs_thread_done",
           atomic_load(&harness_alive_calls) - alive_before);
    /* The dead threads' memory is reusable: the region holds as many 64 KiB
     * blocks as at the start, and once they are freed, one block of half the
     * region fits (freed chunks coalesce back in the region). */
    static void *keep[MAX_BLOCKS];
    size_t n = 0;
    while (n < MAX_BLOCKS && (keep[n] = malloc(BLOCK)) != NULL)
        n++;
    CHECKF(n >= REGION / BLOCK * 85 / 100, "only %zu blocks of 64 KiB after the dead threads", n);
    for (size_t i = 0; i < n; i++)
        free(keep[i]);
    mirs_collect(true);
    /* A quarter of the region in one piece: freed chunks coalesce in the
     * region. (Not half: a page a dead thread abandoned goes back only when
     * a thread adopts it or its last block is freed, so a few chunks may
     * still be scattered through the region.) */
    void *big = malloc(REGION / 4);
    CHECKF(big != NULL, "malloc(%zu) after the dead threads' blocks were freed", REGION / 4);
    free(big);
}

/* ---- a full heap table ------------------------------------------------------- */

static void *one_malloc(void *arg)
{
    errno = 0;
    void *p = malloc(100);
    *(int *)arg = p ? 0 : errno;
    free(p);
    return NULL;
}

/* Without the alive hook and without mirs_thread_done(), heaps of ended threads
 * keep their table slots: once all are taken, a new thread's malloc fails cleanly
 * (NULL, ENOMEM); with the hook back, dead threads are reaped and it works. */
static void test_table_full(void)
{
    harness_set_alive_hook(false);
    int n = 3 * HEAP_SLOTS, ok = 0, enomem = 0;
    for (int i = 0; i < n; i++) {
        int r = -1;
        pthread_t t;
        CHECK(pthread_create(&t, NULL, one_malloc, &r) == 0);
        pthread_join(t, NULL);
        ok += r == 0;
        enomem += r == ENOMEM;
    }
    if (harness_thread_done_mode()) {
        CHECKF(ok == n, "%d of %d threads could allocate", ok, n);
    } else {
        CHECKF(ok <= 2 * HEAP_SLOTS && ok + enomem == n && enomem > 0,
               "%d threads allocated, %d got ENOMEM, of %d", ok, enomem, n);
    }
    harness_set_alive_hook(true);
    int r = -1;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, one_malloc, &r) == 0);
    pthread_join(t, NULL);
    CHECKF(r == 0, "with the alive hook again, a new thread's malloc: errno %d", r);
    printf("table full: %d of %d threads allocated without alive hook, %d got ENOMEM; then %s\n", ok, n,
           enomem, r == 0 ? "ok" : "failed");
}

/* ---- more regions, a page provider ----------------------------------------------- */

static atomic_long provider_out, provider_allocs, provider_frees;
/* Of provider_out, metadata (asked for at less than chunk alignment: heap
 * structs, page-map leaves), which mirs never gives back by design; chunk
 * memory must all come back. */
static atomic_long provider_meta;
#define PROVIDER_BUDGET ((long)32 << 20)

/* Memory for the region and the provider is mapped near the static region (as an
 * embedder's physical memory is one window): the chunk map is a direct-mapped
 * table over a 4 GiB window, where far-apart memory may collide. */
static uintptr_t next_hint;

static void *map_near(size_t span)
{
    void *p = MAP_FAILED;
    if (next_hint) {
        p = mmap((void *)next_hint, span, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p != MAP_FAILED && p != (void *)next_hint) {
            munmap(p, span);
            p = MAP_FAILED;
        }
    }
    if (p == MAP_FAILED)
        p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    else
        next_hint += (span + (8u << 20)) & ~(uintptr_t)((4u << 20) - 1);
    return p;
}

static void *provider_alloc(size_t size, size_t align)
{
    if (atomic_fetch_add(&provider_out, (long)size) + (long)size > PROVIDER_BUDGET) {
        atomic_fetch_sub(&provider_out, (long)size);
        return NULL;
    }
    size_t span = size + align;
    unsigned char *raw = map_near(span);
    if (raw == MAP_FAILED) {
        atomic_fetch_sub(&provider_out, (long)size);
        return NULL;
    }
    void *start = harness_trim_to_alignment(raw, span, size, align);
    atomic_fetch_add(&provider_allocs, 1);
    if (align < ((size_t)1 << 20))
        atomic_fetch_add(&provider_meta, (long)size);
    return start;
}

static void provider_free(void *p, size_t size)
{
    munmap(p, size);
    atomic_fetch_sub(&provider_out, (long)size);
    atomic_fetch_add(&provider_frees, 1);
}

static size_t count_until_null(void **keep, size_t max)
{
    size_t n = 0;
    while (n < max) {
        void *p = malloc(BLOCK);
        if (!p)
            break;
        keep[n++] = p;
    }
    return n;
}

static void test_regions(void)
{
    static void *keep[MAX_BLOCKS * 2];
    size_t base = count_until_null(keep, MAX_BLOCKS * 2);
    void *first = keep[0];
    for (size_t i = 0; i < base; i++)
        free(keep[i]);

    size_t extra_mb = 64;
    next_hint = (((uintptr_t)first >> 22) << 22) + ((size_t)REGION_MB << 20) + (256u << 20);
    void *region = map_near(extra_mb << 20);
    CHECK(region != MAP_FAILED);
    CHECK(!mirs_region_add(NULL, 1 << 20));
    CHECK(mirs_region_add(region, extra_mb << 20));
    size_t with_region = count_until_null(keep, MAX_BLOCKS * 2);
    /* An unaligned 64 MiB region holds at least 60 MiB of whole chunks. */
    CHECKF(with_region >= base + (15u << 22) / BLOCK * 8 / 10, "%zu blocks before, %zu with the region",
           base, with_region);
    mirs_page_provider_set(provider_alloc, provider_free);
    size_t with_provider = with_region + count_until_null(keep + with_region, MAX_BLOCKS * 2 - with_region);
    CHECKF(atomic_load(&provider_allocs) > 0 && with_provider >= with_region + (PROVIDER_BUDGET / BLOCK) * 7 / 10,
           "%zu blocks with the provider (%zu without), %ld provider allocations", with_provider,
           with_region, atomic_load(&provider_allocs));
    for (size_t i = 0; i < with_provider; i++)
        free(keep[i]);
    mirs_collect(true);
    CHECKF(atomic_load(&provider_frees) > 0 && atomic_load(&provider_out) == atomic_load(&provider_meta),
           "provider: %ld allocations, %ld frees, %ld bytes still out (%ld of metadata)",
           atomic_load(&provider_allocs), atomic_load(&provider_frees), atomic_load(&provider_out),
           atomic_load(&provider_meta));
    printf("regions: %zu blocks (static), %zu (+ region), %zu (+ provider: %ld runs, chunks all returned: %s, "
           "%ld KiB of metadata kept)\n",
           base, with_region, with_provider, atomic_load(&provider_allocs),
           atomic_load(&provider_out) == atomic_load(&provider_meta) ? "yes" : "no",
           atomic_load(&provider_meta) >> 10);
    mirs_page_provider_set(NULL, NULL);
}

int main(int argc, char **argv)
{
    nthreads = argc > 1 ? atoi(argv[1]) : 2;
    if (nthreads < 1 || nthreads > MAXT) {
        fprintf(stderr, "usage: test_embedded THREADS(1..%d)\n", MAXT);
        return 2;
    }
    printf("test_embedded: %d threads, %d MiB static region, %d heap slots, thread_done=%d\n", nthreads,
           REGION_MB, HEAP_SLOTS, harness_thread_done_mode());
    test_basics();
    test_exhaustion();
    test_dead_threads();
    test_table_full();
    test_regions();
    return test_report();
}
