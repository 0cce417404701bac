/* test_api.c: the libc allocation API under mirs, checked against glibc's documented
 * semantics (POSIX where glibc is silent), plus the mirs_* prefixed API and a proof
 * that the blocks really come from mirs.
 *
 * Freeing pointers mirs does not own is in test_bad_free.c (fork-isolated).
 */
#include "mirs_test.h"

#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Sizes no allocator can serve on x86-64/aarch64 Linux: above PTRDIFF_MAX (rejected
 * by rule), or beyond the 47/48-bit user address space (mmap must fail, whatever
 * the overcommit policy or MAP_NORESERVE). */
#define HUGE_INVALID ((size_t)PTRDIFF_MAX + 1) /* == SIZE_MAX/2 + 1 */
#define HUGE_UNMAPPABLE ((size_t)1 << 49)     /* 512 TiB */

static struct mirs_api mirs;
static bool have_mirs;
static size_t page_size;

/* The compiler may not see through a volatile function pointer, so calls with
 * impossible sizes are not folded away or warned about (-Walloc-size-larger-than). */
static void *(*volatile malloc_v)(size_t) = malloc;
static void *(*volatile calloc_v)(size_t, size_t) = calloc;
static void *(*volatile realloc_v)(void *, size_t) = realloc;
static void *(*volatile reallocarray_v)(void *, size_t, size_t) = reallocarray;
static void *(*volatile aligned_alloc_v)(size_t, size_t) = aligned_alloc;
static void *(*volatile memalign_v)(size_t, size_t) = memalign;
static void *(*volatile valloc_v)(size_t) = valloc;
static void *(*volatile pvalloc_v)(size_t) = pvalloc;

/* Fill p[0..n) with a pattern derived from seed; check_fill verifies it. */
static void fill(void *p, size_t n, unsigned seed) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(seed + i * 7 + (i >> 8));
}
static bool check_fill(const void *p, size_t n, unsigned seed) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != (unsigned char)(seed + i * 7 + (i >> 8))) return false;
  return true;
}
static bool all_zero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0) return false;
  return true;
}
/* Writes every page of the first MiB, then one byte per MiB, then the last page:
 * proves [p, p+n) is mapped writable without faulting in gigabytes. */
static void touch_pages(void *p, size_t n) {
  volatile unsigned char *b = p;
  if (n == 0) return;
  for (size_t i = 0; i < n; i += (i < (1u << 20) ? page_size : (1u << 20))) b[i] = (unsigned char)i;
  for (size_t i = n > page_size ? n - page_size : 0; i < n; i += 64) b[i] = (unsigned char)i;
  b[n - 1] = 0x5a;
}

/* ---- malloc --------------------------------------------------------------- */

static void test_malloc(void) {
  /* malloc(0): a unique, freeable, non-NULL pointer. */
  void *a = malloc(0), *b = malloc(0);
  CHECK(a != NULL);
  CHECK(b != NULL);
  CHECK(a != b);
  free(a);
  free(b);

  /* Failures: NULL and errno == ENOMEM. */
  errno = 0;
  CHECK(malloc_v(SIZE_MAX) == NULL);
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(malloc_v(HUGE_INVALID) == NULL);
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(malloc_v((size_t)PTRDIFF_MAX) == NULL);
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(malloc_v(HUGE_UNMAPPABLE) == NULL);
  CHECK(errno == ENOMEM);
  /* Sizes that overflow once a header or rounding is added. */
  errno = 0;
  CHECK(malloc_v(SIZE_MAX - 15) == NULL);
  CHECK(errno == ENOMEM);

  /* Every block of sizes 0..4 KiB (and a spread above) is writable to its usable
   * size, usable >= requested, and distinct blocks do not overlap (patterns hold). */
  enum { N = 64 };
  void *blocks[N];
  size_t sizes[N];
  for (size_t base = 0; base < 4096 + 64; base += N) {
    for (size_t i = 0; i < N; i++) {
      sizes[i] = base + i;
      blocks[i] = malloc(sizes[i]);
      CHECK(blocks[i] != NULL);
      /* glibc: "a multiple of sixteen on 64-bit systems", for every size (glibc's
       * tst-mallocalign1 checks 2 and 8 too); mirs follows it. */
      CHECKF(is_aligned(blocks[i], 16), "malloc(%zu) -> %p", sizes[i], blocks[i]);
      size_t us = malloc_usable_size(blocks[i]);
      CHECKF(us >= sizes[i], "size %zu usable %zu", sizes[i], us);
      fill(blocks[i], us, (unsigned)i);
    }
    bool ok = true;
    for (size_t i = 0; i < N; i++) {
      ok &= check_fill(blocks[i], malloc_usable_size(blocks[i]), (unsigned)i);
      free(blocks[i]);
    }
    CHECKF(ok, "overlapping blocks in sizes %zu..%zu", base, base + N - 1);
  }
  static const size_t big[] = {5000, 16384, 16385, 65536, 100000, 131072, 131073,
                               (1u << 20) - 1, 1u << 21, (2u << 20) + 1, 5u << 20, 33u << 20};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    char *p = malloc(big[i]);
    CHECK(p != NULL);
    if (!p) continue;
    size_t us = malloc_usable_size(p);
    CHECKF(us >= big[i], "size %zu usable %zu", big[i], us);
    memset(p, 0xA5, us);
    CHECK(p[0] == (char)0xA5 && p[us - 1] == (char)0xA5);
    free(p);
  }
}

/* Sizes of several GiB: allocate, touch the first and last pages (and one byte per
 * MiB between), free. */
static void test_huge(void) {
  for (size_t gib = 1; gib <= 3; gib++) {
    size_t n = gib << 30;
    unsigned char *p = malloc(n);
    CHECKF(p != NULL, "malloc(%zu GiB)", gib);
    if (!p) continue;
    CHECK(malloc_usable_size(p) >= n);
    touch_pages(p, n);
    CHECK(p[n - 1] == 0x5a);
    free(p);
  }
  /* A 2 GiB calloc reads as zero at both ends and in the middle. */
  size_t n = (size_t)2 << 30;
  unsigned char *z = calloc(1, n);
  CHECK(z != NULL);
  if (z) {
    CHECK(z[0] == 0 && z[n / 2] == 0 && z[n - 1] == 0);
    free(z);
  }
}

/* ---- calloc / reallocarray ------------------------------------------------ */

static void test_calloc(void) {
  /* Overflow of count*size: NULL, ENOMEM. */
  errno = 0;
  CHECK(calloc_v(SIZE_MAX / 2, 3) == NULL);
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(calloc_v((size_t)1 << 33, (size_t)1 << 33) == NULL);
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(calloc_v(1, SIZE_MAX) == NULL);
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(calloc_v(HUGE_INVALID, 1) == NULL);
  CHECK(errno == ENOMEM);

  void *z = calloc(0, 0);
  CHECK(z != NULL); /* calloc(0, n) behaves like malloc(0) in glibc */
  free(z);

  /* Zeroed memory, also when the same sizes were just freed dirty (the allocator
   * reuses those blocks and must clear them), for small, medium and large sizes. */
  static const size_t sizes[] = {1, 8, 24, 100, 1000, 4096, 16384, 40000, 131072,
                                 300000, 3u << 20, 40u << 20};
  enum { N = 16 };
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s], cnt = n >= (1u << 20) ? 3 : N;
    void *p[N];
    for (size_t i = 0; i < cnt; i++) {
      p[i] = malloc(n);
      CHECK(p[i] != NULL);
      if (p[i]) memset(p[i], 0xEE, malloc_usable_size(p[i]));
    }
    for (size_t i = 0; i < cnt; i++) free(p[i]);
    bool ok = true;
    for (size_t i = 0; i < cnt; i++) {
      p[i] = calloc(1, n);
      ok &= p[i] != NULL && all_zero(p[i], n);
    }
    CHECKF(ok, "calloc(1, %zu) not zero after dirty free", n);
    for (size_t i = 0; i < cnt; i++) free(p[i]);
    /* count*size form, too */
    void *q = calloc(n, 1);
    CHECK(q != NULL && all_zero(q, n));
    free(q);
  }
}

static void test_reallocarray(void) {
  errno = 0;
  CHECK(reallocarray_v(NULL, SIZE_MAX / 2, 3) == NULL);
  CHECK(errno == ENOMEM);

  /* Overflow on an existing block: NULL, ENOMEM, block untouched and freeable. */
  char *p = reallocarray(NULL, 10, 10);
  CHECK(p != NULL);
  if (!p) return;
  fill(p, 100, 3);
  errno = 0;
  CHECK(reallocarray_v(p, (size_t)1 << 40, (size_t)1 << 40) == NULL);
  CHECK(errno == ENOMEM);
  CHECK(check_fill(p, 100, 3));
  char *q = reallocarray(p, 1000, 10);
  CHECK(q != NULL);
  if (q) {
    CHECK(check_fill(q, 100, 3));
    CHECK(malloc_usable_size(q) >= 10000);
    free(q);
  } else {
    free(p);
  }
}

