# rl-repro: `make reproduce` (default scale) and `make test` are the quick start.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-16)
# The virtual environment lives outside the clone, keyed by the dependency pins, so fresh
# clones (and CI) reuse it while the pins are unchanged.
VENV ?= $(or $(RLREPRO_VENV),$(HOME)/.cache/rl-repro/venv-$(LOCK_HASH))
BIN := $(VENV)/bin
# ruff in a venv of its own, keyed by its pin (not a dependency of the pipeline)
RUFF_VERSION := 0.17.5
RUFF_VENV ?= $(HOME)/.cache/rl-repro/ruff-$(RUFF_VERSION)
CORES ?= all
SCALE ?=
SNAKE_ARGS ?=
PAPERS ?=
# one --config for both (a second --config would replace the first)
SCALE_ARG := $(if $(SCALE)$(PAPERS),--config $(if $(SCALE),scale=$(SCALE)) $(if $(PAPERS),'papers=[$(PAPERS)]'))
# the same choice for `python -m pipeline` (its own flags, before the stage)
PIPELINE_SCALE_ARG := $(if $(SCALE),--scale $(SCALE),) $(if $(PAPERS),--papers $(PAPERS),)
# a local copy of the benchmark data files, where one sits beside the clone (as on CI);
# elsewhere the files are downloaded once into ~/.cache/rl-repro/data (sha256-pinned)
ifneq ($(wildcard ../shared/data/SHA256SUMS),)
export RLREPRO_DATA_MIRROR ?= $(abspath ../shared/data)
endif
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: venv reproduce test lint dryrun bench snapshot restore lock clean-venv

# The path is keyed by the lock's hash, so an existing complete venv is always current; no
# mtime comparison (a fresh clone's lock file is newer than any cached venv).
venv:
	@mkdir -p $(dir $(VENV))
	@if [ ! -f $(VENV)/.complete ]; then ( flock 9; \
	  if [ ! -f $(VENV)/.complete ]; then \
	    echo "creating virtual environment $(VENV)"; rm -rf $(VENV); \
	    $(PYTHON) -m venv $(VENV) && \
	    $(BIN)/pip install -q --upgrade pip && \
	    $(BIN)/pip install -q -r requirements.lock && \
	    touch $(VENV)/.complete; \
	  fi ) 9>$(VENV).lock; fi
	@test -f $(VENV)/.complete || { echo "virtual environment $(VENV) is incomplete" >&2; exit 1; }

reproduce: venv
	@$(BIN)/python -m pipeline $(PIPELINE_SCALE_ARG) plan
	$(BIN)/snakemake --cores $(CORES) $(SCALE_ARG) $(SNAKE_ARGS)
	@$(BIN)/python -m pipeline $(PIPELINE_SCALE_ARG) report-path

test: venv
	bash tests/run_tests.sh $(BIN) --split-slurm --durations=25

lint: venv
	@test -x $(RUFF_VENV)/bin/ruff || { $(PYTHON) -m venv $(RUFF_VENV) && $(RUFF_VENV)/bin/pip install -q ruff==$(RUFF_VERSION); }
	$(RUFF_VENV)/bin/ruff format --check .
	$(RUFF_VENV)/bin/ruff check .
	$(BIN)/snakemake --lint

dryrun: venv
	$(BIN)/snakemake -n $(SCALE_ARG) $(SNAKE_ARGS)

bench: venv
	$(BIN)/python bench/run_bench.py
	$(BIN)/python bench/methods_bench.py

# Version and ship results/ and reports/ with DVC (remote: config/config.yaml versioning.remote
# or $$RLREPRO_DVC_REMOTE).
snapshot: venv
	$(BIN)/snakemake --cores 1 --forcerun snapshot $(SCALE_ARG) snapshot

restore: venv
	PATH=$(BIN):$$PATH $(BIN)/python -m pipeline $(PIPELINE_SCALE_ARG) restore

lock:
	rm -rf /tmp/rlrepro-lock && $(PYTHON) -m venv /tmp/rlrepro-lock && \
	/tmp/rlrepro-lock/bin/pip install -q -r requirements.txt && \
	{ echo "# Resolved dependency set (pip freeze of a venv built from requirements.txt, Python 3.11)."; \
	  echo "# The venv cache key is this file's sha256. Regenerate: make lock"; \
	  /tmp/rlrepro-lock/bin/pip freeze | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.lock

clean-venv:
	rm -rf $(VENV)
