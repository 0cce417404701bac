/* Instruction cost of one malloc+free pair, for bench/fastpath_instr.sh.
 *
 * Runs N iterations of: malloc a size cycling over 16..512 bytes, free it.
 * The asm barrier makes the pointer "used" so the compiler cannot drop the
 * pair. With a second argument "empty" the same loop runs without the
 * malloc/free (the size is still computed and passed through the barrier),
 * which measures the loop's own overhead.
 *
 * The script runs this under callgrind at two N and divides the difference
 * in instructions by the difference in N, so start-up and exit cancel.
 *
 * Usage: fastpath N [empty]
 */
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void pairs(long n)
{
    for (long i = 0; i < n; i++) {
        void *p = malloc(16 + ((size_t)i * 8) % 497);
        __asm__ volatile("" : : "r"(p) : "memory");
        free(p);
    }
}

__attribute__((noinline)) static void empty(long n)
{
    for (long i = 0; i < n; i++) {
        size_t s = 16 + ((size_t)i * 8) % 497;
        __asm__ volatile("" : : "r"(s) : "memory");
    }
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
    if (argc > 2 && strcmp(argv[2], "empty") == 0)
        empty(n);
    else
        pairs(n);
    return 0;
}
