/* RSS before and after a burst: allocate SIZE_MB MiB of BLOCK-byte blocks,
 * touch them, free them all, and report resident memory at each step (from
 * /proc/self/statm), then again after a short pause, so memory that the
 * allocator hands back to the OS after a delay shows up.
 *
 * Usage: rss_burst [SIZE_MB [BLOCK]]      (default 1024 MiB of 64-byte blocks)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double rss_mib(void)
{
    long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2)
        pages_resident = -1;
    if (f)
        fclose(f);
    return pages_resident * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    size_t block = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
    size_t n = (mb << 20) / block;
    void **blocks = calloc(n, sizeof *blocks); /* bookkeeping, counted too */
    if (!blocks)
        return 1;
    double before = rss_mib();
    for (size_t i = 0; i < n; i++) {
        blocks[i] = malloc(block);
        if (!blocks[i])
            return 1;
        memset(blocks[i], (int)i, block);
    }
    double peak = rss_mib();
    for (size_t i = 0; i < n; i++)
        free(blocks[i]);
    double after_free = rss_mib();
    /* Let delayed purging run: allocate and free a little, as a live
     * program would, across the purge delay. */
    for (int round = 0; round < 10; round++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        for (int i = 0; i < 1000; i++)
            free(malloc(64 + i));
    }
    double after_delay = rss_mib();
    free(blocks);
    printf("RESULT name=rss_burst size_mib=%zu block=%zu rss_before_mib=%.1f rss_peak_mib=%.1f "
           "rss_after_free_mib=%.1f rss_after_delay_mib=%.1f bookkeeping_mib=%.1f\n",
           mb, block, before, peak, after_free, after_delay, n * sizeof *blocks / 1048576.0);
    return 0;
}
