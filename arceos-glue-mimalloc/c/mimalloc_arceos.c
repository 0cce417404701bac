/* mimalloc-arceos: C mimalloc (v2 or v3) as axlibc's malloc.
 *
 * One translation unit: mimalloc's own sources (the list its src/static.c
 * includes, without its OS layer src/prim/), then the OS primitives of
 * include/mimalloc/prim.h for ArceOS, then the C allocation names. v2 and
 * v3 differ in their source lists and in a few primitives (#if below).
 *
 * ArceOS has no virtual memory to reserve or give back lazily: axlibc
 * implements no mmap, and what axalloc's page allocator hands out is
 * physical memory mapped for good. So memory comes from the glue's page
 * provider (src/lib.rs: axalloc pages under the same cap as mirs-arceos),
 * and commit, decommit, reset and protect are no-ops. */
#include "mimalloc.h"
#include "mimalloc/internal.h"
#include "mimalloc/prim.h"

#define MIMALLOC_ARCEOS_V3 (MI_MALLOC_VERSION >= 30000)

#include "alloc.c" /* without MI_MALLOC_OVERRIDE: the C names are defined below */
#include "alloc-aligned.c"
#include "alloc-posix.c"
#include "arena.c"
#include "bitmap.c"
#include "heap.c"
#include "init.c"
#include "libc.c"
#include "options.c"
#include "os.c"
#include "page.c"
#include "random.c"
#include "stats.c"
#if MIMALLOC_ARCEOS_V3
#include "arena-meta.c"
#include "page-map.c"
#include "theap.c"
#include "threadlocal.c"
#else
#include "segment.c"
#include "segment-map.c"
#endif

#include <errno.h>
#include <string.h>
#include <time.h>

/* The glue crate (Rust). */
void *mimalloc_arceos_pages_alloc(size_t size, size_t align);
void mimalloc_arceos_pages_free(void *p, size_t size);
void mimalloc_arceos_write(const char *bytes, size_t len);
void mimalloc_arceos_yield(void);

#define ARCEOS_PAGE 4096

#if MIMALLOC_ARCEOS_V3
#if !MI_PAGE_MAP_FLAT
#error "mimalloc-arceos: v3 is built with its flat page map (MI_DEFAULT_VIRTUAL_ADDRESS_BITS=32)"
#endif
uintptr_t mimalloc_arceos_high_bits;
#endif

/* ------------------------------------------------------------- memory */

void _mi_prim_mem_init(mi_os_mem_config_t *config)
{
    config->page_size = ARCEOS_PAGE;
    config->large_page_size = 0;
    config->alloc_granularity = ARCEOS_PAGE;
    config->has_overcommit = false;       /* every page handed out is physical */
    config->has_partial_free = false;     /* give back whole allocations only */
    config->has_virtual_reserve = false;
#if MIMALLOC_ARCEOS_V3
    /* v3's page map is indexed by the address's low MIMALLOC_ARCEOS_VA_BITS
     * bits (build.rs patches the index); _mi_prim_alloc checks the rest. */
    config->virtual_address_bits = MIMALLOC_ARCEOS_VA_BITS;
    config->physical_memory_in_kib = 0; /* unknown: only used for statistics */
    config->has_transparent_huge_pages = false;
#endif
}

