#!/usr/bin/env bash
# The library's own tests (src/tests, unit tests) on stable Rust with the
# default features. On nightly, `-Z panic-abort-tests` runs every test in a
# process of its own; the suite relies on that (out-of-memory injection is
# process-wide, some tests need a fresh process, RSS is measured per
# process), so here each test gets its own run of the test binary too.
# Extra arguments go to `cargo test` (e.g. --release).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
# .cargo/config.toml passes a nightly-only flag (-Z tls-model) for the C
# libraries; an explicit empty RUSTFLAGS replaces it.
export RUSTFLAGS=
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/stable}

bin=$($CARGO +stable test --lib --no-run --message-format=json "$@" |
  grep -o '"executable":"[^"]*"' | head -n 1 | cut -d'"' -f4)
[[ -x $bin ]] || { echo "stable tests: no test binary built"; exit 1; }

tests=$("$bin" --list --format=terse | sed -n 's/: test$//p')
passed=0
failed=()
for t in $tests; do
  if "$bin" --exact "$t" --test-threads=1 >"$CARGO_TARGET_DIR/last-test.log" 2>&1; then
    passed=$((passed + 1))
  else
    failed+=("$t")
    cat "$CARGO_TARGET_DIR/last-test.log"
  fi
done
echo "stable tests ($*): $passed passed, ${#failed[@]} failed${failed:+: ${failed[*]}}"
((${#failed[@]} == 0))
