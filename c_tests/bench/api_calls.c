/* Instruction cost of the entry points besides malloc and free, for
 * bench/ops_instr.py: fixed work, one call kind per run.
 *
 * 64 slots start with 32-byte blocks; each iteration picks a slot and a
 * size of 8..263 bytes from a xorshift sequence and, by CALL:
 *   none            nothing more (the loop's own cost, subtracted)
 *   malloc          free the slot, malloc(size) into it (for reference)
 *   calloc          free the slot, calloc(1, size) into it
 *   realloc         realloc the slot to size (grows, shrinks, often moves)
 *   posix_memalign  free the slot, posix_memalign(32, size) into it
 *   aligned_alloc   free the slot, aligned_alloc(64, 64 + size rounded down to 64)
 *   usable_size     malloc_usable_size of the slot
 * ops_instr.py counts the whole program's instructions (callgrind) at two
 * iteration counts and subtracts `none`'s: allocator instructions per
 * iteration, library calls they make (memset, memcpy) included. (Counting
 * inside the named function alone misses tail calls and aliases.)
 *
 * Usage: api_calls CALL ITERATIONS
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 64

int main(int argc, char **argv)
{
    static void *slot[SLOTS];
    static const char *calls[] = {"none",           "malloc",        "calloc",     "realloc",
                                  "posix_memalign", "aligned_alloc", "usable_size"};
    int call = -1;
    for (int i = 0; argc > 2 && i < 7; i++)
        if (strcmp(argv[1], calls[i]) == 0)
            call = i;
    if (call < 0) {
        fprintf(stderr, "usage: api_calls none|malloc|calloc|realloc|posix_memalign|"
                        "aligned_alloc|usable_size ITERATIONS\n");
        return 2;
    }
    long iters = strtol(argv[2], NULL, 10);
    uint64_t rng = 88172645463325252ULL;
    size_t sink = 0;
    for (int i = 0; i < SLOTS; i++)
        slot[i] = malloc(32);
    for (long it = 0; it < iters; it++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int i = (int)(rng % SLOTS);
        size_t size = 8 + (rng >> 8) % 256;
        void *p = NULL;
        switch (call) {
        case 0:
            __asm__ volatile("" : : "r"(size), "r"(slot[i]) : "memory");
            break;
        case 1:
            free(slot[i]);
            slot[i] = malloc(size);
            break;
        case 2:
            free(slot[i]);
            slot[i] = calloc(1, size);
            break;
        case 3:
            slot[i] = realloc(slot[i], size);
            break;
        case 4:
            free(slot[i]);
            slot[i] = posix_memalign(&p, 32, size) == 0 ? p : NULL;
            break;
        case 5:
            free(slot[i]);
            slot[i] = aligned_alloc(64, 64 + (size & ~(size_t)63));
            break;
        default:
            sink += malloc_usable_size(slot[i]);
        }
        if (!slot[i]) {
            fprintf(stderr, "api_calls: %s returned NULL\n", calls[call]);
            return 1;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        free(slot[i]);
    printf("%zu\n", sink);
    return 0;
}
