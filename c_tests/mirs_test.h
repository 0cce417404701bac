/* mirs_test.h: shared helpers for the mirs C tests.
 *
 * - CHECK(cond): one assertion; a failure prints file:line and the condition.
 * - test_report(): prints the final "N passed, N failed" line, returns the exit code.
 * - mirs_api: the mirs_* functions of include/mirs.h (their types taken from it),
 *   resolved so that one source works both when the test is linked with libmirs.a
 *   (MIRS_TEST_LINKED defined: direct references) and when it is linked against
 *   nothing special and run under LD_PRELOAD=libmirs.so (dlsym(RTLD_DEFAULT, ...): a
 *   direct reference would not link).
 *   A function not found stays NULL; tests count that as a failure ("not running
 *   under mirs?"), which is the point of the ownership proof.
 */
#ifndef MIRS_TEST_H
#define MIRS_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The generated header users get (-I include): the tests compile against exactly it. */
#include "mirs.h"

/* glibc removed cfree's declaration (2.26) and only keeps it as a compat symbol, so
 * a new binary cannot bind to glibc's; mirs exports it. Declared here for the linked
 * build, resolved by dlsym in the preload build. */
void cfree(void *p);

/* ---- assertions ------------------------------------------------------------ */

static int test_passed, test_failed;

#define CHECK(cond) check_impl(!!(cond), #cond, __FILE__, __LINE__)
/* CHECKF: like CHECK, with a printf-style detail appended to the failure line. */
#define CHECKF(cond, ...)                                                     \
  do {                                                                        \
    if (!check_impl(!!(cond), #cond, __FILE__, __LINE__)) {                   \
      fprintf(stderr, "    detail: ");                                        \
      fprintf(stderr, __VA_ARGS__);                                           \
      fprintf(stderr, "\n");                                                  \
    }                                                                         \
  } while (0)

static inline bool check_impl(bool ok, const char *what, const char *file, int line) {
  if (ok) {
    test_passed++;
  } else {
    test_failed++;
    fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what);
  }
  return ok;
}

/* Prints the one summary line every test program ends with; the runner parses it. */
static inline int test_report(void) {
  fflush(stderr);
  printf("%d passed, %d failed\n", test_passed, test_failed);
  fflush(stdout);
  return test_failed == 0 ? 0 : 1;
}

/* ---- the mirs_* API, resolved at run time when not linked ---------------------- */

/* Each member has the type include/mirs.h gives its function. */
#define MIRS_TEST_FN(name) __typeof__(mirs_##name) *name
struct mirs_api {
  MIRS_TEST_FN(malloc);
  MIRS_TEST_FN(free);
  MIRS_TEST_FN(calloc);
  MIRS_TEST_FN(realloc);
  MIRS_TEST_FN(posix_memalign);
  MIRS_TEST_FN(aligned_alloc);
  MIRS_TEST_FN(usable_size);
  MIRS_TEST_FN(owns);
  MIRS_TEST_FN(collect);
  MIRS_TEST_FN(stats_print);
  MIRS_TEST_FN(version);
  __typeof__(cfree) *cfree;
};
#undef MIRS_TEST_FN

#ifdef MIRS_TEST_LINKED
#define MIRS_TEST_SYM(name) ((void *)&name)
#else
#define MIRS_TEST_SYM(name) dlsym(RTLD_DEFAULT, #name)
#endif

/* Fills `api`; returns true when every function was found. */
static inline bool mirs_api_load(struct mirs_api *api) {
  *(void **)&api->malloc = MIRS_TEST_SYM(mirs_malloc);
  *(void **)&api->free = MIRS_TEST_SYM(mirs_free);
  *(void **)&api->calloc = MIRS_TEST_SYM(mirs_calloc);
  *(void **)&api->realloc = MIRS_TEST_SYM(mirs_realloc);
  *(void **)&api->posix_memalign = MIRS_TEST_SYM(mirs_posix_memalign);
  *(void **)&api->aligned_alloc = MIRS_TEST_SYM(mirs_aligned_alloc);
  *(void **)&api->usable_size = MIRS_TEST_SYM(mirs_usable_size);
  *(void **)&api->owns = MIRS_TEST_SYM(mirs_owns);
  *(void **)&api->collect = MIRS_TEST_SYM(mirs_collect);
  *(void **)&api->stats_print = MIRS_TEST_SYM(mirs_stats_print);
  *(void **)&api->version = MIRS_TEST_SYM(mirs_version);
  *(void **)&api->cfree = MIRS_TEST_SYM(cfree);
  return api->malloc && api->free && api->calloc && api->realloc && api->posix_memalign &&
         api->aligned_alloc && api->usable_size && api->owns && api->collect &&
         api->stats_print && api->version && api->cfree;
}

/* ---- small utilities ---------------------------------------------------------- */

/* splitmix64: a tiny deterministic PRNG, one state word per thread. */
static inline uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static inline bool is_aligned(const void *p, size_t align) {
  return ((uintptr_t)p & (align - 1)) == 0;
}

#endif /* MIRS_TEST_H */
