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
# Any BERT checkpoint: a Hub id, a local folder, or the model/ folder that `make pretrain` wrote.
MODEL ?= bert-base-uncased
# GLUE in its original layout (GLUE_DIR/MRPC/train.tsv, ...); empty: the Hub's nyu-mll/glue (needs network).
GLUE_DIR ?=
# SQuAD: VERSION=v1|v2; SQUAD_DIR holds the official train-v1.1.json and dev-v1.1.json (or -v2.0); or
# SQUAD_FILE=one SQuAD JSON file, split by article into training and evaluation; neither: the Hub (network).
VERSION ?= v1
SQUAD_DIR ?=
SQUAD_FILE ?=
SQUAD_SUFFIX := $(if $(filter v2,$(VERSION)),v2.0,v1.1)
# CoNLL-2003 in its original files (CONLL_DIR/eng.train, eng.testa, eng.testb); empty: the Hub (network).
CONLL_DIR ?=
ARGS ?=
# make bench: the corpus-building baseline is google-research/bert's script, run by a Python with TensorFlow.
GOOGLE_BERT_DIR ?=
TF_PYTHON ?=
PYTEST_ARGS ?=
# Training processes: PROCESSES=2 on a CPU machine trains two processes as one gloo group (see README,
# "Several processes"). Each gets an equal share of the cores: `accelerate launch` would give it one thread.
PROCESSES ?= 1
THREADS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); t=$$(( n / $(PROCESSES) )); echo $$(( t > 0 ? t : 1 )))
# Or any machine described by an accelerate config file, e.g. ACCELERATE_CONFIG=examples/accelerate/multi_gpu.yaml.
ACCELERATE_CONFIG ?=
# bertkit.launch is `accelerate launch`, minus its traceback after bertkit's one-line errors, and with
# --cpu --num_processes N > 1 made one process group (plain accelerate would start a single process).
ifdef ACCELERATE_CONFIG
LAUNCH ?= $(BIN)/python -m bertkit.launch --config_file $(ACCELERATE_CONFIG)
else
LAUNCH ?= $(BIN)/python -m bertkit.launch $(if $(filter-out 1,$(PROCESSES)),--cpu )--num_processes $(PROCESSES) \
	--num_machines 1 --mixed_precision no --dynamo_backend no --num_cpu_threads_per_process $(THREADS)
endif

.DEFAULT_GOAL := help
.PHONY: help setup pretrain finetune-glue finetune-squad finetune-ner bench bench-gpu test test-fast lint typecheck format clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## Create .venv and install bertkit (editable) with its dev extras, CPU torch
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)")
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@$(BIN)/python -c "import torch, transformers, bertkit; print('bertkit ready: torch', torch.__version__, '| transformers', transformers.__version__)"

pretrain: ## Pretrain a small BERT on the embedded corpus (EXPERIMENT=, ARGS="overrides", PROCESSES=)
	$(BIN)/python -m bertkit.prepare +experiment=$(EXPERIMENT) $(ARGS)
	$(LAUNCH) bertkit/train.py +experiment=$(EXPERIMENT) $(ARGS)

finetune-glue: ## Fine-tune on GLUE (TASK=mrpc|cola|...|all, MODEL=, GLUE_DIR= (default: the Hub), ARGS=)
ifeq ($(TASK),all)
	$(BIN)/python -m bertkit.glue_suite --model "$(MODEL)" $(if $(GLUE_DIR),--glue-dir "$(GLUE_DIR)") \
		--launch "$(LAUNCH)" -- $(ARGS)
else
	$(LAUNCH) bertkit/train.py +experiment=glue_$(TASK) "model.name_or_path=$(MODEL)" \
		$(if $(GLUE_DIR),"data.glue_dir=$(GLUE_DIR)") $(ARGS)
endif

finetune-squad: ## Fine-tune on SQuAD (VERSION=v1|v2, MODEL=, SQUAD_DIR= or SQUAD_FILE= (default: the Hub), ARGS=)
	$(LAUNCH) bertkit/train.py +experiment=squad_$(VERSION) "model.name_or_path=$(MODEL)" \
		$(if $(SQUAD_DIR),"data.train_file=$(SQUAD_DIR)/train-$(SQUAD_SUFFIX).json" \
			"data.validation_file=$(SQUAD_DIR)/dev-$(SQUAD_SUFFIX).json") \
		$(if $(SQUAD_FILE),"data.train_file=$(SQUAD_FILE)") $(ARGS)

finetune-ner: ## Fine-tune on CoNLL-2003 NER (MODEL=, CONLL_DIR= (default: the Hub), ARGS=)
	$(LAUNCH) bertkit/train.py +experiment=conll2003 "model.name_or_path=$(MODEL)" \
		$(if $(CONLL_DIR),"data.train_file=$(CONLL_DIR)/eng.train" "data.validation_file=$(CONLL_DIR)/eng.testa" \
			"data.test_file=$(CONLL_DIR)/eng.testb") $(ARGS)

bench: ## Speed benchmarks against stock Hugging Face (ratios; tables in benchmarks/results/bench.md)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/pretrain_throughput.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/finetune_throughput.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/packing.py
	$(if $(and $(GOOGLE_BERT_DIR),$(TF_PYTHON)),$(BIN)/python benchmarks/corpus_building.py \
		--google-bert "$(GOOGLE_BERT_DIR)" --tf-python "$(TF_PYTHON)",\
		@echo "corpus building skipped: its baseline needs GOOGLE_BERT_DIR= and TF_PYTHON= (benchmarks/README.md)")
	$(BIN)/python benchmarks/pretrain_end_to_end.py
	$(BIN)/python benchmarks/summary.py

bench-gpu: ## On a CUDA machine: BERT-base pretraining (bf16, MFU) and SQuAD-length fine-tuning vs plain HF loops
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/gpu_throughput.py --compile $(ARGS)
	$(BIN)/python benchmarks/summary.py

test: lint typecheck ## Lint and type-check, then run the whole test suite (what CI runs)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: ## Run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: ## mypy on bertkit/ (settings in pyproject.toml)
	$(BIN)/mypy

format: ## Fix what ruff can fix and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove outputs/ and caches of the tools (not the data cache, see BERTKIT_CACHE)
	rm -rf outputs .pytest_cache .ruff_cache
