# Regimen — every target installs what it needs first (a virtual environment in .venv, pinned by
# requirements.lock). `make help` lists the targets.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
RESULTS ?= results
# seeds per variant for `make run`: three, so that every claim gets a paired test (one seed is not a test)
SEEDS ?= 3
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install test lint run demo report validate plan data bench bench-levers bench-targets bench-gpu lock browser clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev,cloud]'
	touch $@

install: $(INSTALLED) ## create .venv and install Regimen with pinned dependencies

browser: ## install Debian's headless Chromium for the report's browser test (root, apt)
	@command -v chromium >/dev/null || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
	  >/dev/null || echo "could not install chromium: the browser test will be skipped"; }

test: $(INSTALLED) browser ## lint and run every test (16–22 minutes on 2 cores)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check jobs
	$(BIN)/python -m pytest

lint: $(INSTALLED) ## ruff
	$(BIN)/ruff check . && $(BIN)/ruff format --check jobs

run: $(INSTALLED) ## train the built-in suite at the seed's settings, SEEDS=3 seeds a variant, on a local Ray; the report
	$(BIN)/regimen run specs --seeds $(SEEDS) --results $(RESULTS) $(ARGS)

demo: $(INSTALLED) ## the whole suite on SYNTHETIC data, 3 epochs a job (54-82 s on 2 cores: bench/results/targets-*)
	$(BIN)/regimen run specs --synthetic --max-epochs 3 --results $(RESULTS) $(ARGS)

report: $(INSTALLED) ## re-render the report from stored results, no training
	$(BIN)/regimen report --results $(RESULTS)

validate: $(INSTALLED) ## check every spec and build every model
	$(BIN)/regimen validate specs

plan: $(INSTALLED) ## list the jobs `make run` plans (SEEDS, ARGS as for it) and whether each is stored
	$(BIN)/regimen plan specs --seeds $(SEEDS) --results $(RESULTS) $(ARGS)

data: $(INSTALLED) ## where each dataset is found; DIR=path stages real MNIST and Fashion-MNIST there where ../shared/data has the staging script, else lists the files to put there
	@if [ -n "$(DIR)" ] && [ -x ../shared/data/stage-offline-data ]; then ../shared/data/stage-offline-data "$(DIR)"; \
	elif [ -n "$(DIR)" ]; then mkdir -p "$(DIR)"; echo "no ../shared/data/stage-offline-data here: put the files listed below in $(DIR)"; fi
	$(BIN)/regimen data $(if $(DIR),--data-dir $(DIR))

bench: $(INSTALLED) ## the suite vs the seed's scripts, side by side (17–26 min on 2 cores; benchmarks/suite.py, BENCHMARKS.md)
	$(BIN)/python benchmarks/suite.py $(if $(DIR),--data-dir $(DIR))

bench-levers: $(INSTALLED) ## each performance lever on and off, on make bench's data (benchmarks/levers.py)
	$(BIN)/python benchmarks/levers.py --data-dir bench/data/suite jobs
	$(BIN)/python benchmarks/levers.py --data-dir bench/data/suite suite --max-epochs 3
	$(BIN)/python benchmarks/levers.py --data-dir bench/data/suite pairs

bench-targets: $(INSTALLED) ## time the CLI's speed targets: demo, its rerun, report, validate, GPU refusal (benchmarks/targets.py)
	$(BIN)/python benchmarks/targets.py

bench-gpu: $(INSTALLED) ## the suite at GPU fractions 0.1, 0.25, 1 on this machine's GPU (benchmarks/gpu.py; ARGS="--backend tensorflow")
	$(BIN)/python benchmarks/gpu.py $(ARGS)

lock: $(INSTALLED) ## re-pin requirements.lock from the installed environment
	{ echo "# Pinned versions of every package Regimen and its tests install (pip install -c requirements.lock)."; \
	  echo "# Regenerate: make lock"; $(BIN)/pip freeze --exclude-editable | grep -v '^regimen'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean: ## remove the virtual environment and caches (results are kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

-include cluster/cluster.mk
