/* test_misuse.c: the bugs issue 13 lists, as a C program sees them (public API only),
 * so the same source runs against any libmirs: each case says PASS or FAIL with its
 * numbers, and one `RESULT <case> PASS|FAIL|SKIP` line for the before/after table.
 *
 *   a  interior free in a page holding an over-aligned block (alignment 8 KiB..64 KiB):
 *      free(p + off) is refused (counted as an invalid free), the block stays live
 *      (pattern intact, no later allocation overlaps it), free(p) then works and the
 *      next blocks are distinct.
 *   b  double free of a 48 B, 20 KiB, 300 KiB and 8 MiB block never hands a block out
 *      twice and never hangs, in three shapes: same thread; cross-thread (the owner
 *      frees q, another thread frees p twice; the owner trims, allocates, exits);
 *      owner frees p, another thread frees p again. Duplicates (overlapping live
 *      blocks or clobbered tags) must be 0, each double free counted once.
 *   c  mirs_owns(p): 1 while live, 0 after free(p) (same thread and cross-thread).
 *   d  realloc of a freed block (freed by another thread, or by the owner), growing
 *      and shrinking: refused with NULL and errno EINVAL, counted, nothing handed out
 *      twice. README: "realloc of a pointer mirs does not own: NULL, EINVAL, nothing
 *      freed"; issue 13 makes a freed block one mirs does not own. glibc has no rule
 *      (undefined behaviour; it aborts with "realloc(): invalid pointer" when its chunk
 *      checks notice, else corrupts), so mirs's EINVAL is the stated policy.
 *   e  a 1-byte overflow into a freed 48-byte neighbour's free-list link, 100 runs:
 *      every later 48-byte block is 16-byte aligned and overlaps no live block. Asserted
 *      in every build: links are encoded and checked by default since issue 20.
 *   f  blocks over 4 GiB (7 GiB, 19 GiB): free(p + size - 2), free(p + size - 16),
 *      free(p + 4 GiB) are refused without a crash, the block stays mapped (first and
 *      last page touched), free(p) works. SKIP when the system refuses the mapping.
 *   g  a pthread-key destructor that re-arms itself for PTHREAD_DESTRUCTOR_ITERATIONS
 *      rounds and allocates (and keeps) 48 bytes in the last one, 2000 threads one
 *      after another, (1) each having allocated before, (2) each allocating first
 *      there: RSS < 4 MB, address space < 32 MB, no heap left registered (the
 *      `threads` row of the statistics back where it was).
 *
 * Every sub-case (and each of e's runs) is a forked child with alarm(10): a hang is a
 * failure (SIGALRM, with the stage b stopped in), a crash too (its signal). Results
 * come back through MAP_SHARED memory. The invalid-free count comes from mirs's own
 * statistics (the `invalid frees` row of mirs_stats_print, read back through a pipe);
 * mirs reports (one "mirs: free(): invalid pointer" line, by default) from the same
 * call that counts, so the count stands for the report (test_bad_free matches the
 * lines themselves).
 *
 * Usage: test_misuse [CASES] (default "abcdefg").
 */
#include "mirs_test.h"

#include <limits.h> /* PTHREAD_DESTRUCTOR_ITERATIONS */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GLIBC__)
#include <malloc.h> /* malloc_trim, memalign */
#endif

static struct mirs_api api;
static void (*volatile free_v)(void *) = free; /* hide the bad frees from the compiler */
static void *(*volatile realloc_v)(void *, size_t) = realloc;

#define CASE_TIMEOUT 10

/* ---- forked runs ----------------------------------------------------------------- */

enum { R_PASS = 0, R_FAIL = 1, R_SKIP = 3 };

/* Runs fn(arg) in a child with alarm(CASE_TIMEOUT); returns R_PASS/R_FAIL/R_SKIP and
 * describes a crash or hang in `why`. */
static int run_forked(int (*fn)(void *), void *arg, char *why, size_t whylen) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, whylen, "fork failed");
    return R_FAIL;
  }
  if (pid == 0) {
    alarm(CASE_TIMEOUT);
    int r = fn(arg);
    fflush(stdout);
    fflush(stderr);
    _exit(r);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) {
    snprintf(why, whylen, "waitpid failed");
    return R_FAIL;
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    snprintf(why, whylen, sig == SIGALRM ? "hung (no end within %d s)" : "killed by signal %d (%s)",
             sig == SIGALRM ? CASE_TIMEOUT : sig, strsignal(sig));
    return R_FAIL;
  }
  int code = WEXITSTATUS(status);
  if (code == R_PASS || code == R_SKIP || code == R_FAIL) return code; /* it said why */
  snprintf(why, whylen, "exit %d", code);
  return R_FAIL;
}