/* ---- aligned allocation ---------------------------------------------------- */

static void test_posix_memalign_errors(const char *name,
                                       int (*pm)(void **, size_t, size_t)) {
  void *const sentinel = (void *)(uintptr_t)0xDEADBEE0;
  static const size_t bad_align[] = {0, 1, 2, 3, 4, 12, 24, 48, 96, 1000,
                                     ((size_t)1 << 20) + 8, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++) {
    void *out = sentinel;
    errno = 12345;
    int rc = pm(&out, bad_align[i], 64);
    CHECKF(rc == EINVAL, "%s(align %zu) returned %d", name, bad_align[i], rc);
    CHECKF(out == sentinel, "%s(align %zu) wrote *memptr", name, bad_align[i]);
    CHECKF(errno == 12345, "%s(align %zu) changed errno to %d", name, bad_align[i], errno);
  }
  /* Too large: ENOMEM returned, *memptr untouched and errno ENOMEM, as glibc 2.36
   * leaves it (its internal allocation sets it; glibc's tst-malloc-thread-fail relies
   * on it, although the Linux man page says "The value of errno is not set"). */
  static const size_t bad_size[] = {SIZE_MAX, HUGE_INVALID, HUGE_UNMAPPABLE};
  for (size_t i = 0; i < sizeof bad_size / sizeof bad_size[0]; i++) {
    void *out = sentinel;
    errno = 12345;
    int rc = pm(&out, 64, bad_size[i]);
    CHECKF(rc == ENOMEM, "%s(64, %zu) returned %d", name, bad_size[i], rc);
    CHECKF(out == sentinel, "%s(64, %zu) wrote *memptr", name, bad_size[i]);
    CHECKF(errno == ENOMEM, "%s(64, %zu): errno %d, glibc leaves ENOMEM", name, bad_size[i], errno);
  }
  /* Success leaves errno alone too. */
  void *out = sentinel;
  errno = 12345;
  CHECK(pm(&out, sizeof(void *), 0) == 0);
  CHECK(out != sentinel && out != NULL);
  CHECK(errno == 12345);
  free(out);
}

/* What an aligned allocator is asked, and how to call it uniformly. */
enum align_fn { AF_POSIX_MEMALIGN, AF_ALIGNED_ALLOC, AF_MEMALIGN, AF_MIRS_POSIX, AF_MIRS_ALIGNED, AF_COUNT };
static const char *const align_fn_name[AF_COUNT] = {"posix_memalign", "aligned_alloc", "memalign",
                                                    "mirs_posix_memalign", "mirs_aligned_alloc"};

static void *align_call(enum align_fn f, size_t align, size_t size) {
  void *p = NULL;
  switch (f) {
    case AF_POSIX_MEMALIGN: return posix_memalign(&p, align, size) == 0 ? p : NULL;
    case AF_ALIGNED_ALLOC: return aligned_alloc_v(align, size);
    case AF_MEMALIGN: return memalign_v(align, size);
    case AF_MIRS_POSIX: return mirs.posix_memalign(&p, align, size) == 0 ? p : NULL;
    case AF_MIRS_ALIGNED: return mirs.aligned_alloc(align, size);
    default: return NULL;
  }
}

/* Every power of two from 8 to 2^26, sizes 0, 1, align-1, align, 3*align+5 (and a
 * few fixed ones): aligned, writable to the size, usable size >= size. */
static void test_alignments(void) {
  for (int f = 0; f < AF_COUNT; f++) {
    if ((f == AF_MIRS_POSIX || f == AF_MIRS_ALIGNED) && !have_mirs) continue;
    int bad = 0;
    for (size_t align = 8; align <= ((size_t)1 << 26); align *= 2) {
      const size_t sizes[] = {0, 1, align - 1, align, 3 * align + 5, 100, 5000};
      for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t size = sizes[i];
        unsigned char *p = align_call(f, align, size);
        bool ok = p != NULL && is_aligned(p, align) && malloc_usable_size(p) >= size;
        if (ok && size > 0) {
          /* Small blocks are fully written, large ones per page (enough to fault). */
          if (size <= (1u << 20)) memset(p, 0x7c, size); else touch_pages(p, size);
          p[size - 1] = 2;
          p[0] = 1;
          ok = p[0] == 1 && (size == 1 || p[size - 1] == 2);
        }
        if (!ok && bad++ < 5)
          fprintf(stderr, "    detail: %s(align %zu, size %zu) -> %p usable %zu\n", align_fn_name[f],
                  align, size, (void *)p, p ? malloc_usable_size(p) : 0);
        CHECK(ok);
        free(p);
      }
    }
    /* Many live blocks at one alignment do not overlap. */
    enum { N = 32 };
    unsigned char *live[N];
    for (int i = 0; i < N; i++) {
      live[i] = align_call(f, 4096, 1000 + i);
      CHECK(live[i] != NULL && is_aligned(live[i], 4096));
      if (live[i]) fill(live[i], 1000 + i, i);
    }
    bool ok = true;
    for (int i = 0; i < N; i++) {
      if (live[i]) ok &= check_fill(live[i], 1000 + i, i);
      free(live[i]);
    }
    CHECKF(ok, "%s: overlapping aligned blocks", align_fn_name[f]);
  }
}

