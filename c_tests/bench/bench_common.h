/* Shared helpers for the mirs benchmark programs (c_tests/bench/).
 *
 * Every benchmark prints one machine-readable line that bench/run.py parses:
 *   RESULT name=<bench> threads=<n> ops_per_sec=<x> seconds=<s> [key=value ...]
 * Anything else on stdout is for people.
 *
 * The threaded benchmarks share one skeleton, kept here so each file holds
 * only its own work loop: bench_args (THREADS [SECONDS|SCALE]), bench_spawn /
 * bench_join or bench_run (the threads, released together by bench_release),
 * bench_now around them, bench_result at the end. Header-only, so every
 * build (run.py, ops_instr.py, the embedded and ArceOS harnesses) compiles a
 * benchmark as the one source file it always was.
 *
 * Kept to C11 + pthreads + clock_gettime so the programs also build for
 * ArceOS's axlibc (define MIRS_ARCEOS there: no getrusage, no /proc).
 */
#ifndef MIRS_BENCH_COMMON_H
#define MIRS_BENCH_COMMON_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/* The one line run.py reads; `extra` is a printf format for the benchmark's
 * own key=value fields, appended after a space, or NULL for none. */
__attribute__((format(printf, 5, 6))) static inline void
bench_result(const char *name, long threads, double ops, double seconds, const char *extra, ...)
{
    char fields[256] = "";
    va_list ap;
    va_start(ap, extra);
    if (extra)
        vsnprintf(fields, sizeof fields, extra, ap);
    va_end(ap);
    printf("RESULT name=%s threads=%ld ops_per_sec=%.0f seconds=%.4f max_rss_kib=%ld%s%s\n",
           name, threads, seconds > 0 ? ops / seconds : 0.0, seconds,
           bench_max_rss_kib(), fields[0] ? " " : "", fields);
    fflush(stdout);
}

/* ---- the skeleton of the threaded benchmarks ---------------------------- */

/* Threads a benchmark runs at most (xmalloc: half as many pairs). */
#define BENCH_MAX_THREADS 256

/* The program's name, for messages (bench_args sets it). */
static const char *bench_name = "bench";

/* NAME THREADS [AMOUNT]: the arguments every threaded benchmark takes; AMOUNT
 * is SECONDS for one that runs for a time, SCALE for fixed work (a factor).
 * `*threads` and `*amount` hold the defaults on entry (ArceOS: the only
 * values). False, after the usage line, when THREADS is not in
 * 1..max_threads or AMOUNT not above 0; `threads_name` names THREADS in it. */
static inline bool bench_args(int argc, char **argv, const char *name, const char *threads_name,
                              long max_threads, long *threads, const char *amount_name,
                              double *amount)
{
    bench_name = name;
    *threads = bench_arg_long(argc, argv, 1, *threads);
    *amount = bench_arg_double(argc, argv, 2, *amount);
    if (*threads < 1 || *threads > max_threads || !(*amount > 0)) {
        fprintf(stderr, "usage: %s %s(1..%ld) [%s]\n", name, threads_name, max_threads,
                amount_name);
        return false;
    }
    return true;
}

/* Threads started by bench_spawn and not yet joined. */
static pthread_t bench_tids[BENCH_MAX_THREADS];
static long bench_started;
/* Set by bench_release: workers that wait in bench_wait start together. */
static atomic_int bench_go;

/* Starts `n` threads, thread i running fn(&args[i]) where args is an array of
 * elements of `size` bytes. A thread that cannot be created ends the program
 * (status 1), as no figure would mean anything. */
static inline void bench_spawn(void *(*fn)(void *), void *args, size_t size, long n)
{
    for (long i = 0; i < n; i++) {
        if (bench_started == BENCH_MAX_THREADS ||
            pthread_create(&bench_tids[bench_started], NULL, fn, (char *)args + (size_t)i * size) != 0) {
            fprintf(stderr, "%s: pthread_create failed\n", bench_name);
            exit(1);
        }
        bench_started++;
    }
}

/* Joins every thread bench_spawn started, in the order they started. */
static inline void bench_join(void)
{
    for (long i = 0; i < bench_started; i++)
        pthread_join(bench_tids[i], NULL);
    bench_started = 0;
}

static inline void bench_release(void)
{
    atomic_store_explicit(&bench_go, 1, memory_order_release);
}

/* A worker's first step when the threads must start together (from
 * bench_release, once all are created): thread creation is not measured. */
static inline void bench_wait(void)
{
    while (!atomic_load_explicit(&bench_go, memory_order_acquire))
        ;
}

/* fn over `n` workers (args as for bench_spawn), released together: on the
 * calling thread when n is 1, so a single-threaded run is what a
 * single-threaded program sees (glibc: the main arena), else on n new
 * threads, joined before it returns. */
static inline void bench_run(void *(*fn)(void *), void *args, size_t size, long n)
{
    if (n == 1) {
        bench_release();
        fn(args);
        return;
    }
    bench_spawn(fn, args, size, n);
    bench_release();
    bench_join();
}

/* Keep the compiler from proving a block unused (and eliding malloc/free). */
#define BENCH_ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

#endif