int _mi_prim_alloc(void *hint_addr, size_t size, size_t try_alignment, bool commit, bool allow_large,
                   bool *is_large, bool *is_zero, void **addr)
{
    (void)hint_addr, (void)commit, (void)allow_large;
    /* axalloc aligns to any power of two, so segments come aligned at once
     * (os.c then needs no over-allocation). */
    size_t align = ARCEOS_PAGE;
    if (try_alignment > align && (try_alignment & (try_alignment - 1)) == 0)
        align = try_alignment;
    *is_large = false;
    *is_zero = false; /* axalloc does not clear pages */
    size = _mi_align_up(size, ARCEOS_PAGE);
    *addr = mimalloc_arceos_pages_alloc(size, align);
    if (*addr == NULL)
        return ENOMEM;
#if MIMALLOC_ARCEOS_V3
    /* Every block of memory must lie in the window of 2^VA_BITS bytes the
     * page map covers (ArceOS maps physical memory at one fixed offset, so
     * the high bits are that offset's): anything else is refused rather
     * than aliased in the map. */
    uintptr_t lo = (uintptr_t)*addr, hi = lo + size - 1;
    uintptr_t expect = mimalloc_arceos_high_bits;
    if (expect == 0) {
        uintptr_t none = 0;
        __atomic_compare_exchange_n(&mimalloc_arceos_high_bits, &none, MIMALLOC_ARCEOS_HIGH(lo) | 1, false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
        expect = mimalloc_arceos_high_bits;
    }
    if ((MIMALLOC_ARCEOS_HIGH(lo) | 1) != expect || (MIMALLOC_ARCEOS_HIGH(hi) | 1) != expect) {
        mimalloc_arceos_pages_free(*addr, size);
        *addr = NULL;
        return ENOMEM;
    }
#endif
    return 0;
}

int _mi_prim_free(void *addr, size_t size)
{
    if (addr != NULL && size != 0)
        mimalloc_arceos_pages_free(addr, _mi_align_up(size, ARCEOS_PAGE));
    return 0;
}

int _mi_prim_commit(void *addr, size_t size, bool *is_zero)
{
    (void)addr, (void)size;
    *is_zero = false;
    return 0;
}

int _mi_prim_decommit(void *addr, size_t size, bool *needs_recommit)
{
    (void)addr, (void)size;
    *needs_recommit = false;
    return 0;
}

int _mi_prim_reset(void *addr, size_t size)
{
    (void)addr, (void)size;
    return 0;
}

int _mi_prim_reuse(void *addr, size_t size)
{
    (void)addr, (void)size;
    return 0;
}

int _mi_prim_protect(void *addr, size_t size, bool protect)
{
    (void)addr, (void)size, (void)protect;
    return 0;
}

int _mi_prim_alloc_huge_os_pages(void *hint_addr, size_t size, int numa_node, bool *is_zero, void **addr)
{
    (void)hint_addr, (void)size, (void)numa_node;
    *is_zero = false;
    *addr = NULL;
    return ENOMEM;
}

size_t _mi_prim_numa_node(void) { return 0; }
size_t _mi_prim_numa_node_count(void) { return 1; }

/* ------------------------------------------------------------- time, output, environment */

mi_msecs_t _mi_prim_clock_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (mi_msecs_t)t.tv_sec * 1000 + (mi_msecs_t)(t.tv_nsec / 1000000);
}

void _mi_prim_process_info(mi_process_info_t *pinfo)
{
    /* stats.c fills in the commit figures; ArceOS has no per-process times. */
    pinfo->elapsed = _mi_prim_clock_now();
    pinfo->utime = 0;
    pinfo->stime = 0;
    pinfo->page_faults = 0;
}

void _mi_prim_out_stderr(const char *msg)
{
    mimalloc_arceos_write(msg, strlen(msg));
}

bool _mi_prim_getenv(const char *name, char *result, size_t result_size)
{
    (void)name, (void)result, (void)result_size;
    return false; /* no environment: mimalloc's compiled-in defaults */
}

bool _mi_prim_random_buf(void *buf, size_t buf_len)
{
    (void)buf, (void)buf_len;
    return false; /* no entropy source: mimalloc seeds itself from the clock */
}

/* ------------------------------------------------------------- threads */

/* Thread ends are reported by the pthread trampoline (src/lib.rs calls
 * mi_thread_done), not through a pthread key. */
void _mi_prim_thread_init_auto_done(void) {}
void _mi_prim_thread_done_auto_done(void) {}
#if MIMALLOC_ARCEOS_V3
void _mi_prim_thread_associate_default_theap(mi_theap_t *theap) { (void)theap; }
bool _mi_prim_thread_is_in_threadpool(void) { return false; }
void _mi_prim_thread_yield(void) { mimalloc_arceos_yield(); }
#else
void _mi_prim_thread_associate_default_heap(mi_heap_t *heap) { (void)heap; }
#endif

bool _mi_is_redirected(void) { return false; }
bool _mi_allocator_init(const char **message)
{
    if (message != NULL)
        *message = NULL;
    return true;
}
void _mi_allocator_done(void) {}

/* mimalloc reports a failed allocation through its error handler, not errno. */
static void mimalloc_arceos_on_error(int err, void *arg)
{
    (void)arg;
    if (err == ENOMEM || err == EOVERFLOW)
        errno = err;
}

/* Process init from .init_array (axruntime runs it once its allocator is up,
 * before main), not lazily from the first malloc: two threads that malloc
 * first at the same time would both run it. */
__attribute__((constructor)) static void mimalloc_arceos_init(void)
{
    mi_register_error(mimalloc_arceos_on_error, NULL);
    _mi_auto_process_init();
}

/* ------------------------------------------------------------- the C names */

/* Aliases (no forwarding call). MI_MALLOC_OVERRIDE is not used: its
 * alloc-override.c also defines strdup & co., which axlibc has. */
void *malloc(size_t size) __attribute__((alias("mi_malloc")));
void free(void *p) __attribute__((alias("mi_free")));
void *calloc(size_t n, size_t size) __attribute__((alias("mi_calloc")));
void *realloc(void *p, size_t size) __attribute__((alias("mi_realloc")));
int posix_memalign(void **out, size_t align, size_t size) __attribute__((alias("mi_posix_memalign")));
void *aligned_alloc(size_t align, size_t size) __attribute__((alias("mi_aligned_alloc")));
void *memalign(size_t align, size_t size) __attribute__((alias("mi_memalign")));
size_t malloc_usable_size(void *p) __attribute__((alias("mi_usable_size")));
