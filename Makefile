# mirs: build, test, benchmark, install.
#
#   make              libmirs.so + libmirs.a (libc names exported) and include/mirs.h
#   make test         every test: Rust (debug + release, nightly and stable, the
#                     #[global_allocator] test crate), loom models, C tests
#                     (static and LD_PRELOAD), real programs under LD_PRELOAD,
#                     memory retention vs glibc (test-retention), glibc's own
#                     malloc tests (test-glibc), embedded mode on the host
#                     (test-embedded), Miri over the embedded core (test-miri)
#                     and ArceOS in QEMU (test-arceos)
#   make embedded     embedded libmirs.a for x86_64/riscv64/aarch64 bare metal
#   make test-arceos  ArceOS unikernels, axlibc switched to mirs, booted in QEMU
#                     (ARCEOS_APPS="stress" or "stress:mirs": just those)
#   make bench-arceos bench_malloc_thread in ArceOS, stock axlibc vs mirs
#                     (ARCEOS_RUNS=N runs each, median; default 5)
#   make bench        benchmark table and charts vs glibc, C mimalloc, jemalloc
#                     (QUICK=1: one short run of each), and the Rust
#                     #[global_allocator] benchmark (bench-rust)
#   make fuzz SECONDS=N   libFuzzer on the allocator for N seconds (fuzz/README.md;
#                     SECURE=1 with the secure feature)
#   make soak MINUTES=N   the stress workload under LD_PRELOAD for N minutes,
#                     RSS sampled into target/soak/rss.csv and rss.png
#   make install PREFIX=/usr/local

CARGO    ?= cargo
PREFIX   ?= /usr/local
FEATURES ?= override
# The C libraries (nightly): the heap pointer in an initial-exec
# `#[thread_local]` (no std), and a panic handler of their own.
LIB_FEATURES := $(FEATURES),thread-local,panic-handler
# Stable Rust, for what a Rust user builds (default features). The empty
# RUSTFLAGS replaces .cargo/config.toml's nightly-only `-Z tls-model`.
STABLE   := RUSTFLAGS= $(CARGO) +stable
HAVE_STABLE = $(shell $(CARGO) +stable --version >/dev/null 2>&1 && echo yes)
RELEASE  := target/release
LIBS     := $(RELEASE)/libmirs.so $(RELEASE)/libmirs.a
LOOM_FLAGS := --cfg loom -Z tls-model=initial-exec
# The crate is an rlib for Rust users; the C libraries are built on request.
C_LIBS   := staticlib,cdylib

.PHONY: all libs libs-secure header test test-rust test-stable test-loom test-c test-real test-retention test-glibc test-miri lint \
        fuzz test-fuzz soak \
        test-embedded embedded test-arceos bench-arceos \
        bench bench-peers bench-fastpath bench-storm bench-rust install clean

all: header

# The libraries, with the committed header refreshed from src/c_api.
header:
	MIRS_UPDATE_HEADER=1 $(CARGO) rustc --release --lib --features $(LIB_FEATURES),header --crate-type $(C_LIBS)

# The libraries without touching the committed header (what the tests use,
# so the header test compares against what is committed).
libs:
	$(CARGO) rustc --release --lib --features $(LIB_FEATURES) --crate-type $(C_LIBS)

test: test-rust test-stable test-loom test-c test-real test-retention test-glibc test-embedded test-miri test-fuzz test-arceos
	@echo "make test: all suites passed"

# Nightly: the default features (std's thread_local!) with the header check,
# then the C libraries' configuration (#[thread_local]), plain and secure;
# the embedded core on a fake embedder (src/tests_embedded.rs, as test-miri).
test-rust:
	$(CARGO) test --lib --features header
	$(CARGO) test --release --lib --features thread-local
	$(CARGO) test --release --lib --features thread-local,secure
	$(CARGO) build --no-default-features --features panic-handler --lib
	$(CARGO) test --no-default-features --lib

# Stable: what a Rust user gets. The library's own tests (one process per
# test, tests/stable_lib_tests.sh), a std program with mirs::Mirs as its
# #[global_allocator] (tests/global_alloc, debug and release), and the
# embedded rlib.
test-stable:
ifeq ($(HAVE_STABLE),yes)
	CARGO="$(CARGO)" tests/stable_lib_tests.sh
	cd tests/global_alloc && CARGO_TARGET_DIR=../../target/stable-global-alloc $(STABLE) test
	cd tests/global_alloc && CARGO_TARGET_DIR=../../target/stable-global-alloc $(STABLE) test --release
	CARGO_TARGET_DIR=target/stable $(STABLE) build --lib --no-default-features
else
	@echo "SKIP test-stable: no stable Rust toolchain (rustup toolchain install stable)"
endif

