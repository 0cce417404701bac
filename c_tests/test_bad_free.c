/* test_bad_free.c: free() of pointers mirs did not hand out must not crash, and the
 * allocator must keep working afterwards.
 *
 * glibc aborts on all of these ("free(): invalid pointer"); mirs intentionally
 * tolerates them (ignores the free, with a warning under MIRS_VERBOSE=1). Each case
 * runs in a forked child, so a crash or abort is counted as one failure, with its
 * signal, instead of killing the test.
 *
 * With MIRS_VERBOSE=1 in the environment, the child's stderr is captured and the
 * frees of foreign memory (stack, static, mmap) must each print a line starting
 * "mirs: warning:". The captured text is passed on to our stderr.
 */
#include "mirs_test.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void *(*volatile malloc_v)(size_t) = malloc;
static void (*volatile free_v)(void *) = free; /* hide the bad frees from -Wfree-nonheap-object */

static char static_array[256];

/* After a bad free: many blocks of assorted sizes, all distinct and intact. */
static bool later_allocations_work(void) {
  enum { N = 2000 };
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
    free(p[i]);
  }
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

/* Interior pointers of a large and of an aligned block. */
static void free_interior_large(void) {
  char *p = malloc_v(1u << 20);
  if (!p) _exit(4);
  memset(p, 2, 1u << 20);
  free_v(p + 4096 + 16);
  char *a = aligned_alloc(4096, 8192);
  if (!a) _exit(4);
  free_v(a + 64);
}

struct bad_case {
  const char *name;
  void (*run)(void);
  bool foreign; /* memory mirs never managed: a verbose warning is required */
};

static const struct bad_case cases[] = {
    /* Run first, before this process has allocated anything: the allocator must
     * already honour MIRS_VERBOSE on its very first call. */
    {"a stack address, as the process's first allocator call", free_stack, true},
    {"a stack address", free_stack, true},
    {"a static array", free_static, true},
    {"an mmap'd page", free_mmap, true},
    {"junk-filled mmap'd memory at a 4 MiB boundary", free_mmap_segment_aligned, true},
    {"p+8 of a 64-byte block", free_interior_small, false},
    {"interior pointers of a 1 MiB and an aligned block", free_interior_large, false},
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

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct bad_case *c = &cases[i];
    if (i == 1) free(malloc_v(1)); /* from here on, the allocator has been used */
    static char err[1 << 16];
    int status = run_case(c, want_warnings, err, sizeof err);
    if (want_warnings) fputs(err, stderr);
    bool waited = status != -1, crashed = waited && WIFSIGNALED(status);
    int code = waited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    CHECKF(waited, "%s: fork/wait failed", c->name);
    if (crashed)
      CHECKF(!crashed, "free of %s: child killed by signal %d (%s)", c->name,
             WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (waited)
      CHECKF(code == 0, "free of %s: child exit %d (%s)", c->name, code,
             code == 5 ? "later allocations broken" : "setup failed");
    if (want_warnings && c->foreign) {
      /* A line (at the start of the text or after a newline) starting the warning. */
      bool warned = strncmp(err, "mirs: warning:", 14) == 0 || strstr(err, "\nmirs: warning:");
      CHECKF(warned, "free of %s printed no \"mirs: warning:\" line under MIRS_VERBOSE=1",
             c->name);
    }
  }

  /* The parent never did a bad free; it still works, of course. */
  CHECK(later_allocations_work());
  return test_report();
}
