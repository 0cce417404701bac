/* ArceOS app: the C allocation API as axlibc switched to mirs serves it.
 * Each check prints `api: ok NAME` or `api: FAIL NAME (...)`; the last line
 * is `api: N of M checks passed`. Run by c_tests/arceos/arceos.py. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, passed;

static void check(int ok, const char *name, long detail)
{
    checks++;
    if (ok) {
        passed++;
        printf("api: ok %s\n", name);
    } else {
        printf("api: FAIL %s (%ld)\n", name, detail);
    }
}

int main(void)
{
    /* malloc(0): a unique, freeable pointer (glibc semantics). */
    void *z0 = malloc(0), *z1 = malloc(0);
    check(z0 != NULL && z1 != NULL && z0 != z1, "malloc(0) unique non-NULL", (long)(z0 == z1));
    free(z0);
    free(z1);

    /* calloc overflow: NULL and ENOMEM, nothing allocated. */
    errno = 0;
    volatile size_t huge = SIZE_MAX / 2; /* hides the overflow from the compiler */
    void *c = calloc(huge, 3);
    check(c == NULL && errno == ENOMEM, "calloc overflow -> NULL+ENOMEM", errno);

    /* calloc zeroes, also memory that was used before. */
    unsigned char *dirty = malloc(4096);
    if (dirty)
        memset(dirty, 0xa5, 4096);
    free(dirty);
    unsigned char *cz = calloc(4096, 1);
    long nonzero = 0;
    for (int i = 0; cz && i < 4096; i++)
        nonzero += cz[i] != 0;
    check(cz != NULL && nonzero == 0, "calloc zeroed", nonzero);
    free(cz);

    /* posix_memalign: EINVAL for 3 and for 4 (< sizeof(void *)), ok for 64 and 1 MiB. */
    void *pm = (void *)1;
    int r3 = posix_memalign(&pm, 3, 64);
    check(r3 == EINVAL && pm == (void *)1, "posix_memalign(3) -> EINVAL, out untouched", r3);
    int r4 = posix_memalign(&pm, 4, 64);
    check(r4 == EINVAL, "posix_memalign(4) -> EINVAL", r4);
    pm = NULL;
    int r64 = posix_memalign(&pm, 64, 1000);
    check(r64 == 0 && pm && ((uintptr_t)pm & 63) == 0, "posix_memalign(64) aligned", r64);
    if (pm)
        memset(pm, 1, 1000);
    free(pm);

    /* aligned_alloc 1 MiB alignment, usable for its whole size. */
    size_t mib = 1 << 20;
    unsigned char *big = aligned_alloc(mib, 3 * mib);
    check(big && ((uintptr_t)big & (mib - 1)) == 0, "aligned_alloc(1 MiB) aligned", (long)((uintptr_t)big & (mib - 1)));
    if (big) {
        memset(big, 0x5a, 3 * mib);
        check(big[0] == 0x5a && big[3 * mib - 1] == 0x5a, "aligned_alloc block writable", big[3 * mib - 1]);
    }
    free(big);

    /* memalign rounds a non-power-of-two alignment up (glibc). */
    void *ma = memalign(48, 100);
    check(ma && ((uintptr_t)ma & 63) == 0, "memalign(48) -> 64-aligned", (long)((uintptr_t)ma & 63));
    free(ma);

    /* realloc keeps contents growing (small -> large, across size classes) and shrinking. */
    unsigned char *r = malloc(100);
    for (int i = 0; r && i < 100; i++)
        r[i] = (unsigned char)(i * 7 + 1);
    unsigned char *g = realloc(r, 300000);
    long bad = g ? 0 : -1;
    for (int i = 0; g && i < 100; i++)
        bad += g[i] != (unsigned char)(i * 7 + 1);
    check(g != NULL && bad == 0, "realloc grow keeps contents", bad);
    unsigned char *s = g ? realloc(g, 50) : NULL;
    bad = s ? 0 : -1;
    for (int i = 0; s && i < 50; i++)
        bad += s[i] != (unsigned char)(i * 7 + 1);
    check(s != NULL && bad == 0, "realloc shrink keeps contents", bad);
    check(s && malloc_usable_size(s) >= 50, "malloc_usable_size >= requested", s ? (long)malloc_usable_size(s) : -1);
    free(s);
    void *rn = realloc(NULL, 64);
    check(rn != NULL, "realloc(NULL, n) allocates", 0);
    free(rn);

    /* 1 TiB: NULL with ENOMEM (no panic), and malloc works afterwards. */
    errno = 0;
    void *tib = malloc((size_t)1 << 40);
    check(tib == NULL && errno == ENOMEM, "malloc(1 TiB) -> NULL+ENOMEM", errno);
    errno = 0;
    void *tr = realloc(NULL, (size_t)1 << 40);
    check(tr == NULL && errno == ENOMEM, "realloc(NULL, 1 TiB) -> NULL+ENOMEM", errno);
    void *after = malloc(32);
    check(after != NULL, "malloc after failures", 0);
    free(after);

    printf("api: %d of %d checks passed\n", passed, checks);
    return 0;
}
