/* main_wrapper.c: gives a benchmark program (compiled with -Dmain=bench_main) the
 * test summary line: it passes when it returns 0 (its own checks abort the process). */
#include <stdio.h>

int bench_main(int argc, char **argv);

int main(int argc, char **argv)
{
    int rc = bench_main(argc, argv);
    printf("%d passed, %d failed\n", rc == 0, rc != 0);
    return rc;
}
