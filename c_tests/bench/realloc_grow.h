/* realloc_grow.h: the growth the realloc benchmark (c_tests/bench/realloc_grow.c)
 * times and the test (c_tests/test_realloc_grow.c) checks, written once.
 *
 * One round: a buffer grown from 4 KiB to 64 MiB a quarter at a time (size += size
 * / 4: 44 reallocs), as a string builder or a growing vector does; each new part is
 * filled with its step's byte, then every part is checked every `stride` bytes and
 * over its last `stride` bytes (stride 1: every byte), so a realloc that lost or
 * shifted data is caught.
 */
#ifndef MIRS_REALLOC_GROW_H
#define MIRS_REALLOC_GROW_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GROW_START ((size_t)4096)
#define GROW_END ((size_t)64 << 20)

/* Through a volatile pointer: the compiler cannot pair it with the malloc before. */
static void *(*volatile realloc_v)(void *, size_t) = realloc;

/* The byte step k of a round wrote: the part [size_k, size_k+1). */
static inline unsigned char grow_step_byte(int k) { return (unsigned char)(k * 37 + 11); }

struct grow_round {
    unsigned char *buf; /* the grown buffer (the caller frees it), NULL if a realloc failed */
    size_t size;        /* its size: GROW_END, or the size the failed realloc asked for */
    int reallocs;       /* reallocs done */
    int moves;          /* reallocs that returned another address (a copy) */
    size_t bad;         /* offset of the first byte found changed, or SIZE_MAX */
};

/* One round (see above). A failed realloc frees the buffer and stops the round. */
static inline struct grow_round grow_round(size_t stride)
{
    struct grow_round g = {NULL, GROW_START, 0, 0, SIZE_MAX};
    size_t bounds[64];
    int steps = 0;
    unsigned char *buf = malloc(g.size);
    if (!buf)
        return g;
    memset(buf, grow_step_byte(0), g.size);
    bounds[0] = 0;
    while (g.size < GROW_END) {
        size_t next = g.size + g.size / 4;
        if (next > GROW_END)
            next = GROW_END;
        unsigned char *q = realloc_v(buf, next);
        if (!q) {
            free(buf);
            g.size = next;
            return g;
        }
        g.reallocs++;
        g.moves += q != buf;
        buf = q;
        bounds[++steps] = g.size;
        memset(buf + g.size, grow_step_byte(steps), next - g.size);
        g.size = next;
    }
    bounds[steps + 1] = g.size;
    for (int k = 0; k <= steps && g.bad == SIZE_MAX; k++)
        for (size_t i = bounds[k]; i < bounds[k + 1]; i += i + stride < bounds[k + 1] ? stride : 1)
            if (buf[i] != grow_step_byte(k)) {
                g.bad = i;
                break;
            }
    g.buf = buf;
    return g;
}

#endif
