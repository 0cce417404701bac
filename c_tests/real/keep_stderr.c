/* keep_stderr.c: test helper for real_programs.sh, preloaded into coreutils programs.
 *
 * coreutils (sort, ...) close stderr in an atexit handler (gnulib close_stdout), so an
 * allocator printing statistics at exit finds fd 2 closed (EBADF) and nothing shows.
 * This interposes fclose: for stderr it only flushes, leaving fd 2 open for the
 * "mirs: served N blocks" line. Preloaded in both the plain and the mirs run.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

int fclose(FILE *stream) {
  static int (*real_fclose)(FILE *);
  if (stream == stderr) return fflush(stream);
  if (!real_fclose) *(void **)&real_fclose = dlsym(RTLD_NEXT, "fclose");
  return real_fclose(stream);
}
