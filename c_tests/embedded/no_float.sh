#!/usr/bin/env bash
# no_float.sh LIB.a: fails when the archive's own objects (mirs's, not the
# compiler_builtins members that come with every staticlib) refer to a
# soft-float or 128-bit arithmetic helper (__floatdidf, __muldf3, __udivti3,
# __multi3, ...): the allocator uses no floats and no 128-bit integers, so a
# bare-metal target without an FPU links it without them. Prints the
# offending symbols.
set -euo pipefail
lib=$(realpath "$1")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
members=$(ar t "$lib" | grep '^mirs-' || true)
if [[ -z $members ]]; then
  echo "no_float: no mirs object in $lib"
  exit 1
fi
(cd "$dir" && ar x "$lib" $members)
# Undefined names of the form __<op><type>..., type sf/df/tf/xf/hf (float)
# or ti (128-bit integer): __floatdidf, __adddf3, __fixunsdfdi, __divti3, __multi3.
bad=$(cd "$dir" && readelf -sW $members 2>/dev/null |
  awk '$7 == "UND" && $8 != "" { print $8 }' |
  grep -E '^__[a-z]*(sf|df|tf|xf|hf|ti)[a-z0-9]*$' | sort -u || true)
if [[ -n $bad ]]; then
  echo "no_float: $lib refers to float/128-bit helpers:" $bad
  exit 1
fi
