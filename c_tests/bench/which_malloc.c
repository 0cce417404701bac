/* Reports which object provides `malloc` in this process, so bench/run.py
 * can confirm an LD_PRELOAD (or static link) really interposes before it
 * benchmarks it. Also exercises the calls a shim must forward.
 *
 * Output: WHICH malloc_from=<object path> usable_size_1=<n> peer=<name|->
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    const char *from = (sym && dladdr(sym, &info) && info.dli_fname) ? info.dli_fname : "?";
    if (from[0] == '\0')
        from = "(main program)";

    /* The common entry points must work and agree with each other. */
    char *p = malloc(1);
    size_t usable = malloc_usable_size(p);
    void *a = NULL;
    int ok = p && usable >= 1 && posix_memalign(&a, 64, 100) == 0 && ((uintptr_t)a & 63) == 0;
    char *c = calloc(10, 10);
    ok = ok && c && c[99] == 0;
    c = realloc(c, 1000);
    ok = ok && c;
    void *al = aligned_alloc(256, 512);
    ok = ok && al && ((uintptr_t)al & 255) == 0;
    free(al);
    free(c);
    free(a);
    free(p);

    const char *(*peer)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "mirs_bench_peer_name");
    printf("WHICH malloc_from=%s usable_size_1=%zu peer=%s ok=%d\n", from, usable,
           peer ? peer() : "-", ok);
    return ok ? 0 : 1;
}