static void test_aligned_alloc(void) {
  /* A non-power-of-two alignment: NULL, EINVAL (glibc >= 2.38; older glibc treated
   * aligned_alloc as memalign and rounded the alignment up). */
  static const size_t bad_align[] = {0, 3, 24, 48, 1000, ((size_t)1 << 20) + 16};
  for (size_t i = 0; i < sizeof bad_align / sizeof bad_align[0]; i++) {
    errno = 0;
    void *p = aligned_alloc_v(bad_align[i], 64);
    CHECKF(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 64) -> %p errno %d", bad_align[i], p,
           errno);
    if (p) free(p);
  }
  /* Any size is accepted: not a multiple of the alignment, and 0. */
  void *p = aligned_alloc(64, 100);
  CHECK(p != NULL && is_aligned(p, 64));
  free(p);
  p = aligned_alloc_v(256, 0);
  CHECK(p != NULL && is_aligned(p, 256));
  free(p);
  /* Alignments below sizeof(void*) are fine for aligned_alloc (unlike posix_memalign). */
  p = aligned_alloc_v(1, 10);
  CHECK(p != NULL);
  free(p);
  p = aligned_alloc_v(4, 10);
  CHECK(p != NULL && is_aligned(p, 4));
  free(p);
  /* Too large: NULL, ENOMEM. */
  errno = 0;
  CHECK(aligned_alloc_v(64, SIZE_MAX) == NULL);
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(aligned_alloc_v(4096, HUGE_INVALID) == NULL);
  CHECK(errno == ENOMEM);
}

static void test_memalign_valloc(void) {
  /* memalign rounds a non-power-of-two alignment up to the next power of two. */
  static const size_t in[] = {3, 24, 48, 100, 1000, 5000, ((size_t)1 << 20) + 1};
  static const size_t out[] = {4, 32, 64, 128, 1024, 8192, (size_t)1 << 21};
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
    void *p = memalign_v(in[i], 100);
    CHECKF(p != NULL && is_aligned(p, out[i]), "memalign(%zu, 100) -> %p", in[i], p);
    free(p);
  }
  errno = 0;
  CHECK(memalign_v(64, SIZE_MAX) == NULL);
  CHECK(errno == ENOMEM);
  /* glibc: an alignment above SIZE_MAX / 2 + 1 (no power of two to round up to) is
   * EINVAL. */
  errno = 0;
  CHECK(memalign_v(SIZE_MAX / 2 + 2, 10) == NULL);
  CHECK(errno == EINVAL);

  /* valloc: page aligned. */
  static const size_t vs[] = {0, 1, 100, 4095, 4096, 4097, 100000, 5u << 20};
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
    unsigned char *p = valloc_v(vs[i]);
    CHECKF(p != NULL && is_aligned(p, page_size), "valloc(%zu) -> %p", vs[i], (void *)p);
    if (p && vs[i]) memset(p, 1, vs[i]);
    free(p);
  }
  errno = 0;
  CHECK(valloc_v(SIZE_MAX) == NULL);
  CHECK(errno == ENOMEM);

  /* pvalloc: page aligned, size rounded up to a whole page. */
  static const size_t ps[] = {1, 100, 4095, 4096, 4097, 100000, (5u << 20) + 3};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
    unsigned char *p = pvalloc_v(ps[i]);
    size_t want = (ps[i] + page_size - 1) / page_size * page_size;
    size_t us = p ? malloc_usable_size(p) : 0;
    CHECKF(p != NULL && is_aligned(p, page_size) && us >= want, "pvalloc(%zu) -> %p usable %zu",
           ps[i], (void *)p, us);
    if (p) memset(p, 1, want); /* the whole rounded-up size is ours */
    free(p);
  }
  errno = 0;
  CHECK(pvalloc_v(SIZE_MAX) == NULL); /* rounding up must not wrap to a small size */
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(pvalloc_v(SIZE_MAX - page_size + 2) == NULL);
  CHECK(errno == ENOMEM);
}

