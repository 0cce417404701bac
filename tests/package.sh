#!/usr/bin/env bash
# The crate as `cargo publish` would upload it: the file list (the library,
# its build script and header, README, CHANGELOG, LICENSE; no benchmarks,
# C tests or charts), then `cargo publish --dry-run`, which packages the
# crate and builds it from the package, with stable Rust and default
# features, as a user would (nightly when stable is missing). Without
# network access to the registry index it falls back to
# `cargo package --offline` (the same build from the package, no index).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
if $CARGO +stable --version >/dev/null 2>&1; then
  # The empty RUSTFLAGS replaces .cargo/config.toml's nightly-only flag.
  run=(env RUSTFLAGS= "$CARGO" +stable)
else
  run=("$CARGO")
fi
export CARGO_TARGET_DIR=target/package-check
list=$("${run[@]}" package --list --allow-dirty --offline)
echo "test-package: files in the package:" $list
for f in Cargo.toml build.rs src/lib.rs src/report.rs include/mirs.h README.md CHANGELOG.md LICENSE; do
  grep -qx "$f" <<<"$list" || { echo "FAIL test-package: $f is not in the package"; exit 1; }
done
if grep -E '^(bench|c_tests|fuzz|docs|tests)/' <<<"$list"; then
  echo "FAIL test-package: the package holds benchmarks, tests or docs"
  exit 1
fi
if "${run[@]}" publish --dry-run --allow-dirty >target/package-check.log 2>&1; then
  echo "test-package: cargo publish --dry-run passed"
elif grep -qiE 'index|network|resolve|download|failed to (get|update|query)' target/package-check.log; then
  tail -5 target/package-check.log
  echo "test-package: the registry index is unreachable: cargo package --offline instead"
  "${run[@]}" package --offline --allow-dirty
else
  cat target/package-check.log
  echo "FAIL test-package: cargo publish --dry-run"
  exit 1
fi
