#!/usr/bin/env bash
# make install as a distribution packager runs it: into a staging tree
# (DESTDIR) with PREFIX=/usr and Debian's multiarch LIBDIR, after `make`
# built the libraries. Checks: the installed file list, the SONAME and the
# versioned links, that install compiles nothing (run twice, with cargo and
# the C compiler replaced by failing stubs), a C program built with
# pkg-config against the staged tree (header version macros, mirs_version,
# malloc bound to libmirs) runs, and make uninstall leaves no file behind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# pkg-config on PATH, installed through apt-get when missing (tools/prereqs.py);
# when it cannot be: one SKIP line.
rc=0
python3 tools/prereqs.py ensure --suite test-install pkg-config || rc=$?
case $rc in 0) ;; 3) exit 0 ;; *) exit 1 ;; esac
STAGE=$ROOT/target/install-test
rm -rf "$STAGE"
mkdir -p "$STAGE/bin"
LIBDIR=/usr/lib/x86_64-linux-gnu
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml)
MAJOR=${VERSION%%.*}
failed=0
fail() {
  echo "FAIL test-install: $*"
  failed=$((failed + 1))
}

# Stubs that fail loudly if install tries to compile anything.
for tool in cargo rustc cc gcc; do
  printf '#!/bin/sh\necho "%s invoked by make install" >&2\nexit 99\n' "$tool" >"$STAGE/bin/$tool"
  chmod +x "$STAGE/bin/$tool"
done
args=(DESTDIR="$STAGE/root" PREFIX=/usr LIBDIR=$LIBDIR)
for run in 1 2; do
  if ! PATH="$STAGE/bin:$PATH" make --no-print-directory install "${args[@]}" CARGO="$STAGE/bin/cargo" \
    >"$STAGE/install$run.log" 2>&1; then
    cat "$STAGE/install$run.log"
    fail "make install (run $run) failed"
  fi
  if grep -q "invoked by make install" "$STAGE/install$run.log"; then
    fail "make install (run $run) invoked a compiler"
  fi
done
echo "test-install: make install run twice, no compiler invoked"

expected="usr/include/mirs.h
usr/lib/x86_64-linux-gnu/libmirs.a
usr/lib/x86_64-linux-gnu/libmirs.so -> libmirs.so.$MAJOR
usr/lib/x86_64-linux-gnu/libmirs.so.$MAJOR -> libmirs.so.$VERSION
usr/lib/x86_64-linux-gnu/libmirs.so.$VERSION
usr/lib/x86_64-linux-gnu/pkgconfig/mirs.pc
usr/share/man/man3/mirs.3"
actual=$(cd "$STAGE/root" && find . \( -type f -printf '%P\n' \) -o \( -type l -printf '%P -> %l\n' \) | sort)
echo "test-install: installed files:"
sed 's/^/  /' <<<"$actual"
[[ $actual == "$expected" ]] || fail "installed file list differs from: $expected"

so=$STAGE/root$LIBDIR/libmirs.so.$VERSION
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == "libmirs.so.$MAJOR" ]] || fail "SONAME is '$soname', not libmirs.so.$MAJOR"
echo "test-install: SONAME $soname"

# A C program built with pkg-config against the staged tree.
cat >"$STAGE/prog.c" <<'EOF'
#include <mirs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  if (mirs_version() != MIRS_VERSION) {
    printf("header %d, library %d\n", MIRS_VERSION, mirs_version());
    return 1;
  }
  char *p = malloc(100);
  if (!p || !mirs_owns(p)) return 2; /* malloc is mirs's */
  strcpy(p, "hello from mirs");
  puts(p);
  free(p);
  return 0;
}
EOF
export PKG_CONFIG_SYSROOT_DIR=$STAGE/root
export PKG_CONFIG_LIBDIR=$STAGE/root$LIBDIR/pkgconfig
flags=$(pkg-config --cflags --libs mirs)
echo "test-install: pkg-config --cflags --libs mirs: $flags"
# shellcheck disable=SC2086
if ! cc -o "$STAGE/prog" "$STAGE/prog.c" $flags; then
  fail "build against the staged tree"
else
  needed=$(readelf -d "$STAGE/prog" | sed -n 's/.*(NEEDED).*\[\(libmirs.*\)\]/\1/p')
  [[ $needed == "libmirs.so.$MAJOR" ]] || fail "the program records '$needed', not libmirs.so.$MAJOR"
  out=$(LD_LIBRARY_PATH=$STAGE/root$LIBDIR "$STAGE/prog") || fail "the program failed: $out"
  [[ $out == "hello from mirs" ]] || fail "program output: $out"
fi

make --no-print-directory uninstall "${args[@]}" >"$STAGE/uninstall.log" 2>&1 || fail "make uninstall"
left=$(cd "$STAGE/root" && find . \( -type f -o -type l \) -printf '%P\n')
[[ -z $left ]] || fail "make uninstall left: $left"

if ((failed)); then
  echo "test-install: $failed failed"
  exit 1
fi
echo "test-install: passed"