/* Runs fn(arg) as a sub-case in its own child; prints one line: ok/FAIL/skip, the label,
 * then why the child died, or else the numbers it left in shared memory (`detail()`
 * formats them after the run). Returns 1 when it failed. */
static int sub(const char *label, int (*fn)(void *), void *arg,
               void (*detail)(void *, char *, size_t), bool quiet_ok) {
  char why[160] = "", text[256] = "";
  int r = run_forked(fn, arg, why, sizeof why);
  bool died = why[0] != 0;
  if (!died && detail) detail(arg, text, sizeof text);
  if (r != R_FAIL && quiet_ok) return 0;
  printf("    %s %s: %s\n", r == R_FAIL ? "FAIL" : r == R_SKIP ? "skip" : "ok  ", label,
         died ? why : text);
  return r == R_FAIL;
}

/* ---- the invalid-free counter, from mirs_stats_print ------------------------------- */

/* A row of mirs's statistics table (mirs_stats_print, read back through a pipe): its
 * `current` (col 0) or `total` (col 2) figure, or -1 if there is no such row. */
static long stats_row(const char *row, int col) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(stderr);
  int saved = dup(2);
  dup2(fds[1], 2);
  api.stats_print();
  dup2(saved, 2);
  close(saved);
  close(fds[1]);
  static char buf[1 << 16];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof buf - 1 && (n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
    len += (size_t)n;
  close(fds[0]);
  buf[len] = 0;
  char key[64];
  snprintf(key, sizeof key, "\n%s ", row);
  char *line = strstr(buf, key);
  long v[3];
  if (!line || sscanf(line + strlen(key), "%ld %ld %ld", &v[0], &v[1], &v[2]) != 3) return -1;
  return v[col];
}

/* Frees mirs refused (pointers it does not own, not live block starts, double frees). */
static long invalid_frees(void) { return stats_row("invalid frees", 2); }

static bool have_counter;

/* ---- live-block bookkeeping: overlap and tag checks ---------------------------------- */

struct span {
  unsigned char *p;
  size_t n;
};

enum { MAX_LIVE = 8192 };
static struct span live[MAX_LIVE];
static int nlive;

/* Overlaps of [p, p+n) with the recorded live blocks. */
static int overlaps(const void *p, size_t n) {
  int hits = 0;
  const unsigned char *a = p;
  for (int i = 0; i < nlive; i++)
    if (a < live[i].p + live[i].n && live[i].p < a + n) hits++;
  return hits;
}

static unsigned char tag_of(int i) { return (unsigned char)(0x11 + i * 7); }

/* Records a new block (after counting its overlaps) and tags its first and last 64 bytes. */
static int add_live(void *p, size_t n) {
  int hits = overlaps(p, n);
  if (nlive < MAX_LIVE) {
    live[nlive].p = p;
    live[nlive].n = n;
    size_t t = n < 64 ? n : 64;
    memset(p, tag_of(nlive), t);
    memset((unsigned char *)p + n - t, tag_of(nlive), t);
    nlive++;
  }
  return hits;
}

/* Live blocks whose tags were overwritten (a block handed out twice). */
static int clobbered(void) {
  int bad = 0;
  for (int i = 0; i < nlive; i++) {
    size_t t = live[i].n < 64 ? live[i].n : 64;
    for (size_t j = 0; j < t; j++)
      if (live[i].p[j] != tag_of(i) || live[i].p[live[i].n - t + j] != tag_of(i)) {
        bad++;
        break;
      }
  }
  return bad;
}

static void free_live(void) {
  for (int i = 0; i < nlive; i++) free(live[i].p);
  nlive = 0;
}

