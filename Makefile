# Thin wrappers over cargo. `make demo` runs the main demo; `make test` runs every test.
CARGO ?= cargo
PREFIX ?= /usr/local
FEATURES := --features crthreads/failpoints
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)

.PHONY: all build lib test lint demo bench install clean

all: build

build:
	$(CARGO) build --workspace --release

lib:
	$(CARGO) build -p crthreads-cabi --release

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(FEATURES) -- -D warnings

test: lint lib
	$(CARGO) test --workspace $(FEATURES)

# K-means, killed with SIGKILL at random moments and resumed until it completes; its result
# must equal an uninterrupted run's, and no resumed run may start over.
demo:
	$(CARGO) build --release --example kmeans --example demo
	$(TARGET_DIR)/release/examples/demo $(TARGET_DIR)/release/examples/kmeans --points 200000 --k 16 --iters 40 --seed 7

clean:
	$(CARGO) clean
