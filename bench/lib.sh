# bench/lib.sh: what the shell benchmarks share (fail_instr.sh, fastpath_instr.sh,
# realloc_grow.sh source it; POSIX sh).
#
#   root bin peers mirs_so   the repository, target/bench/bin (created), the
#                            libraries of bench/build_peers.sh, target/release/libmirs.so
#   tmp                      a directory removed at exit
#   need_valgrind SUITE      valgrind on PATH, installed through apt-get when missing
#                            (tools/prereqs.py); else one FAIL line and exit 1
#   per_iter PRELOAD PROGRAM [ARGS...]
#                            instructions per loop iteration of PROGRAM N ARGS...:
#                            (Ir(N2) - Ir(N1)) / (N2 - N1) under callgrind, so start-up
#                            and exit cancel; printed with PER_ITER_FORMAT ("%.1f")
#   minus A B                A - B, printed as per_iter prints
#   if_mirs ROW ARGS...      ROW ARGS... when mirs_so exists, else the line saying why not
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/bench/bin"
peers="$root/target/bench-peers/lib"
mirs_so="$root/target/release/libmirs.so"
mkdir -p "$bin"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PER_ITER_FORMAT=${PER_ITER_FORMAT:-%.1f}

need_valgrind() {
    python3 "$root/tools/prereqs.py" ensure --fail --suite "$1" valgrind || exit 1
}

# ir PRELOAD PROGRAM ARGS...: total instructions of one run under callgrind.
ir() {
    pre=$1; shift
    out="$tmp/cg.out"
    if ! LD_PRELOAD="$pre" timeout 300 valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$@" >/dev/null 2>"$tmp/cg.err"; then
        # The program's own last word (not valgrind's `==pid==` lines) says
        # why, e.g. huge_fail: a peer whose malloc(1 << 46) succeeds.
        why=$(grep -v '^==' "$tmp/cg.err" | tail -1)
        echo "$(basename "$0" .sh): $* exited non-zero under callgrind: ${why:-$(tail -3 "$tmp/cg.err")}" >&2
        return 1
    fi
    # The profile's "summary:" (or "totals:") line holds the total Ir.
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

per_iter() {
    pre=$1; prog=$2; shift 2
    a=$(ir "$pre" "$prog" "$N1" "$@") || return 1
    b=$(ir "$pre" "$prog" "$N2" "$@") || return 1
    awk -v a="$a" -v b="$b" -v n1="$N1" -v n2="$N2" -v f="$PER_ITER_FORMAT" \
        'BEGIN { printf f, (b - a) / (n2 - n1) }'
}

minus() {
    awk -v a="$1" -v b="$2" -v f="$PER_ITER_FORMAT" 'BEGIN { printf f, a - b }'
}

if_mirs() {
    if [ -f "$mirs_so" ]; then "$@"; else echo "mirs: skipped ($mirs_so missing; make libs)"; fi
}