/* Results a sub-case's child leaves for its parent (MAP_SHARED, so they survive the child). */
static long *shared_longs(size_t n) {
  void *m = mmap(NULL, n * sizeof(long), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return m == MAP_FAILED ? NULL : m;
}

/* The invalid frees counted while `what` ran: the counter's delta, or `assumed` when
 * the counter is not available. */
#define COUNTED(assumed, what)                                                        \
  ({                                                                                  \
    long before_ = have_counter ? invalid_frees() : 0;                                \
    what;                                                                             \
    have_counter ? invalid_frees() - before_ : (long)(assumed);                       \
  })

/* ---- a: interior free in a page with over-aligned blocks ----------------------------- */

struct a_arg {
  size_t align, size;
  long off;  /* the bad pointer is p + off */
  long *out; /* [0] counted for free(p + off), [1] block intact, [2] overlaps, [3] counted for free(p) */
};

static int a_run(void *v) {
  struct a_arg *a = v;
  long *out = a->out;
  /* Neighbours first, so the page holds other over-aligned blocks too. */
  for (int i = 0; i < 4; i++) {
    void *q = memalign(a->align, a->size);
    if (!q) return R_FAIL;
    add_live(q, a->size);
  }
  unsigned char *p = memalign(a->align, a->size);
  if (!p) return R_FAIL;
  memset(p, 0xA5, a->size);
  out[0] = COUNTED(1, free_v(p + a->off));
  /* The block must still be live: nothing allocated now may overlap it. */
  long dups = 0;
  for (int i = 0; i < 64; i++) {
    unsigned char *q = memalign(a->align, a->size);
    if (!q) return R_FAIL;
    dups += q < p + a->size && p < q + a->size;
    dups += add_live(q, a->size);
  }
  out[1] = 1;
  for (size_t j = 0; j < a->size; j++)
    if (p[j] != 0xA5) out[1] = 0;
  /* Its own free is accepted, and the blocks after it are distinct. */
  out[3] = COUNTED(0, free(p));
  for (int i = 0; i < 64; i++) {
    void *q = i % 2 ? memalign(a->align, a->size) : malloc(a->size);
    if (!q) return R_FAIL;
    dups += add_live(q, a->size);
  }
  dups += clobbered();
  out[2] = dups;
  free_live();
  return out[0] == 1 && out[1] == 1 && out[2] == 0 && out[3] == 0 ? R_PASS : R_FAIL;
}

static void a_detail(void *v, char *buf, size_t len) {
  struct a_arg *a = v;
  snprintf(buf, len,
           "invalid frees +%ld (want 1), block %s, %ld overlapping/clobbered (want 0), "
           "free(p) counted %ld (want 0)",
           a->out[0], a->out[1] ? "intact" : "CLOBBERED", a->out[2], a->out[3]);
}

static int case_a(void *unused) {
  (void)unused;
  static const size_t aligns[] = {8192, 16384, 65536};
  static const size_t sizes[] = {100, 3000, 40000};
  long *out = shared_longs(4);
  if (!out) return R_FAIL;
  int runs = 0, failed = 0, freed_block = 0;
  for (size_t ai = 0; ai < 3; ai++)
    for (size_t si = 0; si < 3; si++) {
      size_t size = sizes[si];
      const long offs[] = {8, 16, 32, 64, (long)size / 2, (long)size - 1};
      for (size_t oi = 0; oi < sizeof offs / sizeof offs[0]; oi++) {
        struct a_arg a = {aligns[ai], size, offs[oi], out};
        out[0] = -1;
        char label[96];
        snprintf(label, sizeof label, "a memalign(%zu, %zu), free(p%+ld)", a.align, size, a.off);
        failed += sub(label, a_run, &a, a_detail, true);
        freed_block += out[0] == 0;
        runs++;
      }
    }
  printf("  a: %d interior frees in pages with over-aligned blocks: %d failed, %d freed the "
         "block (counter %s)\n",
         runs, failed, freed_block, have_counter ? "read" : "not available");
  return failed ? R_FAIL : R_PASS;
}

/* ---- b: double free --------------------------------------------------------------- */

enum shape { SAME_THREAD, OTHER_TWICE, OWNER_THEN_OTHER };
static const char *const shape_names[] = {"same thread", "other thread frees p twice",
                                          "owner frees p, other thread again"};
static const size_t dsizes[] = {48, 20 << 10, 300 << 10, 8 << 20};
static const char *const dsize_names[] = {"48 B", "20 KiB", "300 KiB", "8 MiB"};

/* How many blocks to allocate afterwards: enough to cycle through the block's page
 * (a 64 KiB page holds 1365 blocks of 48 B; a medium page 4 to 8). */
static int many_of(size_t size) {
  return size <= 64 ? 3000 : size <= (64 << 10) ? 64 : size <= (1 << 20) ? 24 : 6;
}

struct b_arg {
  size_t size;
  enum shape shape;
  long *out; /* [0] duplicates, [1] invalid frees counted, [2] stage reached */
};

static void *free_twice_thread(void *p) {
  free_v(p);
  free_v(p);
  return NULL;
}

static void *free_once_thread(void *p) {
  free_v(p);
  return NULL;
}

/* The owner's part: runs on its own thread so that its exit (heap abandonment) is part
 * of the case. */
static void *b_owner(void *v) {
  struct b_arg *b = v;
  size_t size = b->size;
  for (int i = 0; i < 3; i++) { /* keep the page in use */
    void *k = malloc(size);
    if (!k) return NULL;
    add_live(k, size);
  }
  unsigned char *p = malloc(size), *q = malloc(size);
  if (!p || !q) return NULL;
  pthread_t t;
  switch (b->shape) {
  case SAME_THREAD:
    free_v(p);
    free_v(p);
    free(q);
    break;
  case OTHER_TWICE:
    free(q);
    pthread_create(&t, NULL, free_twice_thread, p);
    pthread_join(t, NULL);
    break;
  case OWNER_THEN_OTHER:
    free(q);
    free_v(p);
    pthread_create(&t, NULL, free_once_thread, p);
    pthread_join(t, NULL);
    break;
  }
  b->out[2] = 1; /* freed */
  malloc_trim(0);
  b->out[2] = 2; /* trimmed */
  long dups = 0;
  for (int i = 0, n = many_of(size); i < n; i++) {
    void *r = malloc(size);
    if (!r) return NULL;
    dups += add_live(r, size);
  }
  b->out[0] = dups + clobbered();
  b->out[2] = 3; /* allocated; the owner now exits holding live blocks */
  return NULL;
}

static int b_run(void *v) {
  struct b_arg *b = v;
  long before = have_counter ? invalid_frees() : 0;
  pthread_t owner;
  if (pthread_create(&owner, NULL, b_owner, b) != 0) return R_FAIL;
  pthread_join(owner, NULL);
  if (b->out[2] != 3) return R_FAIL;
  b->out[2] = 4; /* the owner exited */
  /* The main thread now allocates too (adopting the owner's abandoned pages). */
  for (int i = 0, n = many_of(b->size); i < n; i++) {
    void *r = malloc(b->size);
    if (!r) return R_FAIL;
    b->out[0] += add_live(r, b->size);
  }
  b->out[0] += clobbered();
  b->out[1] = have_counter ? invalid_frees() - before : 1;
  free_live();
  b->out[2] = 5;
  return b->out[0] == 0 && b->out[1] == 1 ? R_PASS : R_FAIL;
}

static void b_detail(void *v, char *buf, size_t len) {
  struct b_arg *b = v;
  snprintf(buf, len, "%ld duplicate(s) (want 0), invalid frees +%ld (want 1)", b->out[0],
           b->out[1]);
}

static int case_b(void *unused) {
  (void)unused;
  long *out = shared_longs(3);
  if (!out) return R_FAIL;
  static const char *const stages[] = {"in the double free", "in malloc_trim(0)",
                                       "allocating after it", "at the owner's exit",
                                       "the main thread allocating", "done"};
  int failed = 0;
  for (int sh = 0; sh < 3; sh++)
    for (int si = 0; si < 4; si++) {
      struct b_arg b = {dsizes[si], (enum shape)sh, out};
      out[0] = 0;
      out[1] = -1;
      out[2] = 0;
      char label[128];
      snprintf(label, sizeof label, "b %s, %s", dsize_names[si], shape_names[sh]);
      int f = sub(label, b_run, &b, b_detail, false);
      if (f && out[2] < 5) printf("         (stopped %s)\n", stages[out[2]]);
      failed += f;
    }
  printf("  b: 12 double frees (4 sizes x 3 shapes): %d failed\n", failed);
  return failed ? R_FAIL : R_PASS;
}

/* ---- c: mirs_owns after free -------------------------------------------------------- */

struct c_arg {
  size_t size;
  bool cross;
  long *out; /* [0] owns while live, [1] owns after free, [2] owns of the live neighbours */
};

static int c_run(void *v) {
  struct c_arg *c = v;
  void *k1 = malloc(c->size), *p = malloc(c->size), *k2 = malloc(c->size);
  if (!k1 || !p || !k2) return R_FAIL;
  memset(p, 0x3C, c->size < 64 ? c->size : 64);
  c->out[0] = api.owns(p);
  if (c->cross) {
    pthread_t t;
    pthread_create(&t, NULL, free_once_thread, p);
    pthread_join(t, NULL);
  } else {
    free(p);
  }
  c->out[1] = api.owns(p);
  c->out[2] = api.owns(k1) && api.owns(k2);
  free(k1);
  free(k2);
  return c->out[0] == 1 && c->out[1] == 0 && c->out[2] == 1 ? R_PASS : R_FAIL;
}

static void c_detail(void *v, char *buf, size_t len) {
  struct c_arg *c = v;
  snprintf(buf, len, "owns while live %ld, after free %ld, neighbours %ld (want 1, 0, 1)",
           c->out[0], c->out[1], c->out[2]);
}

static int case_c(void *unused) {
  (void)unused;
  long *out = shared_longs(3);
  if (!out) return R_FAIL;
  int failed = 0;
  for (int cross = 0; cross < 2; cross++)
    for (int si = 0; si < 4; si++) {
      struct c_arg c = {dsizes[si], cross, out};
      out[0] = out[1] = out[2] = -1;
      char label[96];
      snprintf(label, sizeof label, "c %s, freed by %s", dsize_names[si],
               cross ? "another thread" : "the owner");
      failed += sub(label, c_run, &c, c_detail, false);
    }
  printf("  c: mirs_owns for 4 sizes x 2 freeing threads: %d failed\n", failed);
  return failed ? R_FAIL : R_PASS;
}

/* ---- d: realloc of a freed block ---------------------------------------------------- */

struct d_arg {
  size_t size;
  bool cross;
  long *out; /* [0] refused (NULL, EINVAL) of 2, [1] duplicates, [2] invalid frees counted */
};

static int d_run(void *v) {
  struct d_arg *d = v;
  for (int i = 0; i < 3; i++) {
    void *k = malloc(d->size);
    if (!k) return R_FAIL;
    add_live(k, d->size);
  }
  void *p = malloc(d->size);
  if (!p) return R_FAIL;
  if (d->cross) {
    pthread_t t;
    pthread_create(&t, NULL, free_once_thread, p);
    pthread_join(t, NULL);
  } else {
    free(p);
  }
  long before = have_counter ? invalid_frees() : 0;
  /* Growing would copy and free p again; shrinking would hand p itself back. */
  const size_t news[2] = {d->size * 3, d->size - d->size / 4};
  for (int i = 0; i < 2; i++) {
    errno = 0;
    void *r = realloc_v(p, news[i]);
    if (r == NULL && errno == EINVAL)
      d->out[0]++;
    else if (r)
      d->out[1] += add_live(r, news[i]);
  }
  d->out[2] = have_counter ? invalid_frees() - before : 2;
  for (int i = 0, n = many_of(d->size); i < n; i++) {
    void *r = malloc(d->size);
    if (!r) return R_FAIL;
    d->out[1] += add_live(r, d->size);
  }
  d->out[1] += clobbered();
  free_live();
  return d->out[0] == 2 && d->out[1] == 0 && d->out[2] == 2 ? R_PASS : R_FAIL;
}

static void d_detail(void *v, char *buf, size_t len) {
  struct d_arg *d = v;
  snprintf(buf, len, "refused %ld/2 (NULL, EINVAL), %ld duplicate(s), invalid frees +%ld "
           "(want 2, 0, 2)", d->out[0], d->out[1], d->out[2]);
}

static int case_d(void *unused) {
  (void)unused;
  long *out = shared_longs(3);
  if (!out) return R_FAIL;
  int failed = 0;
  for (int cross = 1; cross >= 0; cross--)
    for (int si = 0; si < 4; si++) {
      struct d_arg d = {dsizes[si], cross, out};
      out[0] = out[1] = 0;
      out[2] = -1;
      char label[96];
      snprintf(label, sizeof label, "d %s, freed by %s", dsize_names[si],
               cross ? "another thread" : "the owner");
      failed += sub(label, d_run, &d, d_detail, false);
    }
  printf("  d: realloc (grow, shrink) of a freed block, 4 sizes x 2 freeing threads: %d failed\n",
         failed);
  return failed ? R_FAIL : R_PASS;
}

/* ---- e: a 1-byte overflow into a freed neighbour's link ------------------------------- */

/* Shared with the parent: runs that got a misaligned block, runs with an overlap. */
static long *e_out;

static void *e_thread(void *v) {
  uint64_t seed = 0x5eed0000u + (uint64_t)(uintptr_t)v;
  enum { N = 256, LATER = 2000 };
  static unsigned char *b[N];
  static bool freed[N];
  for (int i = 0; i < N; i++) {
    b[i] = malloc(48);
    if (!b[i]) return (void *)(uintptr_t)R_FAIL;
    memset(b[i], 0x5A, 48);
    freed[i] = false;
  }
  /* A live block whose next neighbour (48 bytes up) is one of ours. */
  int victim = -1, neighbour = -1;
  for (int tries = 0; tries < 4 * N && victim < 0; tries++) {
    int i = (int)(rng_next(&seed) % N);
    for (int j = 0; j < N; j++)
      if (b[j] == b[i] + 48) {
        victim = i;
        neighbour = j;
        break;
      }
  }
  if (victim < 0) return (void *)(uintptr_t)R_SKIP;
  /* Free about half (never the victim), the neighbour always, the neighbour last so its
   * link is the head of the list malloc pops next. */
  for (int i = 0; i < N; i++)
    if (i != victim && i != neighbour && rng_next(&seed) % 2) {
      free(b[i]);
      freed[i] = true;
    }
  free(b[neighbour]);
  freed[neighbour] = true;
  b[victim][48] = 0x41; /* the overflow: one byte into the neighbour's link */
  for (int i = 0; i < N; i++)
    if (!freed[i]) add_live(b[i], 48);
  int misaligned = 0, dups = 0;
  for (int i = 0; i < LATER; i++) {
    unsigned char *q = malloc(48);
    if (!q) return (void *)(uintptr_t)R_FAIL;
    misaligned += !is_aligned(q, 16);
    dups += add_live(q, 48);
  }
  dups += clobbered();
  e_out[0] += misaligned != 0;
  e_out[1] += dups != 0;
  return (void *)(uintptr_t)(misaligned == 0 && dups == 0 ? R_PASS : R_FAIL);
}

/* On a thread of its own: a new heap, whose pages get fresh secret keys (a forked child
 * would otherwise inherit its parent's heap and key stream, and every run would use the
 * same key). */
static int e_run(void *v) {
  pthread_t t;
  void *r = NULL;
  if (pthread_create(&t, NULL, e_thread, v) != 0 || pthread_join(t, &r) != 0) return R_FAIL;
  return (int)(uintptr_t)r;
}

static int case_e(void *unused) {
  (void)unused;
  int bad = 0, crashed = 0, skipped = 0;
  e_out = shared_longs(2);
  if (!e_out) return R_FAIL;
  for (int run = 0; run < 100; run++) {
    char why[160] = "";
    int r = run_forked(e_run, (void *)(uintptr_t)run, why, sizeof why);
    bad += r == R_FAIL;
    crashed += r == R_FAIL && why[0];
    skipped += r == R_SKIP;
  }
  printf("  e: 1-byte overflow into a freed 48-byte neighbour's link: %d of %d runs bad "
         "(%ld with a misaligned block, %ld with overlapping blocks, %d crashed or hung), "
         "%d without an adjacent pair\n",
         bad, 100 - skipped, e_out[0], e_out[1], crashed, skipped);
  return bad == 0 && skipped < 100 ? R_PASS : R_FAIL;
}

/* ---- f: interior pointers of blocks over 4 GiB -------------------------------------- */

struct f_arg {
  size_t size;
  long *out; /* [0] counted for the bad frees, [1] ends intact, [2] owns, [3] counted for free(p), [4] errno of a NULL malloc */
};

enum { F_BAD = 5 };

static int f_run(void *v) {
  struct f_arg *f = v;
  unsigned char *p = malloc(f->size);
  if (!p) {
    f->out[4] = errno;
    return R_SKIP;
  }
  size_t last = f->size - 4096;
  p[0] = 1;
  p[last] = 2;
  const size_t offs[F_BAD] = {f->size - 2, f->size - 16, (size_t)4 << 30, f->size / 2, 4096};
  f->out[0] = COUNTED(F_BAD, for (int i = 0; i < F_BAD; i++) free_v(p + offs[i]));
  /* Still mapped and ours: both ends readable and writable (a SIGSEGV fails the case). */
  f->out[1] = p[0] == 1 && p[last] == 2;
  p[0] = 3;
  p[f->size - 1] = 4;
  f->out[2] = api.owns(p);
  f->out[3] = COUNTED(0, free(p));
  void *q = malloc(1 << 20); /* the allocator still works */
  if (!q) return R_FAIL;
  free(q);
  return f->out[0] == F_BAD && f->out[1] == 1 && f->out[2] == 1 && f->out[3] == 0 ? R_PASS : R_FAIL;
}

static void f_detail(void *v, char *buf, size_t len) {
  struct f_arg *f = v;
  if (f->out[4] >= 0) {
    snprintf(buf, len, "SKIP: malloc(%zu GiB) returned NULL (errno %ld): the system refused it",
             f->size >> 30, f->out[4]);
    return;
  }
  snprintf(buf, len,
           "free(p + size - 2, size - 16, 4 GiB, size/2, 4096): invalid frees +%ld (want %d), "
           "ends %s, owns %ld, free(p) counted %ld (want 0)",
           f->out[0], F_BAD, f->out[1] ? "intact" : "CHANGED", f->out[2], f->out[3]);
}

static int case_f(void *unused) {
  (void)unused;
  long *out = shared_longs(5);
  if (!out) return R_FAIL;
  int failed = 0, ran = 0;
  const size_t gib[] = {7, 19};
  for (int i = 0; i < 2; i++) {
    struct f_arg f = {gib[i] << 30, out};
    out[0] = out[1] = out[2] = out[3] = out[4] = -1;
    char label[64];
    snprintf(label, sizeof label, "f %zu GiB block", gib[i]);
    failed += sub(label, f_run, &f, f_detail, false);
    ran += out[4] < 0;
  }
  printf("  f: blocks over 4 GiB: %d ran, %d failed\n", ran, failed);
  if (failed) return R_FAIL;
  return ran ? R_PASS : R_SKIP;
}

/* ---- g: allocation in the last pthread-key destructor round --------------------------- */

enum { G_THREADS = 2000 };
static pthread_key_t g_key;
static void *g_kept[G_THREADS + 1];
static void *(*volatile malloc_v)(size_t) = malloc; /* a malloc/free pair the compiler keeps */

/* The value carries (thread number << 8) | round, round 1..PTHREAD_DESTRUCTOR_ITERATIONS:
 * glibc runs that many rounds and none after the last. */
static void g_destructor(void *v) {
  uintptr_t round = (uintptr_t)v & 0xff, slot = (uintptr_t)v >> 8;
  if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
    pthread_setspecific(g_key, (void *)((slot << 8) | (round + 1)));
    return;
  }
  g_kept[slot] = malloc(48);
}