/* ---- realloc ---------------------------------------------------------------- */

static void test_realloc(void) {
  /* realloc(NULL, n) is malloc(n). */
  char *p = realloc(NULL, 100);
  CHECK(p != NULL && malloc_usable_size(p) >= 100);
  free(p);
  p = realloc(NULL, 0);
  CHECK(p != NULL); /* like malloc(0) */
  free(p);

  /* realloc(p, 0) frees p and returns NULL (glibc). */
  p = malloc(100);
  CHECK(p != NULL);
  CHECK(realloc_v(p, 0) == NULL);

  /* Contents survive growth (small to large to huge) and shrinkage (back down). */
  static const size_t steps[] = {1, 7, 16, 100, 1000, 4000, 16384, 70000, 300000,
                                 (1u << 20) + 3, 5u << 20, 70u << 20, 600u << 20};
  enum { NSTEPS = sizeof steps / sizeof steps[0] };
  p = NULL;
  size_t have = 0;
  for (size_t i = 0; i < NSTEPS; i++) {
    char *q = realloc(p, steps[i]);
    CHECKF(q != NULL, "realloc grow to %zu", steps[i]);
    if (!q) break;
    CHECKF(check_fill(q, have, 11), "contents lost growing to %zu", steps[i]);
    CHECK(malloc_usable_size(q) >= steps[i]);
    fill(q, steps[i], 11);
    p = q;
    have = steps[i];
  }
  for (size_t i = NSTEPS; i-- > 0;) {
    char *q = realloc(p, steps[i]);
    CHECKF(q != NULL, "realloc shrink to %zu", steps[i]);
    if (!q) break;
    CHECKF(check_fill(q, steps[i], 11), "contents lost shrinking to %zu", steps[i]);
    CHECK(malloc_usable_size(q) >= steps[i]);
    p = q;
  }
  free(p);

  /* Direct jumps: large to small and small to huge. */
  p = malloc(10u << 20);
  CHECK(p != NULL);
  if (p) {
    fill(p, 10u << 20, 5);
    char *q = realloc(p, 24);
    CHECK(q != NULL && check_fill(q, 24, 5));
    p = q ? q : p;
    q = realloc(p, 200u << 20);
    CHECK(q != NULL && check_fill(q, 24, 5));
    if (q) {
      touch_pages(q + 24, (200u << 20) - 24);
      p = q;
    }
    free(p);
  }

  /* Shrinking in place keeps the pointer usable; growing within usable size works. */
  p = malloc(1000);
  CHECK(p != NULL);
  if (p) {
    fill(p, 1000, 9);
    char *q = realloc(p, malloc_usable_size(p));
    CHECK(q != NULL && check_fill(q, 1000, 9));
    free(q ? q : p);
  }

  /* A failing realloc: NULL, ENOMEM, the old block intact and still freeable. */
  static const size_t bad[] = {SIZE_MAX / 2, SIZE_MAX, HUGE_INVALID, HUGE_UNMAPPABLE};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    static const size_t from[] = {64, 100000, 8u << 20};
    for (size_t j = 0; j < 3; j++) {
      p = malloc(from[j]);
      CHECK(p != NULL);
      if (!p) continue;
      fill(p, from[j], 21);
      errno = 0;
      CHECKF(realloc_v(p, bad[i]) == NULL, "realloc(%zu-byte block, %zu)", from[j], bad[i]);
      CHECK(errno == ENOMEM);
      CHECK(check_fill(p, from[j], 21));
      free(p);
    }
  }
}

/* ---- usable size, free, cfree, glibc extras -------------------------------- */

static void test_usable_free(void) {
  CHECK(malloc_usable_size(NULL) == 0);
  free(NULL);
  CHECK(1); /* free(NULL) returned */

  /* cfree is free. glibc has it only as a compat symbol, so this needs mirs's. */
  void (*cf)(void *) = mirs.cfree;
  CHECKF(cf != NULL, "cfree is not exported (not running under mirs?)");
  if (cf) {
    void *p = malloc(100);
    CHECK(p != NULL);
    cf(p);
    cf(NULL);
    /* The freed block is reusable: a same-size allocation still works. */
    p = malloc(100);
    CHECK(p != NULL);
    free(p);
  }
}

