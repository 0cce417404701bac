#!/bin/sh
# Build the LD_PRELOAD peer allocators into target/bench-peers/lib/:
#
#   libmimalloc-v3.so, libmimalloc-v2.so  C mimalloc compiled with cc from the
#       C sources that the registry crate libmimalloc-sys ships
#       (c_src/mimalloc/v3 and v2), as mimalloc's own CMake builds its shared
#       override library: src/static.c with MI_MALLOC_OVERRIDE, MI_SHARED_LIB,
#       -fvisibility=hidden, initial-exec TLS. `malloc` & co. are mimalloc's own
#       exported definitions (no forwarding shim).
#   libjemalloc.so  jemalloc from tikv-jemalloc-sys built unprefixed (it
#       defines `malloc` itself); its libjemalloc_pic.a linked whole into a
#       shared object.
#
# bench/peers/ is only the Cargo manifest that pins (and fetches) those two
# crates. A peer that fails to build is reported and skipped; bench/run.py
# then benchmarks whatever is present. Each library is checked with `nm -D`
# to define `malloc` and `free`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$root/target/bench-peers"
manifest="$here/peers/Cargo.toml"
CC=${CC:-cc}
mkdir -p "$out/lib"

# cc, make (jemalloc's build) and nm on PATH, installed through apt-get when
# missing (tools/prereqs.py); without them: one SKIP line, no peers.
python3 "$root/tools/prereqs.py" ensure --suite bench-peers peer-tools || exit 0

# check_exports LIB: malloc and free defined (T/W/i) in the dynamic symbol table.
check_exports() {
    for s in malloc free calloc realloc posix_memalign malloc_usable_size; do
        if ! nm -D --defined-only "$1" | awk -v s="$s" '$3 == s { f = 1 } END { exit !f }'; then
            echo "bench: $1 does not define $s" >&2
            return 1
        fi
    done
    echo "bench: $(basename "$1"): malloc defined: $(nm -D --defined-only "$1" | awk '$3 == "malloc" { print $1, $2, $3 }')" >&2
}

if ! cargo fetch --quiet --manifest-path "$manifest"; then
    echo "bench: cargo fetch failed; peers that need registry sources are skipped" >&2
fi
# The crate's source directory in the cargo registry (from cargo metadata).
crate_dir() {
    cargo metadata --quiet --all-features --format-version 1 --manifest-path "$manifest" 2>/dev/null |
        python3 -c 'import json, os, sys
name = sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == name:
        print(os.path.dirname(p["manifest_path"]))
        break' "$1"
}

mi_dir=$(crate_dir libmimalloc-sys)
for v in v3 v2; do
    lib="$out/lib/libmimalloc-$v.so"
    src="$mi_dir/c_src/mimalloc/$v"
    rm -f "$lib"
    if [ -z "$mi_dir" ] || [ ! -f "$src/src/static.c" ]; then
        echo "bench: peer mimalloc-$v skipped: libmimalloc-sys sources not found" >&2
        continue
    fi
    echo "bench: building peer mimalloc-$v from $src" >&2
    if $CC -shared -fPIC -O3 -DNDEBUG -DMI_BUILD_RELEASE -DMI_DEBUG=0 \
        -DMI_MALLOC_OVERRIDE -DMI_SHARED_LIB -DMI_SHARED_LIB_EXPORT \
        -fvisibility=hidden -ftls-model=initial-exec -fno-builtin-malloc \
        -Wno-error=date-time -I "$src/include" -I "$src/src" \
        -o "$lib" "$src/src/static.c" -lpthread -lrt -latomic 2>"$out/mimalloc-$v.log" &&
        check_exports "$lib"; then
        :
    else
        echo "bench: peer mimalloc-$v failed to build; it will be skipped ($(tail -3 "$out/mimalloc-$v.log"))" >&2
        rm -f "$lib"
    fi
done

lib="$out/lib/libjemalloc.so"
rm -f "$lib"
echo "bench: building peer jemalloc (tikv-jemalloc-sys, unprefixed)" >&2
if cargo build --quiet --release --manifest-path "$manifest" --features jemalloc \
    --target-dir "$out/jemalloc"; then
    pic=$(find "$out/jemalloc/release/build" -name libjemalloc_pic.a | head -1)
    if [ -n "$pic" ] && $CC -shared -o "$lib" -Wl,--whole-archive "$pic" -Wl,--no-whole-archive \
        -lpthread -ldl -lm 2>"$out/jemalloc.log" && check_exports "$lib"; then
        :
    else
        echo "bench: peer jemalloc: linking ${pic:-libjemalloc_pic.a} failed; it will be skipped" >&2
        rm -f "$lib"
    fi
else
    echo "bench: peer jemalloc failed to build; it will be skipped" >&2
fi
# Missing peers are not fatal for `make bench`.
exit 0
