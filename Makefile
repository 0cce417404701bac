# mirs: build, test, benchmark, install.
#
#   make              libmirs.so + libmirs.a (libc names exported) and include/mirs.h
#   make test         the prerequisites first (tools/prereqs.py: one line
#                     each, found / installed / missing), then every test:
#                     Rust (debug + release, nightly and stable, the
#                     #[global_allocator] test crate), loom models, C tests
#                     (static and LD_PRELOAD), real programs under LD_PRELOAD,
#                     memory retention vs glibc (test-retention), glibc's own
#                     malloc tests (test-glibc), embedded mode on the host
#                     (test-embedded), Miri over the embedded core (test-miri),
#                     ArceOS in QEMU (test-arceos), a staged install
#                     (test-install) and the crate package (test-package)
#   make embedded     embedded libmirs.a for x86_64/riscv64/aarch64 bare metal
#   make test-arceos  ArceOS unikernels, axlibc switched to mirs, booted in QEMU
#                     (ARCEOS_APPS="stress" or "stress:mirs" or "riscv64/api:mirs": just
#                     those; ARCEOS_ARCHES="x86_64": that architecture only)
#   make bench-arceos bench_malloc_thread in ArceOS (stock, C mimalloc, mirs), footprint
#                     (ARCEOS_RUNS=N runs each, median; default 5)
#   make bench-fail   instructions per failing malloc(1 << 46), mirs vs glibc
#   make bench-realloc  a buffer grown by realloc to 64 MiB: time and moves vs glibc
#   make test-arceos-rust  ArceOS's global allocator (axalloc) switched to
#                     mirs (hook and TLS identity): a Rust axstd stress with an
#                     allocating timer interrupt, and the C apps over it (part
#                     of `make test`)
#   make bench-arceos-rust  the Rust axstd benchmark, stock axalloc vs mirs (hook
#                     and TLS identity): instructions/op (-icount) and
#                     throughput at 1/2/4 threads
#   make bench        benchmark table and charts vs glibc, C mimalloc, jemalloc
#                     (QUICK=1: one short run of each), and the Rust
#                     #[global_allocator] benchmark (bench-rust)
#   make fuzz SECONDS=N   libFuzzer on the allocator for N seconds (fuzz/README.md;
#                     SECURE=1 with the secure feature)
#   make soak MINUTES=N   the stress workload under LD_PRELOAD for N minutes,
#                     RSS sampled into target/soak/rss.csv and rss.png
#   make install      copy what `make` built (nothing is compiled): PREFIX (/usr/local),
#                     LIBDIR, INCLUDEDIR, MANDIR, PKGCONFIGDIR, DESTDIR; make uninstall

CARGO    ?= cargo
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR   ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# The version is Cargo.toml's; the shared library's SONAME carries its major
# number (libmirs.so.MAJOR), the file its full version, as distributions expect.
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml)
MAJOR    := $(firstword $(subst ., ,$(VERSION)))
SONAME   := libmirs.so.$(MAJOR)
# Passed to the final rustc invocation only (`cargo rustc -- ...`); ignored by
# the staticlib. Every target that builds the C libraries uses the same
# arguments, so they share one build.
CDYLIB_ARGS := -C link-arg=-Wl,-soname,$(SONAME)
FEATURES ?= override
# The C libraries (nightly): the heap pointer in an initial-exec
# `#[thread_local]` (no std), and a panic handler of their own.
LIB_FEATURES := $(FEATURES),thread-local,panic-handler
# Stable Rust, for what a Rust user builds (default features). The empty
# RUSTFLAGS replaces .cargo/config.toml's nightly-only `-Z tls-model`.
STABLE   := RUSTFLAGS= $(CARGO) +stable
# A suite's prerequisites (tools/prereqs.py): checked, installed when missing;
# when they cannot be had, one `SKIP <suite>: <reason>` line (status 3) and the
# suite's commands are not run. Use: $(call with_prereqs,SUITE,NAMES,TARGET).
PREREQS  := python3 tools/prereqs.py
with_prereqs = @$(PREREQS) ensure --suite $(1) $(2); rc=$$?; \
	if [ $$rc = 0 ]; then $(MAKE) --no-print-directory $(3); else [ $$rc = 3 ]; fi
RELEASE  := target/release
LIBS     := $(RELEASE)/libmirs.so $(RELEASE)/libmirs.a
LOOM_FLAGS := --cfg loom -Z tls-model=initial-exec
# The crate is an rlib for Rust users; the C libraries are built on request.
C_LIBS   := staticlib,cdylib
# What cbindgen reads to write include/mirs.h (build.rs's rerun-if-changed
# list); their digest is kept in include/mirs.h.inputs, so `make` knows the
# committed header is current without compiling cbindgen. The test
# `header_is_fresh` (make test-rust) is the authority; the digest a shortcut.
HEADER_INPUTS := $(sort $(wildcard src/c_api/*.rs src/platform/*.rs)) src/lib.rs src/tests/mod.rs cbindgen.toml build.rs
header_digest = $$({ cat $(HEADER_INPUTS); grep '^version' Cargo.toml; } | sha256sum | cut -d' ' -f1)

.PHONY: all libs libs-secure header header-if-stale header-check prereqs test test-rust test-stable test-stable-run lint-stable-run test-loom test-c test-real test-retention test-glibc test-miri lint \
        fuzz test-fuzz soak \
        test-embedded embedded test-arceos bench-arceos test-arceos-rust bench-arceos-rust \
        bench bench-peers bench-fastpath bench-ops bench-python bench-fail bench-realloc bench-storm bench-rust bench-rust-run \
        install uninstall test-install test-package clean

all: header-if-stale libs

# include/mirs.h regenerated by cbindgen (`cargo check` runs build.rs with
# feature `header`), and the digest of its inputs recorded.
header:
	MIRS_UPDATE_HEADER=1 $(CARGO) check --lib --features header
	@echo "$(header_digest)" > include/mirs.h.inputs && echo "include/mirs.h.inputs: digest of the header's inputs recorded"

# cbindgen only when the header's inputs changed since it was generated.
header-if-stale:
	@if [ "$(header_digest)" = "$$(cat include/mirs.h.inputs 2>/dev/null)" ]; then \
	  echo "include/mirs.h is current (include/mirs.h.inputs)"; \
	else \
	  echo "include/mirs.h: inputs changed, regenerating with cbindgen"; \
	  $(MAKE) --no-print-directory header; \
	fi

# Fails when the recorded digest does not match the inputs (the header
# itself is compared with cbindgen's output by the test header_is_fresh).
header-check:
	@[ "$(header_digest)" = "$$(cat include/mirs.h.inputs 2>/dev/null)" ] || \
	  { echo "include/mirs.h.inputs is stale: run make header and commit include/"; exit 1; }

# libmirs.so (SONAME libmirs.so.MAJOR, with the libmirs.so.MAJOR link beside
# it so programs linked against target/release run) and libmirs.a, without
# touching the committed header (what the tests use).
libs:
	$(CARGO) rustc --release --lib --features $(LIB_FEATURES) --crate-type $(C_LIBS) -- $(CDYLIB_ARGS)
	ln -sf libmirs.so $(RELEASE)/$(SONAME)

test: prereqs test-rust test-stable test-loom test-c test-install test-package test-real test-retention test-glibc test-embedded test-miri test-fuzz test-arceos test-arceos-rust
	@echo "make test: all suites passed"

# One line per prerequisite of the suites (found, installed, or missing and
# what then skips), installing what is missing first (tools/prereqs.py; the
# suites run the same checks again and find everything there).
prereqs:
	@$(PREREQS) report

# Nightly: the default features (std's thread_local!) with the header check,
# then the C libraries' configuration (#[thread_local]), plain and secure;
# the embedded core on a fake embedder (src/tests/embedded.rs, as test-miri),
# with the heap table and with thread-local.
test-rust: header-check
	$(CARGO) test --lib --features header
	$(CARGO) test --release --lib --features thread-local
	$(CARGO) test --release --lib --features thread-local,secure
	$(CARGO) build --no-default-features --features panic-handler --lib
	$(CARGO) test --no-default-features --lib
	$(CARGO) test --no-default-features --features thread-local --lib

# Stable: what a Rust user gets. The library's own tests (one process per
# test, tests/stable_lib_tests.sh), a std program with mirs::Mirs as its
# #[global_allocator] (tests/global_alloc, debug and release), and the
# embedded rlib.
test-stable:
	$(call with_prereqs,test-stable,stable,test-stable-run)

test-stable-run:
	CARGO="$(CARGO)" tests/stable_lib_tests.sh
	cd tests/global_alloc && CARGO_TARGET_DIR=../../target/stable-global-alloc $(STABLE) test
	cd tests/global_alloc && CARGO_TARGET_DIR=../../target/stable-global-alloc $(STABLE) test --release
	CARGO_TARGET_DIR=target/stable $(STABLE) build --lib --no-default-features

# loom drives its threads with panics, so these tests unwind; a target dir of
# their own keeps the --cfg loom build from invalidating the normal one.
test-loom:
	CARGO_PROFILE_RELEASE_PANIC=unwind RUSTFLAGS="$(LOOM_FLAGS)" CARGO_TARGET_DIR=target/loom \
	  $(CARGO) test --release --lib loom

# The C tests (static and LD_PRELOAD), then the options and the statistics
# report (c_tests/options_stats.py: every option by environment and API, the
# JSON's live bytes, python3 with threads).
test-c: libs libs-secure
	MIRS_SECURE_LIBDIR=target/secure/release c_tests/run_c_tests.sh $(RELEASE)
	python3 c_tests/options_stats.py $(RELEASE)

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
# embedder (src/tests/embedded.rs: memory from one System allocation, a
# counter for a clock). tests/miri.sh installs the pinned nightly's miri
# through rustup (tools/prereqs.py); prints `SKIP test-miri: <reason>` when it cannot.
test-miri:
	CARGO="$(CARGO)" tests/miri.sh

# ArceOS (docs/arceos.md): the published ArceOS crates fetched by cargo,
# axlibc switched to mirs (and to C mimalloc, the peer) by
# c_tests/arceos/switch_axlibc.py over the glue crates arceos-glue/ and
# arceos-glue-mimalloc/, C apps booted in QEMU (TCG, SMP=2, 128 MiB); all
# cached under target/arceos/. Prints `SKIP test-arceos: <reason>` when the
# pinned toolchain, QEMU or libclang cannot be installed (tools/prereqs.py);
# a build that fails anyway stops the suite with one line and its log's path.
# bench-arceos: guest instructions per malloc+free (-icount) and wall-clock
# throughput for stock, C mimalloc v2 and v3, mirs and mirs-tls, then the stress
# footprint table.
test-arceos:
	python3 c_tests/arceos/arceos.py test $(if $(ARCEOS_ARCHES),--arches "$(ARCEOS_ARCHES)") $(ARCEOS_APPS)

bench-arceos:
	python3 c_tests/arceos/arceos.py bench --runs $(or $(ARCEOS_RUNS),5)

# axalloc (the kernel's and axstd apps' global allocator) switched to mirs by
# c_tests/arceos/switch_axalloc.py (docs/arceos.md, section 9); reuses
# arceos.py's fetched crates, trees and cargo cache under target/arceos/.
test-arceos-rust:
	python3 c_tests/arceos/axalloc.py test

bench-arceos-rust:
	python3 c_tests/arceos/axalloc.py bench --runs $(or $(ARCEOS_RUNS),3)

# header-check first: a change to the header's inputs (src/c_api, src/platform,
# src/lib.rs's layer table) needs `make header` before it is committed.
lint: header-check
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
	$(call with_prereqs,lint-stable,stable,lint-stable-run)

lint-stable-run:
	CARGO_TARGET_DIR=target/stable $(STABLE) clippy --all-targets -- -D warnings
	cd tests/global_alloc && CARGO_TARGET_DIR=../../target/stable-global-alloc $(STABLE) clippy --all-targets -- -D warnings
	cd bench/rust && CARGO_TARGET_DIR=../../target/bench-rust $(STABLE) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" CARGO_TARGET_DIR=target/stable $(STABLE) doc --no-deps --lib

# Benchmarks (bench/README.md).
bench-peers:
	bench/build_peers.sh

# The `secure` build, benchmarked beside the default one.
libs-secure:
	CARGO_TARGET_DIR=target/secure $(CARGO) rustc --release --lib --features $(LIB_FEATURES),secure --crate-type $(C_LIBS) -- $(CDYLIB_ARGS)
	ln -sf libmirs.so target/secure/release/$(SONAME)

bench: libs libs-secure bench-peers
	@$(PREREQS) ensure --optional --suite bench matplotlib
	python3 bench/run.py $(if $(QUICK),--quick)
	$(MAKE) --no-print-directory bench-rust

# Rust programs: a threaded collections workload with mirs::Mirs, the
# `mimalloc` crate and the system allocator as #[global_allocator] (stable,
# default features: what a Rust user gets), alternated, medians
# (bench/README.md).
bench-rust:
	$(call with_prereqs,bench-rust,stable,bench-rust-run)

bench-rust-run:
	cd bench/rust && CARGO_TARGET_DIR=../../target/bench-rust $(STABLE) build --release --quiet
	python3 bench/rust/run.py --bin-dir target/bench-rust/release $(if $(QUICK),--quick)

bench-fastpath: libs bench-peers
	bench/fastpath_instr.sh

# Exact per-call costs on fixed work (callgrind, cachegrind): malloc and
# free instructions per call, L1 misses per malloc+free, bench_malloc_thread
# and larson at 1 and 2 threads, mirs beside C mimalloc v3 and v2.
bench-ops: libs bench-peers
	python3 bench/ops_instr.py $(if $(QUICK),--quick)

# Peak RSS of a 32-thread Python json workload under each allocator.
bench-python: libs bench-peers
	python3 bench/python_threads.py --runs $(or $(RUNS),3)

# Instructions per failing huge request (malloc(1 << 46)), mirs vs glibc
# (callgrind; bench/fail_instr.sh).
bench-fail: libs
	bench/fail_instr.sh

# A buffer grown by realloc from 4 KiB to 64 MiB, 20 times: time and moves,
# mirs vs glibc (bench/realloc_grow.sh).
bench-realloc: libs
	bench/realloc_grow.sh

# Install copies what `make` built and compiles nothing (it may run as root):
#   LIBDIR/libmirs.so.X.Y.Z, libmirs.so.X -> it, libmirs.so -> libmirs.so.X,
#   LIBDIR/libmirs.a, INCLUDEDIR/mirs.h, PKGCONFIGDIR/mirs.pc, MANDIR/man3/mirs.3.
INSTALLED := $(LIBDIR)/libmirs.so.$(VERSION) $(LIBDIR)/$(SONAME) $(LIBDIR)/libmirs.so \
             $(LIBDIR)/libmirs.a $(INCLUDEDIR)/mirs.h $(PKGCONFIGDIR)/mirs.pc $(MANDIR)/man3/mirs.3

install:
	@for f in $(LIBS); do [ -f $$f ] || { echo "make install: $$f missing: run make first"; exit 1; }; done
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man3
	install -m 755 $(RELEASE)/libmirs.so $(DESTDIR)$(LIBDIR)/libmirs.so.$(VERSION)
	ln -sf libmirs.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libmirs.so
	install -m 644 $(RELEASE)/libmirs.a $(DESTDIR)$(LIBDIR)/libmirs.a
	install -m 644 include/mirs.h $(DESTDIR)$(INCLUDEDIR)/mirs.h
	install -m 644 man/mirs.3 $(DESTDIR)$(MANDIR)/man3/mirs.3
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	  -e 's|@VERSION@|$(VERSION)|g' mirs.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/mirs.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/mirs.pc

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

# make install into a staging tree (DESTDIR, Debian multiarch LIBDIR), a C
# program built with pkg-config against it and run, the SONAME checked, make
# uninstall leaving nothing (tests/install.sh).
test-install: libs
	tests/install.sh

# What `cargo publish` would upload: the package builds from its own tarball
# (`cargo package`, offline when the index cannot be reached).
test-package:
	tests/package.sh

# 256 short-lived threads passing blocks (issue 20's lock convoy), beside
# glibc and the peers: wall, system time and peak RSS (bench/thread_storm.sh).
bench-storm: libs bench-peers
	bench/thread_storm.sh

clean:
	$(CARGO) clean

# Fuzzing (fuzz/README.md). `make fuzz SECONDS=N` runs libFuzzer (cargo-fuzz,
# `cargo install cargo-fuzz`); `make test-fuzz` runs a FUZZ_TEST_SECONDS pass
# when cargo-fuzz is installed, else the same programs (the corpus plus
# generated ones) through the deterministic driver. SECURE=1: with `secure`.
# `make fuzz` installs cargo-fuzz when `cargo fuzz` does not run
# (tools/prereqs.py); `make test` does not.
comma := ,
FUZZ_TEST_SECONDS ?= 60
FUZZ_FEATURES := libfuzzer$(if $(SECURE),$(comma)mirs/secure)

fuzz:
	@$(PREREQS) ensure --fail --suite fuzz cargo-fuzz
	cd fuzz && $(CARGO) fuzz run ops --features $(FUZZ_FEATURES) -- \
	  -max_total_time=$(or $(SECONDS),300) -max_len=4096 -detect_leaks=0 -print_final_stats=1

test-fuzz:
	@if $(PREREQS) check cargo-fuzz; then \
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
	@$(PREREQS) ensure --optional --suite soak matplotlib
	python3 bench/soak.py --minutes $(MINUTES) --threads $(SOAK_THREADS) --lib $(RELEASE)/libmirs.so