static void test_glibc_extras(void) {
  CHECK(malloc_trim(0) == 0 || malloc_trim(0) == 1); /* documented return: 1 or 0 */
  void *p = malloc(1000);
  CHECK(p != NULL);
  int r = malloc_trim(0);
  CHECK(r == 0 || r == 1);
  free(p);

  /* mallinfo2: bytes in use (arena + mmapped) grow by about what is allocated and
   * fall again after free; exact figures are the allocator's business. */
  struct mallinfo2 before = mallinfo2();
  size_t n = 10u << 20;
  char *big = malloc(n);
  CHECK(big != NULL);
  if (big) memset(big, 1, n);
  struct mallinfo2 during = mallinfo2();
  free(big);
  struct mallinfo2 after = mallinfo2();
  size_t used_b = before.uordblks + before.hblkhd, used_d = during.uordblks + during.hblkhd,
         used_a = after.uordblks + after.hblkhd;
  CHECKF(used_d >= used_b + n, "mallinfo2 in use %zu -> %zu after malloc(%zu)", used_b, used_d, n);
  CHECKF(used_a < used_d, "mallinfo2 in use %zu -> %zu after free", used_d, used_a);

  /* free keeps errno (glibc since 2.33), for a small and an unmapped huge block. */
  void *small = malloc(40), *huge = malloc(64u << 20);
  errno = 1234;
  free(small);
  free(huge);
  CHECKF(errno == 1234, "free changed errno to %d", errno);

  /* mallinfo (the old struct, int fields): the mallinfo2 figures. A block is kept
   * live: uordblks counts the bytes in use, 0 when nothing is. */
  void *keep = malloc(100);
  CHECK(keep != NULL);
  struct mallinfo2 m2 = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo m1 = mallinfo();
  CHECKF(m1.uordblks > 0 && m1.arena > 0, "mallinfo: arena %d, in use %d (glibc's zeros?)",
         m1.arena, m1.uordblks);
  CHECKF((size_t)m1.arena == (m2.arena > INT_MAX ? (size_t)INT_MAX : m2.arena),
         "mallinfo arena %d, mallinfo2 %zu", m1.arena, m2.arena);
  char *grow = malloc(n);
  CHECK(grow != NULL);
  struct mallinfo m1_during = mallinfo();
#pragma GCC diagnostic pop
  free(grow);
  CHECKF((size_t)m1_during.uordblks >= (size_t)m1.uordblks + n, "mallinfo in use %d -> %d after malloc(%zu)",
         m1.uordblks, m1_during.uordblks, n);
  free(keep);
}

/* malloc_info: glibc's XML shape with mirs's figures, written through the FILE (so it
 * keeps the stream's order and works on a memstream); options other than 0: EINVAL. */
static void test_malloc_info(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  CHECK(f != NULL);
  if (!f) return;
  fputs("before\n", f);
  CHECK(malloc_info(0, f) == 0);
  fputs("after\n", f);
  CHECK(malloc_info(1, f) == EINVAL);
  fclose(f);
  struct mallinfo2 m = mallinfo2();
  CHECKF(strncmp(buf, "before\n<malloc version=\"1\">\n<heap nr=\"0\">\n", 38) == 0,
         "malloc_info starts: %.60s", buf);
  const char *end = strstr(buf, "</malloc>\nafter\n");
  CHECKF(end != NULL && end[17] == 0, "malloc_info does not end in </malloc> before \"after\": %s", buf);
  static const char *const elements[] = {"<sizes>", "</heap>", "<total type=\"fast\"",
                                         "<total type=\"rest\"", "<total type=\"mmap\"",
                                         "<aspace type=\"total\"", "<system type=\"max\""};
  for (size_t i = 0; i < sizeof elements / sizeof elements[0]; i++)
    CHECKF(strstr(buf, elements[i]) != NULL, "malloc_info lacks %s", elements[i]);
  /* The figures are mirs's: system current is what mallinfo2 calls arena (mapped bytes;
   * the memstream's own growth may move it by a segment between the two calls). */
  const char *cur = strstr(buf, "<system type=\"current\" size=\"");
  unsigned long long sys = cur ? strtoull(cur + 29, NULL, 10) : 0;
  CHECKF(sys > 0 && sys <= m.arena + (64u << 20) && sys + (64u << 20) >= m.arena,
         "malloc_info system current %llu, mallinfo2 arena %zu", sys, m.arena);
  free(buf);
}

