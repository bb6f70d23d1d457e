# bertkit: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel keeps `make setup` small; GPU users: TORCH_SPEC= (empty) keeps the torch already installed
# in the environment, e.g. `make setup VENV_FLAGS=--system-site-packages TORCH_SPEC=`.
TORCH_SPEC ?= torch==2.13.0
VENV_FLAGS ?=
EXPERIMENT ?= pretrain_tiny
TASK ?= mrpc
ARGS ?=
PYTEST_ARGS ?=
# `accelerate launch` runs a single CPU process with one thread unless told otherwise: use every core.
THREADS ?= $(shell nproc 2>/dev/null || echo 1)
LAUNCH ?= $(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
	--dynamo_backend no --num_cpu_threads_per_process $(THREADS)

.DEFAULT_GOAL := help
.PHONY: help setup pretrain test test-fast lint format clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## Create .venv and install bertkit (editable) with its dev extras, CPU torch
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)")
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@$(BIN)/python -c "import torch, transformers, bertkit; print('bertkit ready: torch', torch.__version__, '| transformers', transformers.__version__)"

pretrain: ## Pretrain a small BERT on the embedded corpus (EXPERIMENT=, ARGS="overrides")
	$(LAUNCH) bertkit/train.py +experiment=$(EXPERIMENT) $(ARGS)

test: lint ## Lint, then run the whole test suite (what CI runs)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: ## Run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: ## Fix what ruff can fix and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove outputs/ and caches of the tools (not the data cache, see BERTKIT_CACHE)
	rm -rf outputs .pytest_cache .ruff_cache
