# Thin wrappers over cargo. `make demo` runs the main demo; `make test` runs every test.
# `make build` builds everything, the `crthreads` command included ($(TARGET_DIR)/release/crthreads).
CARGO ?= cargo
PREFIX ?= /usr/local
FEATURES := --features crthreads/failpoints
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := store_decode heap_ops

.PHONY: all build lib bin test lint loom demo bench fuzz install install-files uninstall clean \
	c-examples c-examples-plain c-examples-linked

all: build

build:
	$(CARGO) build --workspace --release

# libcrthreads.so and libcrthreads.a in $(TARGET_DIR)/release
lib:
	$(CARGO) build -p crthreads-cabi --release

# The `crthreads` command in $(TARGET_DIR)/release (it finds libcrthreads.so next to itself, or
# in ../lib once installed).
bin:
	$(CARGO) build -p crthreads --release --bin crthreads

# The C example programs (examples/c/, plain pthreads and libc), each built twice:
# $(C_EXAMPLES_DIR)/NAME-plain with -pthread (glibc's threads), and $(C_EXAMPLES_DIR)/NAME
# linked with -lcrthreads against $(C_LIB_DIR)/libcrthreads.so, found at run time through an
# rpath. libcrthreads comes first among the program's libraries, so its exports take precedence
# over libc's. The C suite (cabi/tests/c_examples.rs) builds them with these same rules.
C_EXAMPLES := counter tsp kmeans gradient_descent prodcons
C_EXAMPLES_DIR ?= $(TARGET_DIR)/c-examples
C_LIB_DIR ?= $(TARGET_DIR)/release
C_EXAMPLES_CFLAGS := -std=c11 -O2 -g -Wall -Wextra -Werror -fstack-protector-strong
C_EXAMPLES_PLAIN := $(C_EXAMPLES:%=$(C_EXAMPLES_DIR)/%-plain)
C_EXAMPLES_LINKED := $(C_EXAMPLES:%=$(C_EXAMPLES_DIR)/%)

c-examples: lib
	$(MAKE) --no-print-directory c-examples-plain c-examples-linked

c-examples-plain: $(C_EXAMPLES_PLAIN)

c-examples-linked: $(C_EXAMPLES_LINKED)

$(C_EXAMPLES_PLAIN): $(C_EXAMPLES_DIR)/%-plain: examples/c/%.c examples/c/example.h
	@mkdir -p $(@D)
	$(CC) $(C_EXAMPLES_CFLAGS) -pthread $< -o $@

$(C_EXAMPLES_LINKED): $(C_EXAMPLES_DIR)/%: examples/c/%.c examples/c/example.h $(C_LIB_DIR)/libcrthreads.so
	@mkdir -p $(@D)
	$(CC) $(C_EXAMPLES_CFLAGS) $< -o $@ -L$(C_LIB_DIR) -Wl,-rpath,$(abspath $(C_LIB_DIR)) -lcrthreads

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(FEATURES) -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p crthreads --no-deps

# Every test: lints, unit and integration tests (crash tests with failpoints compiled in), the
# C suite against the built library, the fuzz corpus replay, and the loom models.
test: lint lib
	$(CARGO) test --workspace $(FEATURES)
	$(MAKE) loom

loom:
	RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=$(TARGET_DIR)/loom \
		$(CARGO) test -p crthreads-loom-tests --release

# K-means on four persistent threads, killed with SIGKILL at random moments and resumed until it
# completes; its result must equal an uninterrupted run's, and no resumed run may start over.
demo:
	$(CARGO) build --release --example kmeans --example demo
	$(TARGET_DIR)/release/examples/demo $(TARGET_DIR)/release/examples/kmeans --points 200000 --k 16 --iters 40 --seed 7 --threads 4

# Medians against baselines measured in the same run (glibc malloc, std and glibc mutexes, raw
# page protection, pwrite bandwidth, a plain-pthreads stop-the-world, pread of the image, the
# examples on std threads and locks, the C examples on glibc's pthreads).
bench:
	$(CARGO) build --release -p crthreads-benches
	$(CARGO) build --release --examples
	$(TARGET_DIR)/release/malloc
	$(TARGET_DIR)/release/large
	$(TARGET_DIR)/release/sparse
	$(TARGET_DIR)/release/mutex
	$(TARGET_DIR)/release/lockcost
	$(MAKE) lib
	$(TARGET_DIR)/release/cmalloc
	$(TARGET_DIR)/release/track
	$(TARGET_DIR)/release/ckpt
	$(TARGET_DIR)/release/latency
	$(TARGET_DIR)/release/restore
	$(TARGET_DIR)/release/examples-bench
	$(MAKE) --no-print-directory bin c-examples
	$(TARGET_DIR)/release/cexamples

# Coverage-guided fuzzing (needs `cargo install cargo-fuzz`; RUSTC_BOOTSTRAP=1 lets stable rustc
# take the sanitizer flags). New inputs go to fuzz/target/corpus; the committed fuzz/corpus seeds
# the run and is replayed by `make test` (tests/fuzz_replay.rs).
fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$t && \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t target/corpus/$$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS)) || exit 1; \
	done

# `make install PREFIX=...` builds, then installs the CLI, both libraries, the headers and
# crthreads.pc (whose Libs carry an rpath to the installed libdir, so `cc $$(pkg-config --cflags
# --libs crthreads)` gives a program that finds libcrthreads.so without LD_LIBRARY_PATH).
# `install-files` installs what is already built (LIB_DIR, CLI_BIN) without building.
LIB_DIR ?= $(TARGET_DIR)/release
CLI_BIN ?= $(TARGET_DIR)/release/crthreads
HEADERS := $(notdir $(wildcard cabi/include/*.h))
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

install: lib bin
	$(MAKE) --no-print-directory install-files

install-files:
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(CLI_BIN) $(DESTDIR)$(PREFIX)/bin/crthreads
	install -m 755 $(LIB_DIR)/libcrthreads.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(LIB_DIR)/libcrthreads.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(addprefix cabi/include/,$(HEADERS)) $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
		cabi/crthreads.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/crthreads.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/crthreads $(DESTDIR)$(PREFIX)/lib/libcrthreads.so $(DESTDIR)$(PREFIX)/lib/libcrthreads.a \
		$(addprefix $(DESTDIR)$(PREFIX)/include/,$(HEADERS)) $(DESTDIR)$(PREFIX)/lib/pkgconfig/crthreads.pc

clean:
	$(CARGO) clean
