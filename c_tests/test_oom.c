/* test_oom.c: out of memory as a C program sees it. The address space is capped with
 * setrlimit(RLIMIT_AS) a little above what the process uses, so mmap really fails;
 * then every entry point must return NULL with errno ENOMEM (posix_memalign: the
 * ENOMEM result and errno ENOMEM as glibc, *memptr untouched), a failed realloc must keep the old
 * block, live blocks stay intact, and once blocks are freed (or the cap is lifted)
 * allocation succeeds again. (The Rust tests in src/tests/oom.rs inject the same
 * failures at the platform layer, including the very first allocation.)
 */
#include "mirs_test.h"

#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/resource.h>

static void *(*volatile malloc_v)(size_t) = malloc;
/* A failed realloc keeps the block: hidden from -Wuse-after-free. */
static void *(*volatile realloc_v)(void *, size_t) = realloc;

static size_t vm_size(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  size_t kib = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %zu kB", &kib) == 1) break;
  if (f) fclose(f);
  return kib * 1024;
}

#define EXPECT_ENOMEM(call)                                                  \
  do {                                                                       \
    errno = 0;                                                               \
    void *r_ = (call);                                                       \
    CHECKF(r_ == NULL && errno == ENOMEM, "%s = %p, errno %d under the cap", \
           #call, r_, errno);                                                \
    if (r_) free(r_);                                                        \
  } while (0)

enum { MAX_BLOCKS = 1 << 20 };
static char *blocks[MAX_BLOCKS];
static size_t sizes[MAX_BLOCKS];
static int nblocks;

/* Allocate `size`-byte blocks until malloc fails (ENOMEM); returns how many. */
static int exhaust(size_t size) {
  int n = 0;
  while (nblocks < MAX_BLOCKS) {
    errno = 0;
    char *p = malloc_v(size);
    if (!p) {
      CHECKF(errno == ENOMEM, "malloc(%zu) failed with errno %d", size, errno);
      return n;
    }
    memset(p, (int)(nblocks & 0xff), size);
    blocks[nblocks] = p;
    sizes[nblocks++] = size;
    n++;
  }
  CHECKF(false, "malloc(%zu) never failed under the cap", size);
  return n;
}

static bool blocks_intact(void) {
  for (int i = 0; i < nblocks; i++)
    for (size_t j = 0; j < sizes[i]; j += 61)
      if (blocks[i][j] != (char)(i & 0xff)) return false;
  return true;
}

int main(void) {
  struct mirs_api api;
  CHECK(mirs_api_load(&api));
  free(malloc_v(16));
  char *live = malloc_v(300);
  memset(live, 0x5a, 300);

  struct rlimit old;
  CHECK(getrlimit(RLIMIT_AS, &old) == 0);
  struct rlimit cap = old;
  cap.rlim_cur = vm_size() + ((size_t)48 << 20);
  if (setrlimit(RLIMIT_AS, &cap) != 0) {
    CHECKF(false, "setrlimit(RLIMIT_AS) failed: %s", strerror(errno));
    return test_report();
  }

  /* Fill the address space: large blocks, then medium and small ones. */
  int big = exhaust((size_t)1 << 20);
  int mid = exhaust(50000);
  int small = exhaust(48);
  CHECKF(big > 4 && small > 0, "blocks before the cap was reached: %d x 1 MiB, %d x 50000, %d x 48",
         big, mid, small);

  EXPECT_ENOMEM(malloc_v(48));
  EXPECT_ENOMEM(malloc_v(8u << 20));
  EXPECT_ENOMEM(calloc(1, 8u << 20));
  EXPECT_ENOMEM(calloc(1000, 1000));
  EXPECT_ENOMEM(aligned_alloc((size_t)1 << 21, (size_t)5 << 20));
  /* 3 MiB, not a few hundred KiB: blocks above 128 KiB are singletons in
   * chunks of their own, whose leftover slices (less than 1 MiB each here)
   * still have room for a small singleton after the pages ran out. */
  EXPECT_ENOMEM(memalign(4096, 3u << 20));
  EXPECT_ENOMEM(valloc(3u << 20));
  EXPECT_ENOMEM(pvalloc(3u << 20));
  EXPECT_ENOMEM(reallocarray(NULL, 1000, 3000));
  EXPECT_ENOMEM(api.malloc(8u << 20));
  EXPECT_ENOMEM(api.calloc(1, 8u << 20));
  EXPECT_ENOMEM(api.aligned_alloc(4096, 3u << 20));
  void *out = (void *)0x1234;
  errno = 77;
  /* Through a volatile pointer: GCC's model of the posix_memalign builtin clobbers only
   * *memptr, so it would fold the errno read below to 77. */
  int (*volatile posix_memalign_v)(void **, size_t, size_t) = posix_memalign;
  int rc = posix_memalign_v(&out, (size_t)1 << 20, (size_t)3 << 20);
  CHECKF(rc == ENOMEM && out == (void *)0x1234 && errno == ENOMEM,
         "posix_memalign under the cap: rc %d, out %p, errno %d", rc, out, errno);
  errno = 0;
  char *r = realloc_v(live, (size_t)6 << 20);
  CHECKF(r == NULL && errno == ENOMEM, "realloc grow under the cap: %p errno %d", (void *)r, errno);
  bool kept = true;
  for (int i = 0; i < 300; i++) kept &= live[i] == 0x5a;
  CHECK(kept);
  CHECK(blocks_intact());

  /* Free the large blocks: memory for a large allocation is back, under the cap. */
  for (int i = 0; i < big; i++) free(blocks[i]);
  api.collect(true);
  char *again = malloc_v((size_t)4 << 20);
  CHECKF(again != NULL, "malloc(4 MiB) after freeing %d MiB under the cap", big);
  if (again) memset(again, 1, (size_t)4 << 20);
  free(again);

  /* Lift the cap: everything works, the rest is intact and freed. */
  CHECK(setrlimit(RLIMIT_AS, &old) == 0);
  char *huge = malloc_v((size_t)64 << 20);
  CHECK(huge != NULL);
  if (huge) memset(huge, 2, (size_t)64 << 20);
  free(huge);
  r = realloc_v(live, (size_t)6 << 20);
  CHECK(r != NULL && r[0] == 0x5a && r[299] == 0x5a);
  free(r);
  for (int i = big; i < nblocks; i++) {
    for (size_t j = 0; j < sizes[i]; j += 61)
      if (blocks[i][j] != (char)(i & 0xff)) {
        CHECKF(false, "block %d changed", i);
        break;
      }
    free(blocks[i]);
  }
  printf("under a %zu MiB address-space cap: %d x 1 MiB, %d x 50000, %d x 48 bytes fitted\n",
         (size_t)(cap.rlim_cur >> 20), big, mid, small);
  return test_report();
}
