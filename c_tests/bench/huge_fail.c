/* Instruction cost of one failing huge request, for bench/fail_instr.sh.
 *
 * Runs N iterations of malloc(SIZE) (default 1 << 46, 64 TiB: more than the
 * machine can give, less than the address space), each of which must fail
 * with ENOMEM; a warm-up allocation first makes the heap exist, as in a real
 * program. With a second argument "empty" the loop runs without the malloc.
 * The script divides the difference in instructions between two N by the
 * difference in N, so start-up and exit cancel.
 *
 * Usage: huge_fail N [empty|SIZE_LOG2]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *(*volatile malloc_v)(size_t) = malloc;

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    int empty = argc > 2 && strcmp(argv[2], "empty") == 0;
    size_t size = (size_t)1 << (argc > 2 && !empty ? atoi(argv[2]) : 46);
    void *warm = malloc_v(64);
    long failed = 0;
    for (long i = 0; i < n; i++) {
        if (empty) {
            __asm__ volatile("" : : "r"(size) : "memory");
            failed++;
            continue;
        }
        errno = 0;
        void *p = malloc_v(size);
        if (p == NULL && errno == ENOMEM)
            failed++;
        else
            free(p);
    }
    free(warm);
    if (failed != n) {
        fprintf(stderr, "huge_fail: %ld of %ld requests of %zu bytes failed with ENOMEM\n",
                failed, n, size);
        return 1;
    }
    return 0;
}
