/* test_bad_free.c: every bad-input rule. free() of pointers mirs did not hand out, or
 * no longer owns, must not crash or corrupt anything, and the allocator must keep
 * working afterwards (later allocations distinct and intact).
 *
 * glibc aborts on most of these ("free(): invalid pointer", "double free detected");
 * mirs tolerates them: the free is ignored and counted, with a "mirs: warning:" line
 * under MIRS_VERBOSE=1. Each case runs in a forked child, so a crash, an abort or a hang
 * (alarm) is counted as one failure, with its signal, instead of killing the test.
 *
 * Cases and the rule each one checks:
 *   free of a stack address, a static array, an mmap'd page (at its start and inside),
 *   junk-filled mmap'd memory at a 4 MiB boundary, a block from another allocator
 *   (glibc's malloc through dlsym(RTLD_NEXT)), an interior pointer of a small and of
 *   a 1 MiB block: ignored, warned.
 *   an interior pointer of an aligned block: when mirs over-allocated the block for
 *   its alignment, the pointer is mapped to the block and frees it (by design); when
 *   the block is naturally aligned it is an ordinary interior pointer (ignored, warned).
 *   Either way no crash; no warning required.
 *   secure builds only (MIRS_TEST_SECURE=1, set by run_c_tests.sh for the `secure`
 *   libraries): a double free of a small and of a medium block, and realloc of a freed
 *   block (NULL, errno EINVAL): ignored, warned. Without `secure`, release builds do
 *   not check: a double free links the block into its free list twice, and later
 *   mallocs hand the same block out again and again (c_tests/README.md).
 *
 * With MIRS_VERBOSE=1 in the environment, the child's stderr is captured and every case
 * marked `warns` must print a line starting "mirs: warning:". The captured text is
 * passed on to our stderr.
 *
 * With MIRS_ABORT_ON_ERROR=1 in the environment (read by mirs at load, inherited by the
 * forked children), every case marked `warns` must instead end its child with SIGABRT,
 * after a line starting "mirs: error:", as glibc aborts on these.
 */
#include "mirs_test.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void *(*volatile malloc_v)(size_t) = malloc;
static void (*volatile free_v)(void *) = free; /* hide the bad frees from -Wfree-nonheap-object */

static char static_array[256];

/* After a bad free: many blocks of assorted sizes, all distinct and intact (a double
 * free that went unnoticed hands one block out twice: the patterns then clash). */
static bool later_allocations_work(void) {
  enum { N = 3000 };
  static unsigned char *p[N];
  for (int i = 0; i < N; i++) {
    size_t size = i % 100 == 0 ? 200000 : 16 + (size_t)(i % 7) * 24; /* includes 64 */
    p[i] = malloc_v(size);
    if (!p[i]) return false;
    memset(p[i], i & 0xff, size);
  }
  bool ok = true;
  for (int i = 0; i < N; i++) {
    size_t size = i % 100 == 0 ? 200000 : 16 + (size_t)(i % 7) * 24;
    for (size_t j = 0; j < size; j++)
      if (p[i][j] != (unsigned char)(i & 0xff)) { ok = false; break; }
  }
  for (int i = 0; i < N; i++) free(p[i]);
  return ok;
}

/* ---- the bad frees; each runs in its own child ----------------------------------- */

static void free_stack(void) {
  char buf[64];
  memset(buf, 1, sizeof buf);
  free_v(buf + 16);
}

static void free_static(void) { free_v(static_array + 16); }

static void free_mmap(void) {
  void *m = mmap(NULL, 1u << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) _exit(4);
  free_v((char *)m + 64);
}

/* Foreign memory that starts at a 4 MiB boundary (where mirs would look for a segment
 * header when masking the pointer) and holds junk there: a plausible-looking header
 * must not be trusted. */
static void free_mmap_segment_aligned(void) {
  size_t seg = (size_t)4 << 20;
  char *m = mmap(NULL, 3 * seg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) _exit(4);
  char *aligned = (char *)(((uintptr_t)m + seg - 1) & ~(uintptr_t)(seg - 1));
  memset(aligned, 0xff, 1u << 16);
  for (size_t i = 0; i < (1u << 16) / sizeof(void *); i += 3)
    ((void **)aligned)[i] = aligned + 4096; /* pointers back into itself */
  free_v(aligned + 65536 + 64);
}

/* An interior pointer: p+8 of a 64-byte block (p itself stays live and unused). */
static void free_interior_small(void) {
  char *p = malloc_v(64);
  if (!p) _exit(4);
  memset(p, 2, 64);
  free_v(p + 8);
}

/* An interior pointer of a large (1 MiB) block. */
static void free_interior_large(void) {
  char *p = malloc_v(1u << 20);
  if (!p) _exit(4);
  memset(p, 2, 1u << 20);
  free_v(p + 4096 + 16);
}

/* An interior pointer of an aligned block (see the top comment). */
static void free_interior_aligned(void) {
  char *a = aligned_alloc(4096, 8192);
  if (!a) _exit(4);
  free_v(a + 64);
}

/* The start of an mmap'd page: page aligned, like many blocks, but not mirs's. */
static void free_mmap_start(void) {
  void *m = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) _exit(4);
  free_v(m);
}

/* A block from another allocator: glibc's own malloc, behind mirs's (looked up in
 * libc.so.6 itself: in the preload build RTLD_NEXT would find mirs). */
static void free_other_allocator(void) {
  void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  void *(*libc_malloc)(size_t) = libc ? (void *(*)(size_t))dlsym(libc, "malloc") : NULL;
  if (!libc_malloc || libc_malloc == malloc) _exit(6); /* no second allocator here */
  char *p = libc_malloc(100);
  if (!p) _exit(4);
  memset(p, 3, 100);
  free_v(p);
}

