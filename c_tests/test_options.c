/* Options and the statistics report, driven by c_tests/options_stats.sh.
 *
 * test_options STEP...: runs the steps in order:
 *   set OPT VALUE  mirs_option_set(OPT, VALUE); prints "set OPT VALUE -> RESULT"
 *   get            prints every option: "opt N = VALUE"
 *   invalid N      N frees of a pointer mirs does not own
 *   purge          frees 2 MiB of 64 KiB blocks, waits 100 ms, collects;
 *                  prints "purged BYTES" from the JSON (the runner compares)
 *   live           allocates blocks of many sizes (small to huge), and prints
 *                  three JSON reports (before, with them live, after freeing)
 *                  and "allocated BYTES" (the sum of their usable sizes)
 *   huge           allocates and writes an 8 MiB block; prints "hugepage
 *                  advice N": 1 when the mapping holding it carries the
 *                  MADV_HUGEPAGE flag ("hg" in /proc/self/smaps' VmFlags)
 * Linked with libmirs.a. Output goes to stdout with write(2) after the work
 * so that stdio's own buffer is allocated before the first report.
 */
#include <mirs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char json[3][1 << 16];

static long purged_bytes(void) {
  static char buf[1 << 16];
  size_t n = mirs_stats_json(buf, sizeof buf);
  if (n >= sizeof buf) return -1;
  const char *p = strstr(buf, "\"purged_bytes\": ");
  return p ? atol(p + strlen("\"purged_bytes\": ")) : -1;
}

static void live(void) {
  enum { N = 64 };
  static void *blocks[N];
  size_t allocated = 0;
  printf("live: start\n");
  fflush(stdout);
  size_t need = mirs_stats_json(NULL, 0);
  if (need == 0 || need >= sizeof json[0]) {
    printf("mirs_stats_json(NULL, 0) = %zu\n", need);
    exit(1);
  }
  mirs_stats_json(json[0], sizeof json[0]);
  for (int i = 0; i < N; i++) {
    /* 8 B .. 8 MiB: small, medium, large (singleton) and huge blocks. */
    size_t size = (size_t)8 << (i % 21);
    blocks[i] = malloc(size + (size_t)i);
    if (!blocks[i]) exit(2);
    allocated += mirs_usable_size(blocks[i]);
  }
  mirs_stats_json(json[1], sizeof json[1]);
  for (int i = 0; i < N; i++) free(blocks[i]);
  mirs_stats_json(json[2], sizeof json[2]);
  for (int i = 0; i < 3; i++) printf("json %s", json[i]);
  printf("allocated %zu\n", allocated);
}

/* Does the mapping holding `p` carry the MADV_HUGEPAGE flag? -1: not found. */
static int hugepage_flag(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  static char line[4096];
  int in = 0, found = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
    } else if (in && !strncmp(line, "VmFlags:", 8)) {
      found = strstr(line, " hg") != NULL;
      break;
    }
  }
  fclose(f);
  return found;
}

static void huge(void) {
  size_t size = (size_t)8 << 20;
  char *p = malloc(size);
  if (!p) exit(2);
  memset(p, 1, size);
  int flag = hugepage_flag(p + size / 2);
  free(p);
  printf("hugepage advice %d\n", flag);
}

static void purge(void) {
  enum { N = 32 }; /* 2 MiB: below the dirty-memory floor (4 MiB) purged at once */
  static void *blocks[N];
  for (int i = 0; i < N; i++) {
    blocks[i] = malloc(64 << 10);
    if (!blocks[i]) exit(2);
    memset(blocks[i], 1, 64 << 10);
  }
  for (int i = 0; i < N; i++) free(blocks[i]);
  mirs_collect(false);
  struct timespec ts = {0, 100 * 1000 * 1000};
  nanosleep(&ts, NULL);
  mirs_collect(false);
  printf("purged %ld\n", purged_bytes());
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "set") && i + 2 < argc) {
      int opt = atoi(argv[i + 1]);
      long value = atol(argv[i + 2]);
      printf("set %d %ld -> %d\n", opt, value, mirs_option_set(opt, value));
      i += 2;
    } else if (!strcmp(argv[i], "get")) {
      for (int o = 0; o <= MIRS_OPTION_HUGE_PAGES + 1; o++)
        printf("opt %d = %ld\n", o, mirs_option_get(o));
    } else if (!strcmp(argv[i], "invalid") && i + 1 < argc) {
      int n = atoi(argv[++i]);
      static long foreign[4];
      void *volatile p = &foreign[1];
      fflush(stdout);
      for (int k = 0; k < n; k++) free(p);
      printf("invalid frees done\n");
    } else if (!strcmp(argv[i], "purge")) {
      purge();
    } else if (!strcmp(argv[i], "live")) {
      live();
    } else if (!strcmp(argv[i], "huge")) {
      huge();
    } else {
      printf("unknown step %s\n", argv[i]);
      return 1;
    }
  }
  fflush(stdout);
  return 0;
}