# loom drives its threads with panics, so these tests unwind; a target dir of
# their own keeps the --cfg loom build from invalidating the normal one.
test-loom:
	CARGO_PROFILE_RELEASE_PANIC=unwind RUSTFLAGS="$(LOOM_FLAGS)" CARGO_TARGET_DIR=target/loom \
	  $(CARGO) test --release --lib loom

test-c: libs libs-secure
	MIRS_SECURE_LIBDIR=target/secure/release c_tests/run_c_tests.sh $(RELEASE)

test-real: libs
	c_tests/real_programs.sh $(RELEASE)

# Memory retention (issue 9's patterns): RSS after everything is freed, peak
# RSS and malloc-large page faults under LD_PRELOAD of libmirs.so, asserted
# against glibc's figures from the same run (c_tests/retention/run_retention.sh);
# C mimalloc / jemalloc are shown too when bench/build_peers.sh has built them.
test-retention: libs
	c_tests/retention/run_retention.sh $(RELEASE)

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

# Miri (undefined behaviour: aliasing, provenance, uninitialised reads, leaks)
# over the single-threaded core, on the embedded platform driven by a fake
# embedder (src/tests_embedded.rs: memory from one System allocation, a
# counter for a clock). tests/miri.sh installs the pinned nightly's miri
# through rustup; prints `SKIP test-miri: <reason>` when it cannot.
test-miri:
	CARGO="$(CARGO)" tests/miri.sh

# ArceOS (docs/arceos.md): the published ArceOS crates fetched by cargo,
# axlibc switched to mirs by c_tests/arceos/switch_axlibc.py (over the glue
# crate arceos-glue/), C apps booted in QEMU (TCG, SMP=2, 128 MiB); all
# cached under target/arceos/. Prints `SKIP test-arceos: <reason>` when the
# pinned toolchain or QEMU cannot be installed.
test-arceos:
	python3 c_tests/arceos/arceos.py test $(ARCEOS_APPS)

bench-arceos:
	python3 c_tests/arceos/arceos.py bench --runs $(or $(ARCEOS_RUNS),5)

lint:
	python3 tools/module_graph.py
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path tests/global_alloc/Cargo.toml -- --check
	$(CARGO) fmt --manifest-path bench/rust/Cargo.toml -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --lib --features $(LIB_FEATURES) -- -D warnings
	$(CARGO) clippy --all-targets --features thread-local,header -- -D warnings
	$(CARGO) clippy --all-targets --features secure -- -D warnings
	$(CARGO) clippy --lib --features $(LIB_FEATURES),secure -- -D warnings
	$(CARGO) clippy --all-targets --no-default-features -- -D warnings
	$(CARGO) clippy --lib --no-default-features --features thread-local,static-region -- -D warnings
	RUSTFLAGS="$(LOOM_FLAGS)" CARGO_TARGET_DIR=target/loom $(CARGO) clippy --lib --profile test -- -D warnings
ifeq ($(HAVE_STABLE),yes)
	CARGO_TARGET_DIR=target/stable $(STABLE) clippy --all-targets -- -D warnings
	cd tests/global_alloc && CARGO_TARGET_DIR=../../target/stable-global-alloc $(STABLE) clippy --all-targets -- -D warnings
	cd bench/rust && CARGO_TARGET_DIR=../../target/bench-rust $(STABLE) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" CARGO_TARGET_DIR=target/stable $(STABLE) doc --no-deps --lib
else
	@echo "SKIP lint-stable: no stable Rust toolchain (rustup toolchain install stable)"
endif

# Benchmarks (bench/README.md).
bench-peers:
	bench/build_peers.sh

# The `secure` build, benchmarked beside the default one.
libs-secure:
	CARGO_TARGET_DIR=target/secure $(CARGO) rustc --release --lib --features $(LIB_FEATURES),secure --crate-type $(C_LIBS)

bench: libs libs-secure bench-peers
	@python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet matplotlib \
	  || echo "bench: matplotlib could not be installed; charts will be skipped"
	python3 bench/run.py $(if $(QUICK),--quick)
	$(MAKE) --no-print-directory bench-rust

# Rust programs: a threaded collections workload with mirs::Mirs, the
# `mimalloc` crate and the system allocator as #[global_allocator] (stable,
# default features: what a Rust user gets), alternated, medians
# (bench/README.md).
bench-rust:
ifeq ($(HAVE_STABLE),yes)
	cd bench/rust && CARGO_TARGET_DIR=../../target/bench-rust $(STABLE) build --release --quiet
	python3 bench/rust/run.py --bin-dir target/bench-rust/release $(if $(QUICK),--quick)
else
	@echo "SKIP bench-rust: no stable Rust toolchain (rustup toolchain install stable)"
endif

bench-fastpath: libs bench-peers
	bench/fastpath_instr.sh

# 256 short-lived threads passing blocks (issue 20's lock convoy), beside
# glibc and the peers: wall, system time and peak RSS (bench/thread_storm.sh).
bench-storm: libs bench-peers
	bench/thread_storm.sh

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
