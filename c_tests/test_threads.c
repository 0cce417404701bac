/* test_threads.c: multi-threaded stress with content verification.
 *
 * Rounds of NTHREADS threads (created and joined each round). Each thread allocates
 * blocks of random sizes (8 B .. 1 MiB, mostly small), fills each with a pattern
 * derived from its address and size, and:
 *   - keeps about two thirds in a private array, verifying and freeing the block it
 *     replaces (same-thread free, reuse of freed blocks);
 *   - passes about a third to other threads through a shared array of atomic slots
 *     (atomic exchange); whoever takes a block out verifies and frees it (or
 *     reallocs it first): cross-thread free and realloc;
 *   - exits still owning live blocks: the shared slots keep theirs into later rounds,
 *     and part of the private array is left as "orphans" for the next round's
 *     thread of the same index to free (frees into the segments of a dead thread).
 * Any pattern mismatch means two live blocks overlapped or a block was corrupted.
 * A watchdog alarm turns a deadlock into a failure (SIGALRM).
 */
#include "mirs_test.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

enum {
  NTHREADS = 8,
  ROUNDS = 6,
  OPS_PER_THREAD = 20000,
  SHARED_SLOTS = 1024,
  LOCAL_SLOTS = 256,
};

static _Atomic(unsigned char *) shared[SHARED_SLOTS];
static unsigned char *orphans[NTHREADS][LOCAL_SLOTS];
static atomic_long corruptions, alloc_failures, usable_errors;

/* ---- block format -----------------------------------------------------------
 * word 0: size (low 24 bits) | hash(address) (high 40 bits)
 * bytes 8..size: byte i = (hash + i*131) >> 3, a pattern unique to the block.
 * Blocks are at least 8 bytes, so every block carries its own size and identity. */

static uint64_t addr_hash(uintptr_t p) {
  uint64_t x = (uint64_t)p * 0x9E3779B97F4A7C15ull;
  return (x ^ (x >> 29)) & 0xFFFFFFFFFFull;
}

static inline unsigned char pattern_byte(uint64_t h, size_t i) {
  return (unsigned char)((h + i * 131) >> 3);
}

static void block_fill(unsigned char *p, size_t size) {
  uint64_t h = addr_hash((uintptr_t)p), head = (uint64_t)size | (h << 24);
  memcpy(p, &head, 8);
  for (size_t i = 8; i < size; i++) p[i] = pattern_byte(h, i);
}

/* Verifies the pattern that block_fill wrote at address `origin` (the block may since
 * have moved by realloc, keeping `keep` bytes). Returns the size, or 0 on corruption. */
static size_t block_check_moved(const unsigned char *p, uintptr_t origin, size_t keep) {
  uint64_t head, h = addr_hash(origin);
  memcpy(&head, p, 8);
  size_t size = head & 0xFFFFFF;
  if ((head >> 24) != h || size < 8) goto bad;
  size_t n = keep < size ? keep : size;
  for (size_t i = 8; i < n; i++)
    if (p[i] != pattern_byte(h, i)) goto bad;
  return size;
bad:
  if (atomic_fetch_add(&corruptions, 1) < 10)
    fprintf(stderr, "FAIL %s:%d: block %p (origin %p) corrupted: head %#llx\n", __FILE__, __LINE__,
            (const void *)p, (void *)origin, (unsigned long long)head);
  return 0;
}

static size_t block_check(const unsigned char *p) { return block_check_moved(p, (uintptr_t)p, SIZE_MAX); }

static void block_check_free(unsigned char *p) {
  if (!p) return;
  block_check(p);
  free(p);
}

/* 8 B .. 1 MiB, mostly small. */
static size_t random_size(uint64_t *rng) {
  uint64_t r = rng_next(rng);
  unsigned pick = (unsigned)(r % 100);
  r >>= 8;
  if (pick < 80) return 8 + r % 249;           /* 8 .. 256 */
  if (pick < 95) return 257 + r % 7936;        /* .. 8 KiB */
  if (pick < 99) return 8193 + r % 122880;     /* .. 128 KiB */
  return 131073 + r % ((1u << 20) - 131072);   /* .. 1 MiB */
}

