# Set-up, demo, tests and benchmarks. Everything runs inside .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# This machine keeps a CPU build of torch on disk; elsewhere pip takes torch from PyPI
# unless one is already installed (a GPU user installs their CUDA torch first).
TORCH_WHEELS ?= /opt/wheels
TORCH_VERSION ?= 2.13.0
FIND_LINKS := $(if $(wildcard $(TORCH_WHEELS)),--find-links $(TORCH_WHEELS),)
PYTEST_WORKERS ?= 2

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(BIN)/python -m pip install -q $(FIND_LINKS) torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q $(FIND_LINKS) -e ".[dev]"
	touch $(STAMP)

# `make demo` ends by serving the Space on the demo's checkpoints; NO_SERVE=1 stops before that.
demo: $(STAMP)
	$(BIN)/regen demo --out demo_out
	$(if $(NO_SERVE),,$(BIN)/regen space --demo-dir demo_out)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_build.py
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf demo_out bench_out .pytest_cache
