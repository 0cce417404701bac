/* test_bad_free.c: every bad-input rule. free() of pointers mirs did not hand out, or
 * no longer owns, must not crash or corrupt anything, and the allocator must keep
 * working afterwards (later allocations distinct and intact).
 *
 * glibc aborts on most of these ("free(): invalid pointer", "double free detected");
 * mirs tolerates them: the free is ignored and counted, and reported by default with
 * one line on stderr, "mirs: free(): invalid pointer 0x..., <what was wrong>". Each
 * case runs in a forked child, so a crash, an abort or a hang (alarm) is counted as one
 * failure, with its signal, instead of killing the test.
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
 *   a double free of a small and of a medium block, and realloc of a freed block
 *   (NULL, errno EINVAL, one report per call): ignored, reported (every build detects
 *   double frees since issue 13).
 *   1000 frees of a static array in a loop: the reports are rate-limited, the first 100
 *   printed, then one "further error reports suppressed" line, then silence.
 *
 * The child's stderr is captured. Before each bad call the child writes "call: free(P)"
 * (or realloc) to stderr; by default (and with MIRS_VERBOSE=1) every such line must be
 * followed at once by exactly one report naming the same pointer,
 * "mirs: free(): invalid pointer P, ...", and the case must print as many reports as it
 * makes bad calls (the aligned interior case: none or one). With MIRS_VERBOSE=0 no line
 * starting "mirs:" may appear. The captured text is passed on to our stderr.
 *
 * With MIRS_ABORT_ON_ERROR=1 in the environment (read by mirs at load, inherited by the
 * forked children), every case that reports must instead end its child with SIGABRT,
 * after its report line ending "aborting (MIRS_ABORT_ON_ERROR=1)", as glibc aborts on
 * these.
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
static void (*volatile free_raw)(void *) = free; /* hide the bad frees from -Wfree-nonheap-object */

/* Says on stderr which bad call comes next, so the parent can match its report
 * (snprintf and write(2): no allocation before the call under test). */
static void announce(const char *fn, void *p) {
  char line[64];
  int n = snprintf(line, sizeof line, "call: %s(%p)\n", fn, p);
  if (write(2, line, (size_t)n) != n) _exit(4);
}

/* A bad free, announced first. */
static void free_v(void *p) {
  announce("free", p);
  free_raw(p);
}

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
  free_raw(a + 64); /* not announced: it may be a valid free */
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
  free_raw(p);
  free_v(p);
}

static void double_free_medium(void) {
  char *keep = malloc_v(100000); /* keeps the page in use */
  char *p = malloc_v(100000);
  if (!p || !keep) _exit(4);
  free_raw(p);
  free_v(p);
  free_raw(keep);
}

/* realloc of a freed block, growing (would copy and free it again) and shrinking
 * (would hand the freed block back): refused with NULL and EINVAL. */
static void realloc_freed(void) {
  char *p = malloc_v(100);
  if (!p) _exit(4);
  free_raw(p);
  errno = 0;
  void *(*volatile realloc_v)(void *, size_t) = realloc;
  announce("realloc", p);
  errno = 0;
  if (realloc_v(p, 1000) != NULL || errno != EINVAL) _exit(7);
  announce("realloc", p);
  errno = 0;
  if (realloc_v(p, 60) != NULL || errno != EINVAL) _exit(7);
}

/* A buggy loop: the same foreign pointer freed 1000 times (no announcements: the
 * reports are counted, not matched). */
static void free_static_in_a_loop(void) {
  for (int i = 0; i < 1000; i++) free_raw(static_array + 32);
}

struct bad_case {
  const char *name;
  void (*run)(void);
  int reports;      /* report lines it prints by default (-1: none or one) */
  bool loop;        /* the rate-limited loop: counted against the limit */
};

/* The rate limit (src/support/output.rs REPORT_BURST): reports printed before it applies. */
enum { REPORT_BURST = 100 };

static const struct bad_case cases[] = {
    /* Run first, before this process has allocated anything: the allocator must
     * already report on its very first call. */
    {"free of a stack address, as the process's first allocator call", free_stack, 1, false},
    {"free of a stack address", free_stack, 1, false},
    {"free of a static array", free_static, 1, false},
    {"free inside an mmap'd page", free_mmap, 1, false},
    {"free of the start of an mmap'd mapping", free_mmap_start, 1, false},
    {"free of junk-filled mmap'd memory at a 4 MiB boundary", free_mmap_segment_aligned, 1, false},
    {"free of a block from glibc's malloc", free_other_allocator, 1, false},
    {"free of p+8 of a 64-byte block", free_interior_small, 1, false},
    {"free of an interior pointer of a 1 MiB block", free_interior_large, 1, false},
    {"free of an interior pointer of a 4096-aligned block", free_interior_aligned, -1, false},
    {"double free of a 64-byte block", double_free_small, 1, false},
    {"double free of a 100000-byte block", double_free_medium, 1, false},
    {"realloc of a freed block", realloc_freed, 2, false},
    {"1000 frees of a static array in a loop", free_static_in_a_loop, REPORT_BURST, true},
};

