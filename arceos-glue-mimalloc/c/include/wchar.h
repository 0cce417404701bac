/* mimalloc-arceos: axlibc has no <wchar.h>; mimalloc.h needs wchar_t and
 * its mi_wcsdup wcslen. */
#ifndef MIMALLOC_ARCEOS_WCHAR_H
#define MIMALLOC_ARCEOS_WCHAR_H
#include <stddef.h>
typedef __WCHAR_TYPE__ wchar_t; /* axlibc's stddef.h has none */
static inline size_t wcslen(const wchar_t *s)
{
    size_t n = 0;
    while (s[n] != 0)
        n++;
    return n;
}
#endif
