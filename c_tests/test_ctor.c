/* test_ctor.c: allocation before main.
 *
 * - ctor_lib.so's constructor mallocs/frees, keeps a block and starts a thread
 *   (see ctor_lib.c). The library reaches us in one of three ways:
 *     built with -DCTOR_LINKED: linked with -lctor_lib (direct calls);
 *     otherwise: already loaded via LD_PRELOAD (found with dlsym), or, when
 *     CTOR_LIB_PATH is set, dlopen'ed here (its constructor runs inside dlopen).
 * - This program's own constructor starts a thread before main that allocates;
 *   main joins it.
 * Blocks cross phases: allocated in constructors or by their threads, freed in main.
 */
#include "mirs_test.h"

#include <malloc.h>
#include <pthread.h>
#include <string.h>

#ifdef CTOR_LINKED
int ctor_lib_status(void);
void *ctor_lib_kept_block(void);
void *ctor_lib_join(void);
#endif

static pthread_t early_thread;
static int early_thread_created = -1;
static void *early_block; /* malloc'ed by this program's constructor */

static void *early_main(void *arg) {
  (void)arg;
  char *keep = NULL;
  for (int i = 0; i < 5000; i++) {
    char *p = malloc((size_t)(i % 500) + 1);
    if (!p) return NULL;
    p[0] = (char)i;
    if (i % 100 == 0) {
      free(keep);
      keep = p; /* survives to main */
    } else {
      free(p);
    }
  }
  return keep;
}

__attribute__((constructor)) static void early_init(void) {
  early_block = malloc(200);
  if (early_block) memset(early_block, 0x17, 200);
  early_thread_created = pthread_create(&early_thread, NULL, early_main, NULL);
}

int main(void) {
  struct mirs_api mirs;
  bool have_mirs = mirs_api_load(&mirs);
  CHECKF(have_mirs, "mirs_* functions not found: not running under mirs?");

  /* This program's constructor and its thread. */
  CHECK(early_block != NULL);
  if (early_block) {
    unsigned char *b = early_block;
    CHECK(b[0] == 0x17 && b[199] == 0x17);
    if (have_mirs) CHECK(mirs.owns(early_block));
    free(early_block);
  }
  CHECKF(early_thread_created == 0, "pthread_create in constructor -> %d", early_thread_created);
  if (early_thread_created == 0) {
    void *res = NULL;
    CHECK(pthread_join(early_thread, &res) == 0);
    CHECKF(res != NULL, "the thread started before main failed to allocate");
    if (res && have_mirs) CHECK(mirs.owns(res));
    free(res);
  }

  /* The library's constructor. */
  int (*lib_status)(void);
  void *(*lib_kept_block)(void);
  void *(*lib_join)(void);
#ifdef CTOR_LINKED
  lib_status = ctor_lib_status;
  lib_kept_block = ctor_lib_kept_block;
  lib_join = ctor_lib_join;
#else
  void *handle = RTLD_DEFAULT;
  const char *path = getenv("CTOR_LIB_PATH");
  if (path) {
    handle = dlopen(path, RTLD_NOW);
    CHECKF(handle != NULL, "dlopen(%s): %s", path, dlerror());
    if (!handle) return test_report();
  }
  *(void **)&lib_status = dlsym(handle, "ctor_lib_status");
  *(void **)&lib_kept_block = dlsym(handle, "ctor_lib_kept_block");
  *(void **)&lib_join = dlsym(handle, "ctor_lib_join");
  CHECKF(lib_status && lib_kept_block && lib_join,
         "ctor_lib not loaded (set LD_PRELOAD or CTOR_LIB_PATH)");
  if (!(lib_status && lib_kept_block && lib_join)) return test_report();
#endif
  int st = lib_status();
  CHECKF(st == 0, "ctor_lib constructor status %d", st);
  unsigned char *kept = lib_kept_block();
  CHECK(kept != NULL);
  if (kept) {
    CHECK(kept[0] == 0x42 && kept[4095] == 0x42);
    CHECK(malloc_usable_size(kept) >= 4096);
    if (have_mirs) CHECK(mirs.owns(kept));
    free(kept);
  }
  void *left = lib_join();
  CHECKF(left != NULL, "ctor_lib's thread failed");
  if (left && have_mirs) CHECK(mirs.owns(left));
  free(left);

  /* Allocation still fine afterwards. */
  void *p = malloc(12345);
  CHECK(p != NULL);
  free(p);
  return test_report();
}
