#!/usr/bin/env bash
# build_targets.sh: the embedded libmirs.a (no `hosted`) for the bare-metal targets,
# with and without `override`, and the check that each leaves undefined only the
# documented hooks (mirs_hook_thread_id, mirs_hook_write) and __errno_location,
# and that mirs's own objects refer to no float or 128-bit helper (no_float.sh).
# Also builds the rlib an embedder such as ArceOS's axlibc depends on (no panic
# handler, no static region) and the thread-local variant.
#
# Output: target/embedded/<target>/<plain|override|thread-local>/libmirs.a, and per library the
# `nm -u` line (undefined symbols no member of the archive defines).
# Environment: CARGO, TARGETS (default: the three below), MIRS_STATIC_REGION_MB.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CARGO=${CARGO:-cargo}
TARGETS=${TARGETS:-"x86_64-unknown-none riscv64gc-unknown-none-elf aarch64-unknown-none"}
ALLOWED="__errno_location mirs_hook_thread_id mirs_hook_write"
OUT=$ROOT/target/embedded
cd "$ROOT"
failed=0

# Targets come from rustup, through tools/prereqs.py (target:<triple>: the
# target's libcore in the nightly's sysroot, which is what rustc loads). Where
# rustup cannot download them (an offline machine), `make embedded` fails,
# while `make test` (OPTIONAL_TARGETS=1) says so and skips the cross builds:
# the host-simulated tests still run.
available=""
for t in $TARGETS; do
  if [[ ${OPTIONAL_TARGETS:-0} == 1 ]]; then
    python3 tools/prereqs.py ensure --suite "test-embedded ($t)" "target:$t" || continue
  elif ! python3 tools/prereqs.py ensure --fail --suite "embedded ($t)" "target:$t"; then
    failed=1
    continue
  fi
  available="$available $t"
done

for t in $available; do
  for variant in plain override thread-local; do
    features=static-region,panic-handler
    [[ $variant == plain ]] || features=$features,$variant
    log=$OUT/$t/$variant/build.log
    mkdir -p "$OUT/$t/$variant"
    # One target directory per variant: switching features would rebuild.
    tdir=$OUT/cargo-$variant
    if ! $CARGO rustc --quiet --release --lib --target "$t" --no-default-features \
      --features "$features" --crate-type staticlib --target-dir "$tdir" >"$log" 2>&1; then
      echo "FAIL build $t ($features)"
      tail -20 "$log" | sed 's/^/    /'
      failed=1
      continue
    fi
    lib=$OUT/$t/$variant/libmirs.a
    cp "$tdir/$t/release/libmirs.a" "$lib"
    undefined=$("$ROOT/c_tests/embedded/undefined_symbols.sh" "$lib" | tr '\n' ' ' | sed 's/ $//')
    extra=$(comm -23 <(tr ' ' '\n' <<<"$undefined" | sed '/^$/d' | sort) <(tr ' ' '\n' <<<"$ALLOWED" | sort))
    if [[ -n $extra ]]; then
      echo "FAIL $t $variant: undefined beyond the hooks: $extra"
      failed=1
    else
      printf 'ok   %-28s %-12s nm -u: %s\n' "$t" "$variant" "$undefined"
    fi
    # No float or 128-bit helper in mirs's own objects (integer-only statistics).
    if ! "$ROOT/c_tests/embedded/no_float.sh" "$lib"; then
      echo "FAIL $t $variant: float or 128-bit helpers referenced"
      failed=1
    fi
  done
  # What an embedder's Cargo build uses: the rlib, no panic handler, no static
  # region; and the thread-local variant.
  for features in "" thread-local; do
    if ! $CARGO build --quiet --release --lib --target "$t" --no-default-features \
      ${features:+--features "$features"} --target-dir "$OUT/cargo-rlib-${features:-none}" \
      >"$OUT/$t/rlib.log" 2>&1; then
      echo "FAIL rlib $t (features: ${features:-none})"
      tail -20 "$OUT/$t/rlib.log" | sed 's/^/    /'
      failed=1
    else
      printf 'ok   %-28s rlib (features: %s)\n' "$t" "${features:-none}"
    fi
  done
done
exit $failed
