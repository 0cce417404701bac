/* ctor_lib.c: a shared library whose constructor allocates before main.
 *
 * Loaded by test_ctor (linked with -lctor_lib, put in LD_PRELOAD, or dlopen'ed).
 * Its constructor may run before mirs has initialised itself (for a linked
 * libmirs.a, the executable's own constructors run after this library's), so the
 * first malloc of the process can come from here. The constructor mallocs and
 * frees, keeps one block live for main to free, and starts a thread that allocates
 * while the rest of start-up (or main) proceeds; main joins it via ctor_lib_join().
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 0 = fine; otherwise the first problem found (see ctor_lib_status). */
static int status = -1; /* -1: the constructor never ran */
static void *kept_block;
static pthread_t worker;
static int worker_started;

static void *worker_main(void *arg) {
  (void)arg;
  void *p[100];
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 100; i++) {
      size_t size = (size_t)(i * 41 + round) % 3000 + 1;
      p[i] = malloc(size);
      if (!p[i]) return (void *)1;
      memset(p[i], i, size);
    }
    for (int i = 0; i < 100; i++) {
      if (((unsigned char *)p[i])[0] != (unsigned char)i) return (void *)2;
      free(p[i]);
    }
  }
  /* A block outliving this thread, freed by main (through ctor_lib_join's caller). */
  return malloc(777);
}

__attribute__((constructor)) static void ctor_lib_init(void) {
  char *p = malloc(100);
  if (!p) { status = 1; return; }
  strcpy(p, "allocated in a library constructor");
  char *q = realloc(p, 100000);
  if (!q || strcmp(q, "allocated in a library constructor") != 0) { status = 2; return; }
  free(q);
  free(calloc(10, 10));
  kept_block = malloc(4096);
  if (!kept_block) { status = 3; return; }
  memset(kept_block, 0x42, 4096);
  if (pthread_create(&worker, NULL, worker_main, NULL) != 0) { status = 4; return; }
  worker_started = 1;
  status = 0;
}

/* -1: constructor did not run; 1..4: a step of the constructor failed. */
int ctor_lib_status(void) { return status; }

/* The block the constructor kept; the caller checks and frees it. */
void *ctor_lib_kept_block(void) { return kept_block; }

/* Joins the constructor's thread. Returns the block it left (to be freed by the
 * caller), or NULL if it failed. */
void *ctor_lib_join(void) {
  if (!worker_started) return NULL;
  void *res = NULL;
  if (pthread_join(worker, &res) != 0) return NULL;
  worker_started = 0;
  return (uintptr_t)res <= 2 ? NULL : res;
}