/* malloc_stats in a thread with a cancel pending: glibc's summary and mirs's table all
 * printed (malloc_stats is not a cancellation point), then the thread's next
 * cancellation point cancels it. stderr goes to a pipe meanwhile (the text fits). */
static pthread_barrier_t cancel_gate;
static void *stats_thread(void *arg) {
  (void)arg;
  pthread_barrier_wait(&cancel_gate); /* not a cancellation point */
  malloc_stats();
  write(2, "after-cancel-point\n", 19); /* write(2) is a cancellation point */
  return NULL;
}
static void test_malloc_stats_cancel(void) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fds[1], 2);
  close(fds[1]);
  pthread_t t;
  CHECK(pthread_barrier_init(&cancel_gate, NULL, 2) == 0);
  CHECK(pthread_create(&t, NULL, stats_thread, NULL) == 0);
  CHECK(pthread_cancel(t) == 0);
  pthread_barrier_wait(&cancel_gate);
  void *rv = NULL;
  CHECK(pthread_join(t, &rv) == 0);
  dup2(saved, 2);
  close(saved);
  static char out[1 << 16];
  size_t len = 0;
  ssize_t r;
  while (len < sizeof out - 1 && (r = read(fds[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)r;
  out[len] = 0;
  close(fds[0]);
  CHECKF(rv == PTHREAD_CANCELED, "the thread was not cancelled");
  CHECKF(strstr(out, "Arena 0:\nsystem bytes     = ") != NULL, "no glibc summary: %.200s", out);
  CHECKF(strstr(out, "max mmap bytes   = ") != NULL, "no \"max mmap bytes\" line");
  CHECKF(strstr(out, "mirs: served ") != NULL, "mirs's table cut short (%zu bytes)", len);
  CHECKF(strstr(out, "after-cancel-point") == NULL, "the write after malloc_stats ran");
}

/* ---- the blocks come from mirs; the mirs_* API -------------------------------- */

static void test_mirs_owns(void) {
  CHECKF(have_mirs, "mirs_* functions not found: not running under mirs?");
  if (!have_mirs) return;
  int local = 0;
  static int in_data = 0;
  void *p = malloc(100);
  CHECK(p != NULL);
  CHECK(mirs.owns(p));
  CHECK(mirs.usable_size(p) == malloc_usable_size(p));
  CHECK(!mirs.owns(&local));   /* stack */
  CHECK(!mirs.owns(&in_data)); /* static data */
  CHECK(!mirs.owns(NULL));
  CHECK(mirs.usable_size(NULL) == 0);
  free(p);
  /* Large and aligned blocks are mirs's too. */
  void *big = malloc(50u << 20), *al = memalign(1u << 16, 100);
  CHECK(big && mirs.owns(big));
  CHECK(al && mirs.owns(al));
  CHECK(big && mirs.usable_size(big) == malloc_usable_size(big));
  free(big);
  free(al);
  void *m = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  if (m != MAP_FAILED) {
    CHECK(!mirs.owns(m));
    munmap(m, page_size);
  }
}

static void test_mirs_api(void) {
  if (!have_mirs) return; /* already counted as a failure above */

  int v = mirs.version();
  CHECKF(v > 0, "mirs_version() == %d", v);

  void *a = mirs.malloc(0), *b = mirs.malloc(0);
  CHECK(a != NULL && b != NULL && a != b);
  mirs.free(a);
  mirs.free(b);
  mirs.free(NULL);
  errno = 0;
  CHECK(mirs.malloc(SIZE_MAX) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(mirs.malloc(HUGE_INVALID) == NULL && errno == ENOMEM);

  errno = 0;
  CHECK(mirs.calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  unsigned char *z = mirs.calloc(100, 41);
  CHECK(z != NULL && all_zero(z, 4100));
  mirs.free(z);

  char *p = mirs.realloc(NULL, 50);
  CHECK(p != NULL);
  if (p) {
    fill(p, 50, 4);
    char *q = mirs.realloc(p, 100000);
    CHECK(q != NULL && check_fill(q, 50, 4));
    if (q) p = q;
    errno = 0;
    CHECK(mirs.realloc(p, SIZE_MAX / 2) == NULL && errno == ENOMEM);
    CHECK(check_fill(p, 50, 4));
    CHECK(mirs.usable_size(p) >= 100000);
    mirs.free(p);
  }

  test_posix_memalign_errors("mirs_posix_memalign", mirs.posix_memalign);
  errno = 0;
  void *x = mirs.aligned_alloc(24, 64);
  CHECK(x == NULL && errno == EINVAL);
  x = mirs.aligned_alloc(64, 100); /* size not a multiple of the alignment */
  CHECK(x != NULL && is_aligned(x, 64));
  mirs.free(x);
  errno = 0;
  CHECK(mirs.aligned_alloc(64, SIZE_MAX) == NULL && errno == ENOMEM);

  /* One allocator behind both names: blocks cross freely. */
  void *m = mirs.malloc(123);
  CHECK(m != NULL && malloc_usable_size(m) >= 123);
  free(m);
  m = malloc(321);
  CHECK(m != NULL && mirs.owns(m));
  mirs.free(m);

  /* collect and stats_print: must not crash, and allocation continues afterwards. */
  void *keep = mirs.malloc(1000);
  mirs.collect(false);
  mirs.collect(true);
  fflush(stderr);
  mirs.stats_print();
  CHECK(keep != NULL && mirs.owns(keep));
  mirs.free(keep);
  void *after = malloc(1000);
  CHECK(after != NULL);
  free(after);
}

/* include/mirs.h (generated by cbindgen) declares what the brief specifies. */
static void test_header(void) {
#define SIG_IS(fn, type) CHECKF(__builtin_types_compatible_p(__typeof__(&fn), type), \
                                "include/mirs.h: %s is not %s", #fn, #type)
  SIG_IS(mirs_malloc, void *(*)(size_t));
  SIG_IS(mirs_free, void (*)(void *));
  SIG_IS(mirs_calloc, void *(*)(size_t, size_t));
  SIG_IS(mirs_realloc, void *(*)(void *, size_t));
  SIG_IS(mirs_posix_memalign, int (*)(void **, size_t, size_t));
  SIG_IS(mirs_aligned_alloc, void *(*)(size_t, size_t));
  SIG_IS(mirs_usable_size, size_t (*)(const void *));
  SIG_IS(mirs_owns, bool (*)(const void *));
  SIG_IS(mirs_collect, void (*)(bool));
  SIG_IS(mirs_stats_print, void (*)(void));
  SIG_IS(mirs_version, int (*)(void));
#undef SIG_IS
}

static void test_libc_posix_memalign_errors(void) {
  test_posix_memalign_errors("posix_memalign", posix_memalign);
}

/* Each section runs in a forked child, so a crash in one is reported (as one failure,
 * with its signal) and the others still run. TEST_NO_FORK=1 runs them in-process
 * (for a debugger, or if fork itself is in doubt); TEST_SECTION=name runs only one. */
static void run_section(const char *name, void (*section)(void)) {
  const char *only = getenv("TEST_SECTION");
  if (only && strcmp(only, name) != 0) return;
  if (getenv("TEST_NO_FORK")) {
    section();
    return;
  }
  int fds[2];
  if (pipe(fds) != 0) {
    section();
    return;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    section();
    int counts[2] = {test_passed, test_failed};
    (void)!write(fds[1], counts, sizeof counts);
    _exit(0);
  }
  close(fds[1]);
  int counts[2] = {0, 0};
  ssize_t got = pid > 0 ? read(fds[0], counts, sizeof counts) : -1;
  close(fds[0]);
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  bool finished = pid > 0 && got == (ssize_t)sizeof counts && WIFEXITED(status);
  if (finished) {
    test_passed = counts[0]; /* the child started from our counts */
    test_failed = counts[1];
  }
  CHECKF(finished, "section %s did not finish: %s %d", name,
         pid > 0 && WIFSIGNALED(status) ? "killed by signal" : "status",
         pid > 0 && WIFSIGNALED(status) ? WTERMSIG(status) : status);
}

#define SECTION(fn) run_section(#fn, fn)

int main(void) {
  page_size = (size_t)sysconf(_SC_PAGESIZE);
  have_mirs = mirs_api_load(&mirs);

  SECTION(test_header);
  SECTION(test_malloc);
  SECTION(test_calloc);
  SECTION(test_reallocarray);
  SECTION(test_libc_posix_memalign_errors);
  SECTION(test_alignments);
  SECTION(test_aligned_alloc);
  SECTION(test_memalign_valloc);
  SECTION(test_realloc);
  SECTION(test_usable_free);
  SECTION(test_glibc_extras);
  SECTION(test_malloc_info);
  SECTION(test_malloc_stats_cancel);
  SECTION(test_mirs_owns);
  SECTION(test_mirs_api);
  SECTION(test_huge);
  return test_report();
}
