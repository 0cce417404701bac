/* Heap-corruption patterns against the free lists (issue 20): a 1-16 byte
 * overflow from a live block into the free block just above it, and a forged
 * link written into a freed block (use after free) pointing at a static
 * buffer, the stack, or another live block.
 *
 * Each case runs in a child process; after the corruption the child makes
 * 300 mallocs of the same size and checks every pointer: 16-byte aligned,
 * not the forged target, not inside the live neighbour, not handed out twice
 * while live. The parent classifies the case from the child's end:
 *   crash     the child died of a signal
 *   bad       malloc returned a pointer it did not carve (checks above)
 *   detected  no bad pointer, and the allocator reported the damage
 *             ("corrupted free list" on stderr)
 *   silent    no bad pointer and no report (the damage went unnoticed)
 *
 * Usage: test_overflow [--table]   (--table prints one line per case and
 * exits 0; without it, any crash or bad block fails the test, and at least
 * one case must be detected.)
 */
#define _GNU_SOURCE
/* The use after free and the overflow are the point. */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Warray-bounds"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE 48
#define LIVE 64
#define PROBES 300

static char target_static[256] __attribute__((aligned(64)));

/* Returns 1 if a bad pointer was seen. */
static int probe(void *forbidden, char *live_low, void **live, int nlive)
{
  void *got[PROBES];
  int bad = 0;
  for (int i = 0; i < PROBES; i++) {
    char *p = malloc(SIZE);
    got[i] = p;
    if (!p)
      continue;
    if ((uintptr_t)p % 16 != 0 || p == forbidden || (p > live_low - SIZE && p < live_low + SIZE))
      bad = 1;
    for (int j = 0; j < nlive && !bad; j++)
      if (live[j] == p)
        bad = 1;
    for (int j = 0; j < i && !bad; j++)
      if (got[j] == p)
        bad = 1;
    if (!bad)
      memset(p, 0x5a, SIZE); /* use it: a block inside another would show */
  }
  return bad;
}

/* Find two live blocks, low and high = low + SIZE, among LIVE of them. */
static int adjacent(void **live, int *lo, int *hi)
{
  for (int i = 0; i < LIVE; i++)
    for (int j = 0; j < LIVE; j++)
      if ((char *)live[j] == (char *)live[i] + SIZE) {
        *lo = i;
        *hi = j;
        return 1;
      }
  return 0;
}

/* kind 0: overflow of `len` bytes of `byte`; kind 1/2/3: forged link to a
 * static buffer / the stack / another live block. */
static int child(int kind, int len, int byte)
{
  char stack_buf[256] __attribute__((aligned(64)));
  void *live[LIVE];
  for (int i = 0; i < LIVE; i++)
    live[i] = malloc(SIZE);
  int lo, hi;
  if (!adjacent(live, &lo, &hi))
    return 3;
  char *low = live[lo], *high = live[hi];
  live[hi] = live[LIVE - 1];
  free(high);
  void *forbidden = NULL;
  if (kind == 0) {
    memset(low + SIZE, byte, len); /* the bug: past the end of `low` */
  } else {
    void *t = kind == 1 ? (void *)target_static : kind == 2 ? (void *)stack_buf : live[(lo + 1) % (LIVE - 1)];
    forbidden = t;
    memcpy(high, &t, sizeof t); /* the bug: a write after free */
  }
  int bad = probe(forbidden, low, live, LIVE - 1);
  __asm__ volatile("" : : "r"(stack_buf) : "memory");
  return bad;
}

int main(int argc, char **argv)
{
  int table = argc > 1 && strcmp(argv[1], "--table") == 0;
  struct { int kind, len, byte; const char *name; } cases[32];
  int n = 0;
  int lens[] = {1, 2, 4, 8, 9, 12, 16};
  int bytes[] = {0x00, 0x41, 0xff};
  for (unsigned l = 0; l < sizeof lens / sizeof *lens; l++)
    for (unsigned b = 0; b < sizeof bytes / sizeof *bytes; b++)
      cases[n++] = (typeof(cases[0])){0, lens[l], bytes[b], "overflow"};
  cases[n++] = (typeof(cases[0])){1, 0, 0, "forged link -> static buffer"};
  cases[n++] = (typeof(cases[0])){2, 0, 0, "forged link -> stack"};
  cases[n++] = (typeof(cases[0])){3, 0, 0, "forged link -> live block"};

  int crash = 0, bad = 0, detected = 0, silent = 0;
  for (int i = 0; i < n; i++) {
    int fds[2];
    if (pipe(fds) != 0)
      return 2;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      _exit(child(cases[i].kind, cases[i].len, cases[i].byte));
    }
    close(fds[1]);
    char err[4096];
    size_t got = 0;
    ssize_t r;
    while ((r = read(fds[0], err + got, sizeof err - 1 - got)) > 0)
      got += (size_t)r;
    err[got] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    const char *what;
    if (WIFSIGNALED(status)) {
      what = "crash";
      crash++;
    } else if (WEXITSTATUS(status) == 1) {
      what = "bad block";
      bad++;
    } else if (WEXITSTATUS(status) != 0) {
      what = "setup failed";
      bad++;
    } else if (strstr(err, "corrupted free list")) {
      what = "detected";
      detected++;
    } else {
      what = "silent";
      silent++;
    }
    if (table || strcmp(what, "detected") != 0) {
      if (cases[i].kind == 0)
        printf("%-30s %2d bytes of 0x%02x: %s\n", cases[i].name, cases[i].len, cases[i].byte, what);
      else
        printf("%-30s              : %s\n", cases[i].name, what);
    }
  }
  printf("test_overflow: %d cases: %d crash, %d bad block, %d detected, %d silent\n", n, crash, bad, detected,
         silent);
  if (table)
    return 0;
  int ok = crash == 0 && bad == 0 && detected > 0;
  printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
  return ok ? 0 : 1;
}
