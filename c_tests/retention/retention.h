/* Shared helpers for the retention programs (c_tests/retention/).
 *
 * Each program runs one allocation pattern, frees everything it allocated,
 * then prints the benchmark line bench/run.py reads (bench_common.h) with
 * the retention figures appended:
 *   RESULT name=<x> threads=<n> ops_per_sec=<x> seconds=<s> max_rss_kib=<peak>
 *          final_rss_kib=<rss after everything was freed> minflt=<faults> ...
 * idle_rss_kib is /proc/self/statm's resident field right after the last
 * free, with no allocator call in between. final_rss_kib is the same after
 * a pause of RET_SETTLE_MS (50 ms, longer than the purge delays of mirs
 * and mimalloc v2, 10 ms) and one malloc(64)/free from the main thread, the
 * light activity at which an allocator that purges after a delay does so:
 * what a program that freed everything and goes on keeps resident.
 * minflt is getrusage's ru_minflt over the pattern (and the settling) alone.
 */
#ifndef MIRS_RETENTION_H
#define MIRS_RETENTION_H

#include "../bench/bench_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

/* Resident set size now, in KiB (statm's second field, in pages). Read with
 * open/read, not stdio, so measuring allocates nothing. */
static inline long ret_rss_kib(void)
{
    char text[128];
    long resident = -1;
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        if (n > 0) {
            text[n] = '\0';
            char *end;
            strtol(text, &end, 10);        /* total program size */
            resident = strtol(end, NULL, 10);
        }
    }
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static inline long ret_minflt(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : -1;
}

static inline void *ret_malloc(size_t size)
{
    void *p = malloc(size);
    if (!p) {
        fprintf(stderr, "retention: malloc(%zu) returned NULL\n", size);
        abort();
    }
    return p;
}

/* Fill a buffer with a pattern derived from `tag`; ret_check verifies it at
 * both ends and in the middle before the buffer is freed. */
static inline void ret_fill(unsigned char *p, size_t size, unsigned tag)
{
    memset(p, (int)(tag & 0xff), size);
}

static inline void ret_check(const unsigned char *p, size_t size, unsigned tag)
{
    unsigned char t = (unsigned char)(tag & 0xff);
    if (p[0] != t || p[size / 2] != t || p[size - 1] != t) {
        fprintf(stderr, "retention: buffer %p of %zu bytes corrupted (tag %u)\n",
                (const void *)p, size, tag);
        abort();
    }
}

static inline void ret_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    if (pthread_create(t, NULL, fn, arg) != 0) {
        fprintf(stderr, "retention: pthread_create failed\n");
        exit(1);
    }
}

#define RET_SETTLE_MS 50

/* The closing line: benchmark figures plus idle/final RSS and page faults. */
static inline void ret_result(const char *name, long threads, double ops, double seconds,
                              long minflt_before, const char *extra)
{
    long idle_kib = ret_rss_kib();
    struct timespec pause = {0, RET_SETTLE_MS * 1000000L};
    nanosleep(&pause, NULL);
    void *volatile poke = ret_malloc(64);
    free(poke);
    long final_kib = ret_rss_kib();
    long flt = ret_minflt() - minflt_before;
    char line[256];
    snprintf(line, sizeof line, "final_rss_kib=%ld idle_rss_kib=%ld minflt=%ld%s%s", final_kib,
             idle_kib, flt, extra[0] ? " " : "", extra);
    bench_result(name, threads, ops, seconds, "%s", line);
}

#endif
