# `make train` and `make test` set everything up on a fresh machine (a .venv in this folder).
# No GPU here? Install the CPU build of torch first and skip the multi-GB CUDA one, e.g.
#   make setup PIP_CONSTRAINT=.ci/constraints-cpu.txt   (where torch 2.13.0+cpu is on pip's path)
# or `.venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu` before `make`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-dev train test test-fast lint format tensorboard clean remove-examples

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed  ## create .venv and install litplate: what training needs, nothing more

setup-dev: $(VENV)/.installed-dev  ## also the test and lint tools, the trackers, ONNX and notebooks

# What `make train` runs: the reference example (remove-examples drops this line: your default).
TRAIN_ARGS := experiment=linear  # example

train: setup  ## the reference example: y = 0.7x + 0.3 (after remove-examples: your default run)
	$(BIN)/python scripts/train.py $(TRAIN_ARGS)

test: setup-dev  ## every test, the slow ones included, one worker per core (what CI runs)
	$(BIN)/python -m pytest -m "" -n auto --dist worksteal

test-fast: setup-dev  ## the default selection: every test but the slow ones, one worker per core
	$(BIN)/python -m pytest -n auto

# template-only
.PHONY: bench
bench: setup-dev  ## litplate against Lightning's floor, the peer pipeline and the plain loop -> BENCHMARKS.md (about 7 minutes)
	$(BIN)/python benchmarks/run.py

# /template-only
lint: setup-dev  ## ruff: lint and formatting check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup-dev  ## ruff: fix what it can and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

tensorboard: setup  ## every run's curves, weight/bias, figures
	$(BIN)/tensorboard --logdir logs

clean:  ## remove run output and caches (keeps .venv)
	find logs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache

# The examples, and the tests that train or import them (docs/make-it-yours.md, step 5): the
# course's line (linear, its tutorial, fine-tuning and Optuna search, the notebook), the MLP on a
# sine curve, the digits classifier. The tests of the machinery stay; they train the run that
# tests/conftest.py's TINY names.
EXAMPLES := src/litplate/data/linear.py src/litplate/models/linear.py src/litplate/models/mlp.py \
	configs/data/linear.yaml configs/data/sine.yaml configs/data/digits.yaml data/digits.csv \
	configs/model/linear.yaml configs/model/mlp.yaml configs/model/mlp_classifier.yaml \
	configs/experiment/linear.yaml configs/experiment/linear_finetune.yaml \
	configs/experiment/linear_tutorial.yaml configs/experiment/mlp.yaml \
	configs/experiment/digits.yaml configs/hparams_search/linear_optuna.yaml \
	notebooks docs/notebook.md tests/data
EXAMPLE_TESTS := digits docs finetune linear mlp notebook reference

# perl: their imports (one line, or wrapped in parentheses), then the other lines marked `# example`.
remove-examples:  ## delete the examples and their tests; yours stay (docs/make-it-yours.md)
	rm -rf $(EXAMPLES) $(EXAMPLE_TESTS:%=tests/test_%.py)
	perl -0pi -e 's/^from \S+\.(?:data\.linear|models\.linear|models\.mlp) import (?:\([^)]*\)|.*)\n//mg; s/^.*# example\n//mg' \
		src/litplate/data/__init__.py src/litplate/models/__init__.py \
		src/litplate/run/allowed_targets.yaml Makefile
