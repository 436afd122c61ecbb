# Everything runs from a local virtualenv that the targets create and fill themselves.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
WORKDIR ?= work
PYTEST_ARGS ?=

.PHONY: help demo test test-all compile check-golden bench bench-fps gpu-check images clean

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

compile: $(STAMP)  ## compile the DAGs to pipeline.yaml and score_pipeline.yaml
	$(BIN)/mar compile --out pipeline.yaml
	$(BIN)/mar compile --pipeline score --out score_pipeline.yaml

bench: $(STAMP)  ## run the benchmark scripts (ratios measured side by side)
	for b in $(filter-out benchmarks/fps_transfer.py benchmarks/gpu_check.py,$(wildcard benchmarks/*.py)); do $(BIN)/python $$b || exit 1; done

bench-fps: $(STAMP)  ## the champion of $(WORKDIR) (after make demo) on the same behaviour at 30 and 60 fps
	$(BIN)/python benchmarks/fps_transfer.py --model models:/mouse-action-mvd@champion \
	  --tracking-uri sqlite:///$(abspath $(WORKDIR))/mlflow.db

gpu-check: $(STAMP)  ## on one H100/H200: ViT-S bf16 training clips/s + MFU, 10-min video benchmark vs decode (one JSON line)
	$(BIN)/python benchmarks/gpu_check.py

IMAGE_VAR = $(shell $(PY) -c 'import sys; sys.path.insert(0, "."); import pipeline.images as i; print(i.$(1))')

images:  ## build and push the CPU and CUDA component images (NEEDS A DOCKER ENGINE; names/tag from pipeline/images.py)
	@command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || { \
	  echo "make images: needs a running Docker engine (docker build + docker push) and none was found here." >&2; \
	  echo "Run it on a machine with Docker, logged in to the registry (MAR_IMAGE_REPO, MAR_IMAGE_TAG)." >&2; exit 1; }
	docker build -f images/Dockerfile.cpu --build-arg MAR_IMAGE_REPO=$(call IMAGE_VAR,IMAGE_REPO) \
	  --build-arg MAR_IMAGE_TAG=$(call IMAGE_VAR,IMAGE_TAG) -t $(call IMAGE_VAR,CPU_IMAGE) .
	docker build -f images/Dockerfile.cuda --build-arg MAR_IMAGE_REPO=$(call IMAGE_VAR,IMAGE_REPO) \
	  --build-arg MAR_IMAGE_TAG=$(call IMAGE_VAR,IMAGE_TAG) -t $(call IMAGE_VAR,GPU_IMAGE) .
	docker push $(call IMAGE_VAR,CPU_IMAGE)
	docker push $(call IMAGE_VAR,GPU_IMAGE)

clean:  ## remove the workdir and caches (keeps the virtualenv)
	rm -rf $(WORKDIR) .pytest_cache
