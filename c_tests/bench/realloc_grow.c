/* A buffer grown by realloc from 4 KiB to 64 MiB, a quarter at a time
 * (44 reallocs; realloc_grow.h, shared with c_tests/test_realloc_grow.c),
 * ROUNDS times (default 20: 880 reallocs), as a string builder or a growing
 * vector does; at the end of every round one byte per 4 KiB of the whole
 * buffer (and each part's last 4 KiB) is checked. Prints the reallocs, how
 * many of them moved the buffer (returned another address), and the time
 * (bench/realloc_grow.sh, make bench-realloc).
 *
 * Usage: realloc_grow [ROUNDS]
 */
#include <stdio.h>
#include <time.h>

#include "realloc_grow.h"

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    long reallocs = 0, moves = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < rounds; r++) {
        struct grow_round g = grow_round(4096);
        if (!g.buf) {
            fprintf(stderr, "realloc_grow: realloc(%zu) failed\n", g.size);
            return 2;
        }
        if (g.bad != SIZE_MAX) {
            fprintf(stderr, "realloc_grow: byte %zu changed after a realloc\n", g.bad);
            return 1;
        }
        reallocs += g.reallocs;
        moves += g.moves;
        free(g.buf);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("reallocs=%ld moves=%ld seconds=%.3f\n", reallocs, moves, s);
    return 0;
}
