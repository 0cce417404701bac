/* harness.c: stands in for ArceOS when the embedded mirs runs on Linux.
 *
 * mirs is built without `hosted` (no libc use of its own): it takes memory from
 * its static region and learns about threads only through these hooks.
 *
 *   mirs_hook_thread_id   a per-thread number from a counter (never reused, as
 *                         ArceOS task ids), kept in a __thread variable
 *   mirs_hook_write       write(2) to stderr
 *   alive hook            false once the thread has been joined
 *   pthread_create/join   wrapped (-Wl,--wrap=...) as axlibc would wrap them: the
 *                         start routine runs in a trampoline that calls
 *                         mirs_thread_done() when MIRS_TEST_THREAD_DONE=1 (else the
 *                         thread just ends and the alive hook reports it after join)
 *
 * Environment: MIRS_TEST_THREAD_DONE=1 (call mirs_thread_done at thread exit),
 * MIRS_TEST_NO_ALIVE=1 (install no alive hook).
 * errno is glibc's (__errno_location), as axlibc's in ArceOS.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_IDS (1u << 16)
#define MAX_RECORDS 1024

static atomic_size_t next_id = 1;
static __thread size_t my_id;
static atomic_uchar dead[MAX_IDS];
static int thread_done_mode;

size_t mirs_hook_thread_id(void)
{
    size_t id = my_id;
    if (__builtin_expect(id == 0, 0)) {
        id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
        if (id >= MAX_IDS)
            abort(); /* the harness's table; mirs itself has no such limit */
        my_id = id;
    }
    return id;
}

void mirs_hook_write(const uint8_t *bytes, size_t len)
{
    while (len > 0) {
        ssize_t n = write(2, bytes, len);
        if (n <= 0)
            return;
        bytes += n;
        len -= (size_t)n;
    }
}

atomic_long harness_alive_calls;

static bool alive(size_t id)
{
    atomic_fetch_add_explicit(&harness_alive_calls, 1, memory_order_relaxed);
    return id >= MAX_IDS || !atomic_load_explicit(&dead[id], memory_order_acquire);
}

size_t harness_thread_id(void) { return mirs_hook_thread_id(); }

/* ---- pthread_create / pthread_join, as an embedder's libc would do them ------ */

struct record {
    atomic_int in_use;
    pthread_t thread;
    void *(*start)(void *);
    void *arg;
    size_t id;
};
static struct record records[MAX_RECORDS];

int __real_pthread_create(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
int __real_pthread_join(pthread_t, void **);

static void *trampoline(void *p)
{
    struct record *r = p;
    r->id = mirs_hook_thread_id();
    void *ret = r->start(r->arg);
    if (thread_done_mode)
        mirs_thread_done();
    return ret;
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*start)(void *),
                          void *arg)
{
    for (int i = 0; i < MAX_RECORDS; i++) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&records[i].in_use, &expect, 1)) {
            struct record *r = &records[i];
            r->start = start;
            r->arg = arg;
            r->id = 0;
            int rc = __real_pthread_create(&r->thread, attr, trampoline, r);
            if (rc != 0) {
                atomic_store(&r->in_use, 0);
                return rc;
            }
            *t = r->thread;
            return 0;
        }
    }
    return EAGAIN;
}

int __wrap_pthread_join(pthread_t t, void **ret)
{
    int rc = __real_pthread_join(t, ret);
    if (rc != 0)
        return rc;
    for (int i = 0; i < MAX_RECORDS; i++) {
        struct record *r = &records[i];
        if (atomic_load(&r->in_use) && pthread_equal(r->thread, t)) {
            if (r->id && r->id < MAX_IDS)
                atomic_store_explicit(&dead[r->id], 1, memory_order_release);
            atomic_store(&r->in_use, 0);
            break;
        }
    }
    return 0;
}

void harness_set_alive_hook(bool on) { mirs_thread_alive_hook_set(on ? alive : NULL); }

__attribute__((constructor)) static void harness_init(void)
{
    const char *done = getenv("MIRS_TEST_THREAD_DONE");
    thread_done_mode = done && strcmp(done, "1") == 0;
    const char *no_alive = getenv("MIRS_TEST_NO_ALIVE");
    harness_set_alive_hook(!(no_alive && strcmp(no_alive, "1") == 0));
}

bool harness_thread_done_mode(void) { return thread_done_mode; }

void *harness_trim_to_alignment(void *raw, size_t span, size_t size, size_t align)
{
    uintptr_t base = (uintptr_t)raw;
    uintptr_t start = (base + align - 1) & ~(uintptr_t)(align - 1);
    if (start > base)
        munmap(raw, start - base);
    size_t tail = base + span - (start + size);
    if (tail)
        munmap((void *)(start + size), tail);
    return (void *)start;
}
