#!/bin/sh
# bench/thread_storm.sh [ROUNDS=3] [THREADS=256] [GENERATIONS=8192] [OPS=2000]
#
# Issue 20's lock-convoy pattern: c_tests/bench/thread_storm.c (THREADS
# short-lived threads at once passing blocks between them, GENERATIONS
# threads in all) under glibc, mirs (target/release/libmirs.so, or
# MIRS_LIB_DIR) and the peers bench/build_peers.sh built, alternated round
# by round. Prints one line per run: wall seconds, system seconds and peak
# RSS (KiB) from /usr/bin/time -f "%e %S %M", then the medians.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
threads=${2:-256}
generations=${3:-8192}
ops=${4:-2000}
mirs=${MIRS_LIB_DIR:-$root/target/release}/libmirs.so
peers="$root/target/bench-peers/lib"
bin="$root/target/bench/bin/thread_storm"
mkdir -p "$(dirname "$bin")"
${CC:-cc} -O2 -Wall -Wextra -pthread -o "$bin" "$root/c_tests/bench/thread_storm.c" || exit 1
libs="glibc $mirs"
for p in mimalloc-v3 mimalloc-v2 jemalloc; do
    [ -f "$peers/lib$p.so" ] && libs="$libs $peers/lib$p.so"
done
out=$(mktemp)
echo "thread_storm $threads threads, $generations generations, $ops ops each; wall s, sys s, peak KiB"
for r in $(seq "$rounds"); do
    for lib in $libs; do
        name=$(basename "$lib" .so | sed 's/^lib//')
        pre=$lib
        [ "$lib" = glibc ] && pre=
        line=$(LD_PRELOAD=$pre /usr/bin/time -f "TIME %e %S %M" "$bin" "$threads" "$generations" "$ops" 2>&1 >/dev/null | grep '^TIME')
        echo "$r $name ${line#TIME }" | tee -a "$out"
    done
done
echo "medians:"
for lib in $libs; do
    name=$(basename "$lib" .so | sed 's/^lib//')
    awk -v n="$name" '$2 == n { w[++k] = $3; s[k] = $4; m[k] = $5 }
        function med(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((k + 1) / 2)] }
        END { if (k) printf "%-12s wall %6.2f s  sys %6.2f s  peak %8d KiB\n", n, med(w, k), med(s, k), med(m, k) }' "$out"
done
rm -f "$out"