static unsigned char *block_alloc(uint64_t *rng) {
  size_t size = random_size(rng);
  unsigned char *p;
  bool zeroed = rng_next(rng) % 16 == 0;
  p = zeroed ? calloc(1, size) : malloc(size);
  if (!p) {
    atomic_fetch_add(&alloc_failures, 1);
    return NULL;
  }
  if (malloc_usable_size(p) < size) atomic_fetch_add(&usable_errors, 1);
  if (zeroed) {
    for (size_t i = 0; i < size; i++)
      if (p[i]) {
        if (atomic_fetch_add(&corruptions, 1) < 10)
          fprintf(stderr, "FAIL %s:%d: calloc(1, %zu) byte %zu not zero\n", __FILE__, __LINE__,
                  size, i);
        break;
      }
  }
  block_fill(p, size);
  return p;
}

/* A block taken from another thread: sometimes realloc it (cross-thread realloc)
 * and check the kept prefix, then free it. */
static void consume_foreign(unsigned char *p, uint64_t *rng) {
  if (!p) return;
  if (rng_next(rng) % 8 != 0) {
    block_check_free(p);
    return;
  }
  size_t size = block_check(p);
  if (size == 0) return; /* corrupt: counted; do not free garbage */
  size_t nsize = random_size(rng);
  uintptr_t origin = (uintptr_t)p; /* only its value: the pattern's identity */
  unsigned char *q = realloc(p, nsize);
  if (!q) {
    atomic_fetch_add(&alloc_failures, 1);
    free(p);
    return;
  }
  /* The header and the first min(size, nsize) bytes moved with the block. */
  if (nsize >= 8) block_check_moved(q, origin, nsize);
  free(q);
}

struct worker {
  int index;
  uint64_t seed;
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  uint64_t rng = w->seed;
  unsigned char *local[LOCAL_SLOTS] = {0};

  /* Free what the previous thread of this index left behind when it exited. */
  for (int i = 0; i < LOCAL_SLOTS; i++) {
    block_check_free(orphans[w->index][i]);
    orphans[w->index][i] = NULL;
  }

  for (int op = 0; op < OPS_PER_THREAD; op++) {
    unsigned char *p = block_alloc(&rng);
    if (!p) continue;
    uint64_t r = rng_next(&rng);
    if (r % 3 == 0) {
      /* Hand it to whichever thread next touches this slot; free what was there. */
      unsigned char *old = atomic_exchange(&shared[(r >> 8) % SHARED_SLOTS], p);
      consume_foreign(old, &rng);
    } else {
      unsigned char **slot = &local[(r >> 8) % LOCAL_SLOTS];
      block_check_free(*slot);
      *slot = p;
    }
  }

  /* Exit owning live blocks: half freed here, the rest left for the next round. */
  for (int i = 0; i < LOCAL_SLOTS; i++) {
    if (i % 2) {
      block_check_free(local[i]);
    } else {
      orphans[w->index][i] = local[i];
    }
  }
  return NULL;
}

int main(void) {
  alarm(120); /* a deadlock becomes SIGALRM, which the runner reports */

  uint64_t seed_rng = 0x6d697273; /* "mirs": deterministic */
  for (int round = 0; round < ROUNDS; round++) {
    pthread_t tid[NTHREADS];
    struct worker w[NTHREADS];
    long before = atomic_load(&corruptions);
    for (int i = 0; i < NTHREADS; i++) {
      w[i] = (struct worker){.index = i, .seed = rng_next(&seed_rng)};
      int rc = pthread_create(&tid[i], NULL, worker_main, &w[i]);
      CHECKF(rc == 0, "round %d: pthread_create -> %d", round, rc);
      if (rc) tid[i] = 0;
    }
    for (int i = 0; i < NTHREADS; i++)
      if (tid[i]) CHECK(pthread_join(tid[i], NULL) == 0);
    long now = atomic_load(&corruptions);
    CHECKF(now == before, "round %d: %ld corrupted blocks", round, now - before);
  }

  /* The main thread frees everything the dead threads left behind. */
  long before = atomic_load(&corruptions);
  for (int i = 0; i < SHARED_SLOTS; i++) block_check_free(atomic_exchange(&shared[i], NULL));
  for (int t = 0; t < NTHREADS; t++)
    for (int i = 0; i < LOCAL_SLOTS; i++) block_check_free(orphans[t][i]);
  CHECKF(atomic_load(&corruptions) == before, "corrupted blocks among those outliving their threads");

  CHECKF(atomic_load(&alloc_failures) == 0, "%ld allocations failed", atomic_load(&alloc_failures));
  CHECKF(atomic_load(&usable_errors) == 0, "%ld blocks with usable size < requested",
         atomic_load(&usable_errors));

  /* The allocator still works after all that. */
  void *p = malloc(1000);
  CHECK(p != NULL);
  free(p);
  return test_report();
}
