# mirs: build, test, benchmark, install.
#
#   make              libmirs.so + libmirs.a (libc names exported) and include/mirs.h
#   make test         every test: Rust (debug + release), loom models, C tests
#                     (static and LD_PRELOAD), real programs under LD_PRELOAD,
#                     glibc's own malloc tests (test-glibc), embedded mode on
#                     the host (test-embedded)
#   make embedded     embedded libmirs.a for x86_64/riscv64/aarch64 bare metal
#   make bench        benchmark table and charts vs glibc, C mimalloc, jemalloc
#                     (QUICK=1: one short run of each)
#   make fuzz SECONDS=N   libFuzzer on the allocator for N seconds (fuzz/README.md;
#                     SECURE=1 with the secure feature)
#   make soak MINUTES=N   the stress workload under LD_PRELOAD for N minutes,
#                     RSS sampled into target/soak/rss.csv and rss.png
#   make install PREFIX=/usr/local

CARGO    ?= cargo
PREFIX   ?= /usr/local
FEATURES ?= override
RELEASE  := target/release
LIBS     := $(RELEASE)/libmirs.so $(RELEASE)/libmirs.a
LOOM_FLAGS := --cfg loom -Z tls-model=initial-exec
# The crate is an rlib for Rust users; the C libraries are built on request.
C_LIBS   := staticlib,cdylib

.PHONY: all libs libs-secure header test test-rust test-loom test-c test-real test-glibc lint \
        fuzz test-fuzz soak \
        bench bench-peers bench-fastpath install clean

all: header

# The libraries, with the committed header refreshed from src/c_api.
header:
	MIRS_UPDATE_HEADER=1 $(CARGO) rustc --release --lib --features $(FEATURES) --crate-type $(C_LIBS)

# The libraries without touching the committed header (what the tests use,
# so the header test compares against what is committed).
libs:
	$(CARGO) rustc --release --lib --features $(FEATURES) --crate-type $(C_LIBS)

test: test-rust test-loom test-c test-real test-glibc test-embedded test-fuzz
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --lib
	$(CARGO) test --release --lib
	$(CARGO) test --release --lib --features secure
	$(CARGO) build --no-default-features --features panic-handler --lib

# loom drives its threads with panics, so these tests unwind; a target dir of
# their own keeps the --cfg loom build from invalidating the normal one.
test-loom:
	CARGO_PROFILE_RELEASE_PANIC=unwind RUSTFLAGS="$(LOOM_FLAGS)" CARGO_TARGET_DIR=target/loom \
	  $(CARGO) test --release --lib loom

test-c: libs libs-secure
	MIRS_SECURE_LIBDIR=target/secure/release c_tests/run_c_tests.sh $(RELEASE)

test-real: libs
	c_tests/real_programs.sh $(RELEASE)

# glibc's malloc tests (malloc/tst-*.c and its support/ harness, from Debian's glibc
# source package, cached under target/glibc/) under glibc, mirs and mirs secure;
# compared with c_tests/glibc/expected.txt.
test-glibc: libs libs-secure
	c_tests/glibc/run_glibc_tests.sh $(RELEASE) target/secure/release

# Embedded mode (no `hosted`): libmirs.a for the bare-metal targets, with and
# without `override` (target/embedded/<target>/), each leaving undefined only
# the documented hooks; the rlib an embedder (ArceOS axlibc) depends on.
embedded:
	c_tests/embedded/build_targets.sh

# The embedded configuration on the host: a static region, the thread-id hook
# over pthreads (c_tests/embedded/harness.c), C tests and benchmarks at 1/2/4 threads.
test-embedded:
	OPTIONAL_TARGETS=1 c_tests/embedded/build_targets.sh
	c_tests/embedded/run_embedded_tests.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --lib --features $(FEATURES) -- -D warnings

# Benchmarks (bench/README.md).
bench-peers:
	bench/build_peers.sh

# The `secure` build, benchmarked beside the default one.
libs-secure:
	CARGO_TARGET_DIR=target/secure $(CARGO) rustc --release --lib --features $(FEATURES),secure --crate-type $(C_LIBS)

bench: libs libs-secure bench-peers
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

# Fuzzing (fuzz/README.md). `make fuzz SECONDS=N` runs libFuzzer (cargo-fuzz,
# `cargo install cargo-fuzz`); `make test-fuzz` runs a FUZZ_TEST_SECONDS pass
# when cargo-fuzz is installed, else the same programs (the corpus plus
# generated ones) through the deterministic driver. SECURE=1: with `secure`.
comma := ,
FUZZ_TEST_SECONDS ?= 60
FUZZ_FEATURES := libfuzzer$(if $(SECURE),$(comma)mirs/secure)

fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || \
	  { echo "make fuzz: cargo-fuzz is missing; install it with: cargo install cargo-fuzz"; exit 1; }
	cd fuzz && $(CARGO) fuzz run ops --features $(FUZZ_FEATURES) -- \
	  -max_total_time=$(or $(SECONDS),300) -max_len=4096 -detect_leaks=0 -print_final_stats=1

test-fuzz:
	@if $(CARGO) fuzz --version >/dev/null 2>&1; then \
	  echo "test-fuzz: cargo-fuzz found: a $(FUZZ_TEST_SECONDS) s libFuzzer pass"; \
	  cd fuzz && $(CARGO) fuzz run ops --features $(FUZZ_FEATURES) -- \
	    -max_total_time=$(FUZZ_TEST_SECONDS) -max_len=4096 -detect_leaks=0 -print_final_stats=1; \
	else \
	  echo "test-fuzz: no cargo-fuzz: the deterministic driver"; \
	  cd fuzz && $(CARGO) test --release $(if $(SECURE),--features mirs/secure); \
	fi

# Soak: c_tests/bench/stress.c under LD_PRELOAD for MINUTES minutes, RSS
# sampled every second (bench/soak.py): target/soak/rss.csv, rss.png, summary.
MINUTES ?= 10
SOAK_THREADS ?= 4

soak: libs
	@python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet matplotlib \
	  || echo "soak: matplotlib could not be installed; the plot will be skipped"
	python3 bench/soak.py --minutes $(MINUTES) --threads $(SOAK_THREADS) --lib $(RELEASE)/libmirs.so
