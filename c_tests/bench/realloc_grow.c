/* A buffer grown by realloc from 4 KiB to 64 MiB, a quarter at a time
 * (size += size / 4: 44 reallocs), ROUNDS times (default 20: 880 reallocs),
 * as a string builder or a growing vector does; each new part is filled
 * (memset with its step's byte), and at the end of every round one byte per
 * 4 KiB of the whole buffer is checked. Prints the
 * reallocs, how many of them moved the buffer (returned another address),
 * and the time (bench/realloc_grow.sh, make bench-realloc).
 *
 * Usage: realloc_grow [ROUNDS]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *(*volatile realloc_v)(void *, size_t) = realloc;

/* The byte step k of a round wrote: the part [size_k, size_k+1). */
static unsigned char step_byte(int k) { return (unsigned char)(k * 37 + 11); }

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    const size_t start = 4096, end = (size_t)64 << 20;
    long reallocs = 0, moves = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < rounds; r++) {
        size_t size = start, bounds[64];
        int steps = 0;
        unsigned char *buf = malloc(size);
        if (!buf) return 2;
        memset(buf, step_byte(0), size);
        bounds[0] = 0;
        while (size < end) {
            size_t next = size + size / 4;
            if (next > end) next = end;
            unsigned char *q = realloc_v(buf, next);
            if (!q) { fprintf(stderr, "realloc_grow: realloc(%zu) failed\n", next); return 2; }
            reallocs++;
            moves += q != buf;
            buf = q;
            bounds[++steps] = size;
            memset(buf + size, step_byte(steps), next - size);
            size = next;
        }
        bounds[steps + 1] = size;
        for (int k = 0; k <= steps; k++)
            for (size_t i = bounds[k]; i < bounds[k + 1]; i += i + 4096 < bounds[k + 1] ? 4096 : 1)
                if (buf[i] != step_byte(k)) {
                    fprintf(stderr, "realloc_grow: byte %zu changed after a realloc\n", i);
                    return 1;
                }
        free(buf);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("reallocs=%ld moves=%ld seconds=%.3f\n", reallocs, moves, s);
    return 0;
}
