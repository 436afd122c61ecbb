# Everything runs from a local virtualenv that the targets create and fill themselves.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
WORKDIR ?= work
PYTEST_ARGS ?=

.PHONY: help demo test test-all compile check-golden bench images clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## write a synthetic Supervisely project and run the whole pipeline on it (CPU profile without CUDA)
	$(BIN)/mar demo --workdir $(WORKDIR)

test: $(STAMP)  ## run the test suite (CPU only)
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/python -m pytest -q $(PYTEST_ARGS)

compile: $(STAMP)  ## compile the DAG to pipeline.yaml
	$(BIN)/mar compile --out pipeline.yaml

bench: $(STAMP)  ## run the benchmark scripts (ratios measured side by side)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:  ## remove the workdir and caches (keeps the virtualenv)
	rm -rf $(WORKDIR) .pytest_cache