static bool g_allocates_first;

static void *g_thread(void *v) {
  if (g_allocates_first) free_v(malloc_v(100)); /* the thread's heap exists before its exit */
  pthread_setspecific(g_key, (void *)(((uintptr_t)v << 8) | 1));
  return NULL;
}

static void statm(long *size, long *resident) {
  *size = *resident = -1;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return;
  if (fscanf(f, "%ld %ld", size, resident) != 2) *size = *resident = -1;
  fclose(f);
}

/* out: [0] blocks kept, [1] RSS growth (KB), [2] address-space growth (KB), [3] heaps
 * still registered (the `threads` row's current figure) after all exits, minus before. */
static int g_run(void *v) {
  long *out = v;
  if (pthread_key_create(&g_key, g_destructor) != 0) return R_FAIL;
  long page_kb = sysconf(_SC_PAGESIZE) / 1024;
  /* Warm up glibc's stack cache and mirs's first chunks. */
  for (uintptr_t i = 1; i <= 20; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, g_thread, (void *)i) != 0) return R_FAIL;
    pthread_join(t, NULL);
  }
  for (int i = 1; i <= 20; i++) free(g_kept[i]);
  long vsz0, rss0, vsz1, rss1, heaps0 = stats_row("threads", 0);
  statm(&vsz0, &rss0);
  for (uintptr_t i = 1; i <= G_THREADS; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, g_thread, (void *)i) != 0) return R_FAIL;
    pthread_join(t, NULL);
  }
  statm(&vsz1, &rss1);
  out[0] = 0;
  for (int i = 1; i <= G_THREADS; i++) out[0] += g_kept[i] != NULL;
  out[1] = (rss1 - rss0) * page_kb;
  out[2] = (vsz1 - vsz0) * page_kb;
  out[3] = stats_row("threads", 0) - heaps0;
  for (int i = 1; i <= G_THREADS; i++) free(g_kept[i]);
  /* Bounds. Live data: 2000 x 48 B = 96 KB, a few 64 KiB slices; with page headers and
   * glibc's reuse of cached stacks a correct allocator grows by well under 1 MB (measured:
   * +0.1 MB, +0 address space). 4 MB of RSS (2 KB per thread) and 32 MB of address space
   * (8 chunks) allow for that with room, and any per-thread leak of a heap (b803f7a: ~19 KB
   * RSS and 4 MiB of address space per thread, 38.6 MB / 8.4 GB for 2000) fails them. */
  return out[0] == G_THREADS && rss0 > 0 && out[1] < 4000 && out[2] < 32000 && out[3] == 0
             ? R_PASS
             : R_FAIL;
}

