#!/usr/bin/env bash
# undefined_symbols.sh LIB.a: the symbols LIB.a needs from outside, one per line:
# what `nm -u` lists minus what another member of the archive defines (the Rust
# objects refer to memcpy, __divti3, ... that compiler_builtins defines, weak).
# readelf, not nm: binutils' nm shows no symbols for compiler_builtins' objects.
set -euo pipefail
readelf -sW "$1" 2>/dev/null | awk '
  $1 ~ /^[0-9]+:$/ && NF >= 8 && $8 != "" {
    if ($7 == "UND") undef[$8] = 1
    else if ($5 == "GLOBAL" || $5 == "WEAK") def[$8] = 1
  }
  END { for (s in undef) if (!(s in def)) print s }' | sort
