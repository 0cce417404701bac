/* test_realloc_grow.c: realloc grows big blocks without copying them (issue 20).
 *
 * A buffer grown from 4 KiB to 64 MiB a quarter at a time (size += size / 4: 44
 * reallocs a round), 10 rounds, as a string builder does. Each new part is filled with
 * its step's byte and the whole buffer is checked after every round, so a remap that
 * lost or shifted data fails. Moves (realloc returning another address) are counted:
 * before issue 20 mirs moved the buffer 43 times in 44 (copying it each time); now
 * singleton spans grow over the free slices after them and huge blocks are remapped
 * (mremap, in place or their pages moved), so only the size-class steps below 128 KiB
 * and a few huge moves remain: at most 24 a round (glibc: 10).
 *
 * After the growth, the chunk map must know the block at its new extent: mirs_owns and
 * mirs_usable_size see it, an interior pointer deep in it (past the first 4 MiB) is
 * refused by free (counted as an invalid free, no crash), it is freed normally, and an
 * over-aligned huge block keeps its alignment when it grows. Shrinking a huge block
 * keeps its data too.
 */
#include "mirs_test.h"
#include "bench/realloc_grow.h"

#include <string.h>

static struct mirs_api api;
static void (*volatile free_v)(void *) = free;

/* One round of realloc_grow.h, every byte checked; returns the moves, or -1 when a
 * realloc failed or data was lost. */
static int grow_checked(void) {
  struct grow_round g = grow_round(1);
  if (!g.buf) return -1;
  CHECKF(api.owns(g.buf) && api.usable_size(g.buf) >= g.size, "grown block: owns %d, usable %zu",
         api.owns(g.buf), api.usable_size(g.buf));
  free(g.buf);
  return g.bad != SIZE_MAX ? -1 : g.moves;
}

int main(void) {
  CHECK(mirs_api_load(&api));

  int total = 0;
  for (int r = 0; r < 10; r++) {
    int moves = grow_checked();
    CHECKF(moves >= 0, "round %d: realloc failed or the data changed", r);
    CHECKF(moves <= 24, "round %d: %d moves of 44 reallocs, want at most 24", r, moves);
    total += moves < 0 ? 0 : moves;
  }
  printf("realloc growth 4 KiB -> 64 MiB: %d moves in 440 reallocs\n", total);

  /* The chunk map after growth: a pointer 40 MiB into a grown block is interior. */
  unsigned char *p = malloc(6 << 20);
  CHECK(p != NULL);
  memset(p, 0x5a, 6 << 20);
  unsigned char *q = realloc_v(p, 100 << 20);
  CHECK(q != NULL);
  memset(q + (6 << 20), 0xa5, (100 - 6) << 20);
  CHECK(api.owns(q) && !api.owns(q + (40 << 20)) && api.usable_size(q + (40 << 20)) == 0);
  free_v(q + (40 << 20)); /* refused and reported, never a crash */
  CHECK(q[0] == 0x5a && q[(6 << 20) - 1] == 0x5a && q[6 << 20] == 0xa5 &&
        q[(100 << 20) - 1] == 0xa5);
  /* Shrinking a huge block (to a third) keeps what is left. */
  unsigned char *s = realloc_v(q, 30 << 20);
  CHECK(s != NULL && s[0] == 0x5a && s[(6 << 20) - 1] == 0x5a && s[(30 << 20) - 1] == 0xa5);
  CHECK(api.usable_size(s) >= (size_t)30 << 20 && api.usable_size(s) < (size_t)100 << 20);
  free(s);

  /* An over-aligned huge block keeps its alignment as it grows. */
  for (size_t align = (size_t)1 << 20; align <= (size_t)16 << 20; align <<= 2) {
    unsigned char *a = aligned_alloc(align, 5 << 20);
    CHECK(a != NULL && is_aligned(a, align));
    memset(a, 7, 5 << 20);
    for (size_t size = 6 << 20; size <= (size_t)80 << 20; size += size / 2) {
      unsigned char *b = realloc_v(a, size);
      CHECK(b != NULL);
      if (!b) break;
      CHECKF(is_aligned(b, align), "realloc of a %zu-aligned block to %zu: %p", align, size,
             (void *)b);
      CHECK(b[0] == 7 && b[(5 << 20) - 1] == 7);
      a = b;
    }
    free(a);
  }

  /* Everything still works. */
  void *blocks[64];
  for (int i = 0; i < 64; i++) {
    blocks[i] = malloc((size_t)(i + 1) << 16);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], i, (size_t)(i + 1) << 16);
  }
  for (int i = 0; i < 64; i++) free(blocks[i]);
  return test_report();
}