/* Lines of `text` starting with `prefix`. */
static int count_lines(const char *text, const char *prefix) {
  int n = 0;
  size_t len = strlen(prefix);
  for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
    if (strncmp(l, prefix, len) == 0) n++;
  return n;
}

/* Every "call: F(P)" line is followed at once by "mirs: F(): invalid pointer P, " and
 * every report follows a call: one report per bad call, naming its pointer. Returns
 * the number of reports, or -1 (with `why` set) when they do not match. */
static int match_reports(const char *text, char *why, size_t whylen) {
  int reports = 0;
  const char *l = text;
  while (l && *l) {
    const char *next = strchr(l, '\n');
    next = next ? next + 1 : NULL;
    char fn[16], ptr[32];
    if (sscanf(l, "call: %15[a-z](%31[^)])", fn, ptr) == 2) {
      char want[96];
      snprintf(want, sizeof want, "mirs: %s(): invalid pointer %s, ", fn, ptr);
      if (!next || strncmp(next, want, strlen(want)) != 0) {
        snprintf(why, whylen, "no \"%s...\" line right after \"call: %s(%s)\"", want, fn, ptr);
        return -1;
      }
      reports++;
      next = strchr(next, '\n');
      next = next ? next + 1 : NULL;
    } else if (strncmp(l, "mirs:", 5) == 0) {
      snprintf(why, whylen, "a report no bad call explains: %.80s", l);
      return -1;
    }
    l = next;
  }
  return reports;
}

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
  bool silenced = verbose && strcmp(verbose, "0") == 0;
  const char *abort_env = getenv("MIRS_ABORT_ON_ERROR");
  bool want_abort = abort_env && strcmp(abort_env, "1") == 0;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct bad_case *c = &cases[i];
    if (i == 1) free(malloc_v(1)); /* from here on, the allocator has been used */
    static char err[1 << 16];
    int status = run_case(c, true, err, sizeof err);
    if (!c->loop) fputs(err, stderr);
    bool waited = status != -1, crashed = waited && WIFSIGNALED(status);
    int code = waited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    CHECKF(waited, "%s: fork/wait failed", c->name);
    if (code == 6) {
      printf("skip %s: no second allocator in this process\n", c->name);
      continue;
    }
    if (want_abort) {
      if (c->reports < 0) continue; /* the aligned interior case may free or be ignored */
      CHECKF(crashed && WTERMSIG(status) == SIGABRT,
             "%s under MIRS_ABORT_ON_ERROR=1: %s %d, want SIGABRT", c->name,
             crashed ? "killed by signal" : "exit", crashed ? WTERMSIG(status) : code);
      bool said = count_lines(err, "mirs: free(): invalid pointer 0x") +
                      count_lines(err, "mirs: realloc(): invalid pointer 0x") == 1 &&
                  strstr(err, ": aborting (MIRS_ABORT_ON_ERROR=1)\n");
      CHECKF(said, "%s did not print its report, ending \"aborting\", before aborting: %s",
             c->name, err);
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
    int said = count_lines(err, "mirs:");
    if (silenced) {
      CHECKF(said == 0, "%s printed %d \"mirs:\" lines under MIRS_VERBOSE=0", c->name, said);
      continue;
    }
    if (c->loop) {
      /* The burst, then one line saying the rest are suppressed; a refill (one
       * report per 10 s) could add one more on a very slow machine. */
      int reports = count_lines(err, "mirs: free(): invalid pointer 0x");
      int notices = count_lines(err, "mirs: further error reports suppressed");
      CHECKF(reports >= REPORT_BURST && reports <= REPORT_BURST + 1 && notices == 1 &&
                 said == reports + notices,
             "%s: %d reports, %d \"suppressed\" lines, %d lines in all; want %d, 1, %d",
             c->name, reports, notices, said, REPORT_BURST, REPORT_BURST + 1);
      fprintf(stderr, "(%s: %d reports, then %d \"suppressed\" line)\n", c->name, reports,
              notices);
      continue;
    }
    if (c->reports < 0) {
      int reports = count_lines(err, "mirs: free(): invalid pointer 0x");
      CHECKF(reports <= 1 && said == reports, "%s printed %d lines, %d reports; want at most 1",
             c->name, said, reports);
      continue;
    }
    char why[256] = "";
    int matched = match_reports(err, why, sizeof why);
    CHECKF(matched >= 0, "%s: %s", c->name, why);
    if (matched < 0) continue;
    CHECKF(matched == c->reports, "%s printed %d reports, want %d (one per bad call)",
             c->name, matched, c->reports);
  }

  /* The parent never did a bad free; it still works, of course. */
  CHECK(later_allocations_work());
  return test_report();
}
