/* Shared helpers for the mirs benchmark programs (c_tests/bench/).
 *
 * Every benchmark prints one machine-readable line that bench/run.py parses:
 *   RESULT name=<bench> threads=<n> ops_per_sec=<x> seconds=<s> [key=value ...]
 * Anything else on stdout is for people.
 *
 * Kept to C11 + pthreads + clock_gettime so the programs also build for
 * ArceOS's axlibc (define MIRS_ARCEOS there: no getrusage, no /proc).
 */
#ifndef MIRS_BENCH_COMMON_H
#define MIRS_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef MIRS_ARCEOS
#include <sys/resource.h>
#endif

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64*: cheap, allocation-free, reproducible per thread. */
static inline uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t bench_seed(uint64_t n)
{
    /* splitmix64 step so consecutive thread ids give unrelated streams;
     * never zero (xorshift would stick at 0). */
    uint64_t z = n + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z ? z : 1;
}

/* Peak resident set size in KiB, or -1 where the platform cannot tell.
 * VmHWM first: getrusage's ru_maxrss also counts the parent's memory from
 * before exec (e.g. the Python runner's), VmHWM only this program's. */
static inline long bench_max_rss_kib(void)
{
#ifndef MIRS_ARCEOS
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[128];
        long kib = -1;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmHWM:", 6) == 0) {
                kib = strtol(line + 6, NULL, 10);
                break;
            }
        fclose(f);
        if (kib >= 0)
            return kib;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        return ru.ru_maxrss; /* Linux reports KiB */
#endif
    return -1;
}

/* ArceOS calls main() without arguments (argc/argv are garbage there):
 * parameters come from -DNUM_THREADS / -DDURATION only. */
static inline long bench_arg_long(int argc, char **argv, int i, long dflt)
{
#ifdef MIRS_ARCEOS
    (void)argc, (void)argv, (void)i;
    return dflt;
#else
    return argc > i ? strtol(argv[i], NULL, 10) : dflt;
#endif
}

static inline double bench_arg_double(int argc, char **argv, int i, double dflt)
{
#ifdef MIRS_ARCEOS
    (void)argc, (void)argv, (void)i;
    return dflt;
#else
    return argc > i ? strtod(argv[i], NULL) : dflt;
#endif
}

/* Fixed work for exact measurements (bench/ops_instr.py under callgrind and
 * cachegrind): BENCH_ITERS=N makes a time-based benchmark do exactly N units
 * of work per thread instead (its own unit: iterations, generations). 0 when
 * unset: the benchmark runs for its time. */
static inline uint64_t bench_fixed_work(void)
{
#ifdef MIRS_ARCEOS
    return 0;
#else
    const char *s = getenv("BENCH_ITERS");
    return s ? strtoull(s, NULL, 10) : 0;
#endif
}

/* The one line run.py reads; `extra` is appended verbatim (may be ""). */
static inline void bench_result(const char *name, long threads, double ops,
                                double seconds, const char *extra)
{
    printf("RESULT name=%s threads=%ld ops_per_sec=%.0f seconds=%.4f max_rss_kib=%ld%s%s\n",
           name, threads, seconds > 0 ? ops / seconds : 0.0, seconds,
           bench_max_rss_kib(), extra[0] ? " " : "", extra);
    fflush(stdout);
}

/* Keep the compiler from proving a block unused (and eliding malloc/free). */
#define BENCH_ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

#endif
