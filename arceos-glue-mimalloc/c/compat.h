/* mimalloc-arceos: what C mimalloc expects of a libc and axlibc's headers
 * (ulib/axlibc/include, 0.3.0-preview.3) lack. Force-included (-include)
 * before each mimalloc source by build.rs. */
#ifndef MIMALLOC_ARCEOS_COMPAT_H
#define MIMALLOC_ARCEOS_COMPAT_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#ifndef PTRDIFF_MAX
#define PTRDIFF_MAX INT64_MAX
#endif
#ifndef PTRDIFF_MIN
#define PTRDIFF_MIN INT64_MIN
#endif
#ifndef INTMAX_MAX
#define INTMAX_MAX INT64_MAX
#define INTMAX_MIN (-INTMAX_MAX - 1)
#endif
#ifndef UINTMAX_MAX
/* axlibc defines intmax_t but not uintmax_t (nor its limits). */
typedef uint64_t uintmax_t;
#define UINTMAX_MAX UINT64_MAX
#endif

/* axlibc implements pthread_mutex_{init,lock,unlock} only; the glue crate
 * (src/lib.rs) provides these two over the same axsync mutex. */
int pthread_mutex_trylock(pthread_mutex_t *mutex);
int pthread_mutex_destroy(pthread_mutex_t *mutex);

/* mi_realpath calls it; axlibc has none (and no file system here). */
#define realpath(path, resolved) ((void)(path), (void)(resolved), (char *)NULL)

/* v3's page map covers the low MIMALLOC_ARCEOS_VA_BITS bits of an address
 * (build.rs patches its index and its bounds check to these): ArceOS maps
 * physical memory at one fixed offset, so every heap address has the same
 * high bits, which mimalloc_arceos_high_bits holds (that value | 1, or 0
 * before the first allocation; c/mimalloc_arceos.c). */
#define MIMALLOC_ARCEOS_VA_BITS 32
#define MIMALLOC_ARCEOS_HIGH(a) ((uintptr_t)(a) >> MIMALLOC_ARCEOS_VA_BITS)
extern uintptr_t mimalloc_arceos_high_bits;

#endif
