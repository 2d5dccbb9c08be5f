# dav2d: the two commands a new user types, plus benchmarks and lints.
#   make run    builds the dav2d binary and runs the built-in demo (CONFIG=path to run a config)
#   make test   runs every test: cargo test and pytest
#   make bench  runs the benchmarks beside their bars and peers
#   make bench-cold  times a fresh clone's first make run (FULL=1: every part)
#   make wheel  builds the wheel `pip install` takes into dist/
#   make fuzz   fuzzes every decoder on nightly (FUZZ_RUNS per target)
#   make soak   60 s of hostile load beside well-behaved clients
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BENCH_VENV := bench/.venv-bench
export CARGO_TARGET_DIR ?= $(CURDIR)/target
CONFIG ?=
RUN_ARGS ?=

.PHONY: run test bench bench-cold develop lint clean fuzz soak wheel

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "maturin>=1.7,<2" "pytest>=7" "numpy>=1.24" "pyarrow>=14" "onnxruntime>=1.31,<2" "onnx>=1.16" "selenium>=4.15,<5"
	touch $@

# The wheel `pip install` takes (the library and the `dav2d` command), in dist/.
wheel: $(VENV)/.installed
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin build -q --release -o dist

# Builds the Python extension into .venv (debug build for tests, counting
# the Rust allocations of each thread for the no-allocation tests).
develop: $(VENV)/.installed
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop -q -F count-allocations

# The demo needs the binary only (the Python extension is `make develop`),
# and none of its optional parts (MQTT, NATS, clustering, the frame resizer,
# X11 capture): with no CONFIG and no --cluster, `make run` builds without
# them, a third less to compile cold. Any CONFIG builds every part.
RUN_FEATURES := $(if $(strip $(CONFIG)$(findstring --cluster,$(RUN_ARGS))),,--no-default-features)
run:
	cargo build --release -p dav2d-cli $(RUN_FEATURES)
	$(CARGO_TARGET_DIR)/release/dav2d run $(CONFIG) $(RUN_ARGS)

test: develop
	bash scripts/test-deps.sh
	DAV2D_REQUIRE_XVFB=1 DAV2D_REQUIRE_ORT=1 DAV2D_REQUIRE_BROKERS=1 PYTHON=$(CURDIR)/$(PY) cargo test
	cargo test -p dav2d-cli --no-default-features --test lean
	DAV2D_REQUIRE_PEERS=1 DAV2D_REQUIRE_BROKERS=1 $(PY) -m pytest -q

$(BENCH_VENV)/.installed: bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -r bench/requirements.txt
	touch $@

bench: $(BENCH_VENV)/.installed
	bash bench/setup.sh
	VIRTUAL_ENV=$(CURDIR)/$(BENCH_VENV) $(BENCH_VENV)/bin/maturin develop -q --profile bench-release
	cargo build --profile bench-release -p dav2d-bench -p dav2d-cli
	$(BENCH_VENV)/bin/python bench/run.py --rust-bench $(CARGO_TARGET_DIR)/bench-release/dav2d-bench \
		--dav2d $(CARGO_TARGET_DIR)/bench-release/dav2d

# A newcomer's first `make run`, timed from a fresh clone and an empty
# target folder to the demo's first summary line (minutes; both cores).
bench-cold:
	bash bench/cold_run.sh

# Coverage-guided fuzzing on nightly (not in CI: `make test` replays the
# seeds and a bounded mutation run on stable). FUZZ_RUNS=N per target.
fuzz:
	bash fuzz/run.sh

# 60 s of hostile and well-behaved load over loopback (not in CI); prints
# peak RSS, the well-behaved p99 and the accounting beside their bars.
soak: $(VENV)/.installed
	bash scripts/test-deps.sh
	cargo build --release -p dav2d-cli
	$(PY) bench/soak.py --dav2d $(CARGO_TARGET_DIR)/release/dav2d

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p dav2d-py --all-targets --features count-allocations -- -D warnings
	cargo clippy -p dav2d-cli --no-default-features --all-targets -- -D warnings

clean:
	rm -rf $(VENV) $(BENCH_VENV) dav2d-data
	cargo clean
