# mirs: build, test, benchmark, install.
#
#   make              libmirs.so + libmirs.a (libc names exported) and include/mirs.h
#   make test         every test: Rust (debug + release), loom models, C tests
#                     (static and LD_PRELOAD), real programs under LD_PRELOAD
#   make bench        benchmark table and charts vs glibc, C mimalloc, jemalloc
#                     (QUICK=1: one short run of each)
#   make install PREFIX=/usr/local

CARGO    ?= cargo
PREFIX   ?= /usr/local
FEATURES ?= override
RELEASE  := target/release
LIBS     := $(RELEASE)/libmirs.so $(RELEASE)/libmirs.a
LOOM_FLAGS := --cfg loom -Z tls-model=initial-exec

.PHONY: all libs header test test-rust test-loom test-c test-real lint \
        bench bench-peers bench-fastpath install clean

all: header

# The libraries, with the committed header refreshed from src/c_api.
header:
	MIRS_UPDATE_HEADER=1 $(CARGO) build --release --features $(FEATURES)

# The libraries without touching the committed header (what the tests use,
# so the header test compares against what is committed).
libs:
	$(CARGO) build --release --features $(FEATURES)

test: test-rust test-loom test-c test-real
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --lib
	$(CARGO) test --release --lib
	$(CARGO) build --no-default-features --features panic-handler --lib

test-loom:
	RUSTFLAGS="$(LOOM_FLAGS)" $(CARGO) test --release --lib loom

test-c: libs
	c_tests/run_c_tests.sh $(RELEASE)

test-real: libs
	c_tests/real_programs.sh $(RELEASE)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --lib --features $(FEATURES) -- -D warnings

# Benchmarks (bench/README.md).
bench-peers:
	bench/build_peers.sh

bench: libs bench-peers
	@python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet matplotlib \
	  || echo "bench: matplotlib could not be installed; charts will be skipped"
	python3 bench/run.py $(if $(QUICK),--quick)

bench-fastpath: libs bench-peers
	bench/fastpath_instr.sh

install: header
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(RELEASE)/libmirs.so $(DESTDIR)$(PREFIX)/lib/libmirs.so
	install -m 644 $(RELEASE)/libmirs.a $(DESTDIR)$(PREFIX)/lib/libmirs.a
	install -m 644 include/mirs.h $(DESTDIR)$(PREFIX)/include/mirs.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml)|' \
	  mirs.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/mirs.pc

clean:
	$(CARGO) clean
