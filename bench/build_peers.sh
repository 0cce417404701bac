#!/bin/sh
# Build the LD_PRELOAD peer allocators (C mimalloc v3, v2, jemalloc) from
# registry crates into target/bench-peers/lib/lib<peer>.so.
# A peer that fails to build is reported and skipped; bench/run.py then
# benchmarks whatever is present.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$root/target/bench-peers"
mkdir -p "$out/lib"
for peer in mimalloc-v3:mimalloc mimalloc-v2:mimalloc-v2 jemalloc:jemalloc; do
    name=${peer%%:*}
    feature=${peer#*:}
    echo "bench: building peer $name" >&2
    if cargo build --quiet --release --manifest-path "$here/peers/Cargo.toml" \
        --no-default-features --features "$feature" \
        --target-dir "$out/$name" ; then
        cp "$out/$name/release/libmirs_bench_peer.so" "$out/lib/lib$name.so"
    else
        echo "bench: peer $name failed to build; it will be skipped" >&2
        rm -f "$out/lib/lib$name.so"
    fi
done
# Missing peers are not fatal for `make bench`.
exit 0
