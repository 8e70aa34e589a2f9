# `make train` and `make test` set everything up on a fresh machine (a .venv in this folder).
# No GPU here? Install the CPU build of torch first and skip the multi-GB CUDA one, e.g.
#   make setup PIP_CONSTRAINT=.ci/constraints-cpu.txt   (where torch 2.13.0+cpu is on pip's path)
# or `.venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu` before `make`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup train test test-fast lint format tensorboard clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed  ## create .venv and install litplate with its dev tools

train: setup  ## the reference example: y = 0.7x + 0.3
	$(BIN)/python scripts/train.py experiment=linear

test: setup  ## every test, the slow ones included, one worker per core (what CI runs)
	$(BIN)/python -m pytest -m "" -n auto --dist worksteal

test-fast: setup  ## the default selection: every test but the slow ones, one worker per core
	$(BIN)/python -m pytest -n auto

# template-only
.PHONY: bench
bench: setup  ## litplate against Lightning's floor, the peer pipeline and the plain loop -> BENCHMARKS.md (about 7 minutes)
	$(BIN)/python benchmarks/run.py

# /template-only
lint: setup  ## ruff: lint and formatting check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup  ## ruff: fix what it can and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

tensorboard: setup  ## every run's curves, weight/bias, figures
	$(BIN)/tensorboard --logdir logs

clean:  ## remove run output and caches (keeps .venv)
	find logs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache
