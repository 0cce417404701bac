/* test_fork.c: fork from a multi-threaded parent whose threads are busy allocating.
 *
 * An allocator lock held by another thread at the moment of fork stays locked forever
 * in the child (only the forking thread exists there), unless the allocator resets it
 * around fork. So: BUSY_THREADS threads malloc/free in a loop while the main thread
 * forks FORKS times; each child mallocs and frees (small, large, and blocks inherited
 * from the parent), creates a thread that does the same, and exits 0. The parent
 * checks each child's status; a child deadlocks into its alarm (SIGALRM) or crashes,
 * either way a failure.
 *
 * The child writes only with write(2): stdio in a forked child of a threaded process
 * is best avoided.
 */
#include "mirs_test.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { BUSY_THREADS = 4, FORKS = 12, INHERITED = 64 };

static atomic_bool stop;
static atomic_long busy_ops;

/* Parent threads: keep the allocator's slow paths (and any locks) busy. */
static void *busy_main(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg;
  void *keep[64] = {0};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    uint64_t r = rng_next(&rng);
    size_t size = (r & 15) == 0 ? (size_t)(r >> 44) : 8 + (r >> 54); /* up to 1 MiB, mostly small */
    unsigned i = (r >> 4) % 64;
    free(keep[i]);
    keep[i] = malloc(size);
    if (keep[i]) memset(keep[i], 0x33, size < 64 ? size : 64);
    atomic_fetch_add_explicit(&busy_ops, 1, memory_order_relaxed);
  }
  for (int i = 0; i < 64; i++) free(keep[i]);
  return NULL;
}

static void child_fail(const char *msg) {
  (void)!write(2, msg, strlen(msg));
  _exit(3);
}

/* Allocation work a child does, both on its main thread and on a new thread. */
static bool child_work(unsigned seed) {
  enum { N = 200 };
  unsigned char *p[N];
  for (int i = 0; i < N; i++) {
    size_t size = (i % 50 == 0) ? (size_t)(i + 1) << 14 : (size_t)(i * 37 + seed) % 2000 + 1;
    p[i] = malloc(size);
    if (!p[i]) return false;
    memset(p[i], (int)(i + seed), size);
    p[i] = realloc(p[i], size + 100);
    if (!p[i] || p[i][size - 1] != (unsigned char)(i + seed)) return false;
  }
  for (int i = 0; i < N; i++) free(p[i]);
  void *big = malloc(8u << 20);
  if (!big) return false;
  memset(big, 1, 8u << 20);
  free(big);
  return true;
}

static void *child_thread_main(void *arg) {
  return child_work((unsigned)(uintptr_t)arg) ? (void *)1 : NULL;
}

static void run_child(unsigned char **inherited) {
  alarm(10); /* deadlock -> SIGALRM -> the parent sees a signal */
  /* Blocks allocated by the parent (some by threads that do not exist here). */
  for (int i = 0; i < INHERITED; i++) {
    for (size_t j = 0; j < 100; j++)
      if (inherited[i][j] != (unsigned char)i) child_fail("child: inherited block changed\n");
    free(inherited[i]);
  }
  if (!child_work(7)) child_fail("child: malloc work failed\n");
  pthread_t t;
  void *res = NULL;
  if (pthread_create(&t, NULL, child_thread_main, (void *)(uintptr_t)9) != 0)
    child_fail("child: pthread_create failed\n");
  if (pthread_join(t, &res) != 0 || res == NULL) child_fail("child: thread work failed\n");
  _exit(0);
}

int main(void) {
  alarm(120);
  pthread_t busy[BUSY_THREADS];
  for (int i = 0; i < BUSY_THREADS; i++)
    CHECK(pthread_create(&busy[i], NULL, busy_main, (void *)(uintptr_t)(i + 1)) == 0);

  for (int f = 0; f < FORKS; f++) {
    /* Let the busy threads run into the middle of something. */
    struct timespec ts = {0, 2000000L * (f % 4)};
    nanosleep(&ts, NULL);

    unsigned char *inherited[INHERITED];
    for (int i = 0; i < INHERITED; i++) {
      inherited[i] = malloc(100 + (size_t)i * 997);
      if (inherited[i]) memset(inherited[i], i, 100);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECKF(pid >= 0, "fork %d failed", f);
    if (pid == 0) run_child(inherited);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    bool child_crashed = WIFSIGNALED(status);
    if (child_crashed)
      CHECKF(!child_crashed, "fork %d: child killed by signal %d (%s)", f, WTERMSIG(status),
             WTERMSIG(status) == SIGALRM ? "deadlock: its 10 s alarm fired" : "crash");
    else
      CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %d: child status %#x", f, status);
    /* The parent's copies are unaffected by the child. */
    bool ok = true;
    for (int i = 0; i < INHERITED; i++) {
      ok &= inherited[i] && inherited[i][99] == (unsigned char)i;
      free(inherited[i]);
    }
    CHECK(ok);
  }

  atomic_store(&stop, true);
  for (int i = 0; i < BUSY_THREADS; i++) CHECK(pthread_join(busy[i], NULL) == 0);
  CHECKF(atomic_load(&busy_ops) > 0, "busy threads never ran");
  return test_report();
}