/* A block freed twice by its owner: small (a local free list) and medium. */
static void double_free_small(void) {
  char *p = malloc_v(64);
  if (!p) _exit(4);
  free_v(p);
  free_v(p);
}

static void double_free_medium(void) {
  char *keep = malloc_v(100000); /* keeps the page in use */
  char *p = malloc_v(100000);
  if (!p || !keep) _exit(4);
  free_v(p);
  free_v(p);
  free(keep);
}

/* realloc of a freed block, growing (would copy and free it again) and shrinking
 * (would hand the freed block back): refused with NULL and EINVAL. */
static void realloc_freed(void) {
  char *p = malloc_v(100);
  if (!p) _exit(4);
  free_v(p);
  errno = 0;
  void *(*volatile realloc_v)(void *, size_t) = realloc;
  if (realloc_v(p, 1000) != NULL || errno != EINVAL) _exit(7);
  errno = 0;
  if (realloc_v(p, 60) != NULL || errno != EINVAL) _exit(7);
}

struct bad_case {
  const char *name;
  void (*run)(void);
  bool warns;       /* must print a "mirs: warning:" line under MIRS_VERBOSE=1 */
  bool secure_only; /* checked only in secure builds (MIRS_TEST_SECURE=1) */
};

static const struct bad_case cases[] = {
    /* Run first, before this process has allocated anything: the allocator must
     * already honour MIRS_VERBOSE on its very first call. */
    {"free of a stack address, as the process's first allocator call", free_stack, true, false},
    {"free of a stack address", free_stack, true, false},
    {"free of a static array", free_static, true, false},
    {"free inside an mmap'd page", free_mmap, true, false},
    {"free of the start of an mmap'd mapping", free_mmap_start, true, false},
    {"free of junk-filled mmap'd memory at a 4 MiB boundary", free_mmap_segment_aligned, true, false},
    {"free of a block from glibc's malloc", free_other_allocator, true, false},
    {"free of p+8 of a 64-byte block", free_interior_small, true, false},
    {"free of an interior pointer of a 1 MiB block", free_interior_large, true, false},
    {"free of an interior pointer of a 4096-aligned block", free_interior_aligned, false, false},
    {"double free of a 64-byte block", double_free_small, true, true},
    {"double free of a 100000-byte block", double_free_medium, true, true},
    {"realloc of a freed block", realloc_freed, true, true},
};

/* Runs one case in a child; returns its wait status. With `capture`, the child's
 * stderr goes into `err` (NUL-terminated, truncated to errcap-1). */
static int run_case(const struct bad_case *c, bool capture, char *err, size_t errcap) {
  int fds[2] = {-1, -1};
  if (capture && pipe(fds) != 0) capture = false;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    alarm(20);
    if (capture) {
      dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
    }
    c->run();
    _exit(later_allocations_work() ? 0 : 5);
  }
  size_t len = 0;
  if (capture) {
    close(fds[1]);
    ssize_t n;
    while ((n = read(fds[0], err + len, errcap - 1 - len)) > 0) len += (size_t)n;
    close(fds[0]);
  }
  if (err) err[len] = 0;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

int main(void) {
  const char *verbose = getenv("MIRS_VERBOSE");
  bool want_warnings = verbose && strcmp(verbose, "1") == 0;
  const char *abort_env = getenv("MIRS_ABORT_ON_ERROR");
  bool want_abort = abort_env && strcmp(abort_env, "1") == 0;
  const char *secure = getenv("MIRS_TEST_SECURE");
  bool is_secure = secure && strcmp(secure, "1") == 0;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct bad_case *c = &cases[i];
    if (c->secure_only && !is_secure) {
      printf("skip %s: checked in secure builds only\n", c->name);
      continue;
    }
    if (i == 1) free(malloc_v(1)); /* from here on, the allocator has been used */
    static char err[1 << 16];
    int status = run_case(c, want_warnings || want_abort, err, sizeof err);
    if (want_warnings || want_abort) fputs(err, stderr);
    bool waited = status != -1, crashed = waited && WIFSIGNALED(status);
    int code = waited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    CHECKF(waited, "%s: fork/wait failed", c->name);
    if (code == 6) {
      printf("skip %s: no second allocator in this process\n", c->name);
      continue;
    }
    if (want_abort) {
      if (!c->warns) continue; /* the aligned interior case may free or be ignored */
      CHECKF(crashed && WTERMSIG(status) == SIGABRT,
             "%s under MIRS_ABORT_ON_ERROR=1: %s %d, want SIGABRT", c->name,
             crashed ? "killed by signal" : "exit", crashed ? WTERMSIG(status) : code);
      bool said = strncmp(err, "mirs: error:", 12) == 0 || strstr(err, "\nmirs: error:");
      CHECKF(said, "%s printed no \"mirs: error:\" line before aborting", c->name);
      continue;
    }
    if (crashed)
      CHECKF(!crashed, "%s: child killed by signal %d (%s)", c->name, WTERMSIG(status),
             strsignal(WTERMSIG(status)));
    else if (waited)
      CHECKF(code == 0, "%s: child exit %d (%s)", c->name, code,
             code == 5   ? "later allocations broken"
             : code == 7 ? "realloc did not return NULL with EINVAL"
                         : "setup failed");
    if (want_warnings && c->warns) {
      /* A line (at the start of the text or after a newline) starting the warning. */
      bool warned = strncmp(err, "mirs: warning:", 14) == 0 || strstr(err, "\nmirs: warning:");
      CHECKF(warned, "%s printed no \"mirs: warning:\" line under MIRS_VERBOSE=1", c->name);
    }
  }

  /* The parent never did a bad free; it still works, of course. */
  CHECK(later_allocations_work());
  return test_report();
}