static void g_detail(void *v, char *buf, size_t len) {
  long *out = v;
  snprintf(buf, len,
           "%ld/%d blocks kept, RSS +%.1f MB (bound 4), address space +%.1f MB (bound 32), "
           "heaps left behind %ld (want 0)",
           out[0], G_THREADS, out[1] / 1000.0, out[2] / 1000.0, out[3]);
}

static int case_g(void *unused) {
  (void)unused;
  long *out = shared_longs(4);
  if (!out) return R_FAIL;
  int failed = 0;
  for (int first = 1; first >= 0; first--) {
    g_allocates_first = first;
    out[0] = out[1] = out[2] = out[3] = -1;
    char label[128];
    snprintf(label, sizeof label, "g %d threads, %s", G_THREADS,
             first ? "each allocated before it exits"
                   : "each allocates first in the last destructor round");
    failed += sub(label, g_run, out, g_detail, false);
  }
  printf("  g: allocation in the last key-destructor round: %d failed\n", failed);
  return failed ? R_FAIL : R_PASS;
}

/* ---- main ----------------------------------------------------------------------------- */

struct test_case {
  char id;
  const char *what;
  int (*run)(void *);
};

static const struct test_case cases[] = {
    {'a', "interior free in a page with over-aligned blocks", case_a},
    {'b', "double free never hands a block out twice, never hangs", case_b},
    {'c', "mirs_owns is 0 after free", case_c},
    {'d', "realloc of a freed block is refused", case_d},
    {'e', "1-byte overflow into a free-list link", case_e},
    {'f', "interior pointers of blocks over 4 GiB", case_f},
    {'g', "allocation in the last key-destructor round", case_g},
};

int main(int argc, char **argv) {
  const char *which = argc > 1 ? argv[1] : "abcdefg";
  setvbuf(stdout, NULL, _IOLBF, 0); /* our lines and the CHECK lines (stderr) in order */
  if (!mirs_api_load(&api)) {
    CHECKF(false, "the mirs_* API is not reachable (not running under mirs?)");
    return test_report();
  }
  free(malloc(1)); /* the allocator is set up before the first fork */
  have_counter = invalid_frees() >= 0;
  CHECKF(have_counter, "mirs_stats_print has no \"invalid frees\" row");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct test_case *c = &cases[i];
    if (!strchr(which, c->id)) continue;
    printf("case %c: %s\n", c->id, c->what);
    /* Each case forks its sub-cases (or runs), each child with its own alarm. */
    int r = c->run(NULL);
    printf("RESULT %c %s\n", c->id, r == R_PASS ? "PASS" : r == R_SKIP ? "SKIP" : "FAIL");
    if (r != R_SKIP) CHECKF(r == R_PASS, "case %c: %s", c->id, c->what);
  }
  return test_report();
}
