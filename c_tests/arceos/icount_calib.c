/* The guest clock under QEMU `-icount shift=0` (make bench-arceos): how many
 * guest instructions one nanosecond of the ArceOS clock stands for.
 *
 * QEMU advances its virtual clock one nanosecond per instruction executed by
 * any vCPU (they run in turn on one host thread), but ArceOS converts its
 * clock source at its own idea of the frequency (x86_64: TSC ticks / 4), so
 * the ratio is measured here: two spin loops of a known instruction count
 * (`dec; jnz`: 2 per round), the short one's time subtracted from the long
 * one's so clock_gettime's own cost cancels. arceos.py multiplies the bench's
 * guest seconds by this ratio. */
#include <stdio.h>
#include <time.h>

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long spin_ns(unsigned long rounds)
{
    long long t0 = now_ns();
#if defined(__x86_64__)
    __asm__ volatile("1: dec %0; jnz 1b" : "+r"(rounds));
#elif defined(__riscv)
    __asm__ volatile("1: addi %0, %0, -1; bnez %0, 1b" : "+r"(rounds));
#elif defined(__aarch64__)
    __asm__ volatile("1: subs %0, %0, #1; b.ne 1b" : "+r"(rounds) : : "cc");
#else
#error "icount_calib: no spin loop for this architecture"
#endif
    return now_ns() - t0;
}

int main(void)
{
    const unsigned long short_rounds = 50000000, long_rounds = 150000000;
    long long a = spin_ns(short_rounds), b = spin_ns(long_rounds);
    /* Printed as integers (no floats needed): instructions and nanoseconds. */
    printf("icount_calib: %lu instructions in %lld guest ns\n", 2 * (long_rounds - short_rounds), b - a);
    return 0;
}
