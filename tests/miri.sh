#!/usr/bin/env bash
# Miri over the single-threaded core: src/tests/embedded.rs (the embedded
# platform on a fake embedder: memory from one System allocation, a
# counter for a clock, threads numbered from 1), `cargo miri test` on the
# tests named `embedded_*`, without and with `secure`. Installs the pinned nightly's miri and rust-src
# through rustup (tools/prereqs.py) and builds Miri's sysroot (`cargo miri setup`, which
# fetches the standard library's dependencies from crates.io) when needed;
# prints one `SKIP test-miri: <reason>` line and succeeds when any of that
# is impossible. Undefined behaviour or a failing test fails the suite.
set -uo pipefail
cd "$(dirname "$0")/.."

# Pinned, so a new nightly's Miri cannot break the suite: tools/prereqs.py's
# PINNED, the toolchain the ArceOS suite builds with too.
TOOLCHAIN=${MIRI_TOOLCHAIN:-$(sed -n 's/^PINNED = "\(.*\)"$/\1/p' tools/prereqs.py)}
CARGO=${CARGO:-cargo}
start=$(date +%s)

skip() {
  echo "SKIP test-miri: $*"
  exit 0
}

# The toolchain, its miri and rust-src: tools/prereqs.py checks what is used
# here (`cargo +TOOLCHAIN miri`, the sysroot's library sources) and installs
# what is missing through rustup, or prints the SKIP line (status 3).
MIRI_TOOLCHAIN=$TOOLCHAIN python3 tools/prereqs.py ensure --suite test-miri miri
case $? in 0) ;; 3) exit 0 ;; *) exit 1 ;; esac
mkdir -p target
"$CARGO" "+$TOOLCHAIN" miri setup >target/miri-setup.log 2>&1 ||
  skip "cargo miri setup could not build Miri's sysroot: $(grep -m1 -E '^error' target/miri-setup.log ||
    tail -n 1 target/miri-setup.log) (log: target/miri-setup.log)"
ready=$(date +%s)
echo "test-miri: $TOOLCHAIN's Miri ready in $((ready - start)) s"

# -Zmiri-permissive-provenance: mirs turns integers into pointers by
#   design (a pointer masked to its 4 MiB chunk finds the chunk header, the
#   embedded region bitmap hands out addresses, the tagged stack packs a
#   pointer and a counter into one word). Miri follows such pointers with
#   the provenance of whatever was exposed there (its default), and this
#   flag only silences the warning it prints at each cast.
# Isolation stays on (no host clock, files or environment: the tests need
# none), and leaks are checked (the region is held by a static).
# Unwinding, not the profile's abort: under `panic-abort-tests` the test
# harness runs each test in a child process, which Miri cannot spawn.
export MIRIFLAGS="-Zmiri-permissive-provenance ${MIRIFLAGS:-}"
export CARGO_PROFILE_DEV_PANIC=unwind
# The default build, then `secure` (encoded free-list links, random carving
# order): both are single-threaded code paths of the same core.
rc=0
for features in "" secure; do
  echo "test-miri: features: ${features:-(none)}"
  "$CARGO" "+$TOOLCHAIN" miri test --no-default-features ${features:+--features "$features"} \
    --lib embedded_ -- --test-threads=1 || rc=1
done
echo "test-miri: $(($(date +%s) - ready)) s under Miri, $(($(date +%s) - start)) s in all"
exit $rc
