# video-pipeline — the two commands a user needs:
#
#   make run    install into .venv, run the real DAG once over local storage, print what it did
#   make test   install test needs and run every test layer (CI runs exactly this)
#
# Also: make up (Airflow UI + scheduler on 127.0.0.1:8080), make bench, make lint, make lock, make clean.

SHELL := /bin/bash
# Python 3.11-3.13: found (or installed) by tools/bootstrap_venv.sh; `make run PYTHON=/path/to/python3.12` picks one.
PYTHON ?=
export PYTHON
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
export UV_LINK_MODE := copy
# Compiled modules are cached under .venv/pycache, also where PYTHONDONTWRITEBYTECODE is set
# (CI images set it) and uv installs without bytecode: without a cache every Airflow process
# (each DAG run, CLI call, scheduler and task) compiles ~1,500 modules from source again.
# The prefix keeps the source tree free of __pycache__ folders, the usual reason for the setting.
export PYTHONPYCACHEPREFIX := $(abspath $(VENV))/pycache
unexport PYTHONDONTWRITEBYTECODE
# /opt/wheels holds a local CPU build of torch on this machine kind (openai-whisper's torch).
WHEELS := $(wildcard /opt/wheels)
FIND_LINKS := $(if $(WHEELS),--find-links $(WHEELS),)

.PHONY: run up test lint bench lock clean down system-runtime system-test refresh-compose-schema

## ---- system packages (installed only when missing) ----------------------------------

system-runtime:
	@bash tools/ensure_system_packages.sh runtime

system-test:
	@bash tools/ensure_system_packages.sh test

## ---- virtualenv (uv for speed; stamps so a second run installs nothing) ---------------

$(UV):
	@bash tools/bootstrap_venv.sh $(VENV) $(UV_VERSION)

$(VENV)/.runtime-installed: requirements.txt | $(UV)
	$(UV) pip install -q -p $(PY) -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(UV) pip install -q -p $(PY) -r requirements-dev.txt
	@touch $@

# openai-whisper is optional for users (it pulls torch) but always tested.
$(VENV)/.openai-whisper-installed: requirements-openai-whisper.txt $(VENV)/.runtime-installed
	$(UV) pip install -q -p $(PY) $(FIND_LINKS) -c requirements.txt -r requirements-openai-whisper.txt
	$(UV) pip install -q -p $(PY) --no-deps openai-whisper==20250625
	@touch $@

## ---- the two commands ---------------------------------------------------------------

run: system-runtime $(VENV)/.runtime-installed
	@$(PY) tools/run_pipeline.py

test: system-runtime system-test $(VENV)/.dev-installed $(VENV)/.openai-whisper-installed
	$(MAKE) --no-print-directory lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder

## ---- more -----------------------------------------------------------------------------

up: system-runtime $(VENV)/.runtime-installed
	@$(PY) tools/standalone.py

down:
	@$(PY) tools/local_postgres.py stop .data/postgres

bench: system-runtime system-test $(VENV)/.dev-installed
	HF_HUB_OFFLINE=1 $(PY) bench/bench_pipeline.py

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

lock: | $(UV)
	$(UV) pip compile -q -p 3.11 requirements.in -o requirements.txt
	$(UV) pip compile -q -p 3.11 requirements-dev.in -o requirements-dev.txt

clean:
	@if [ -x $(PY) ]; then $(PY) tools/local_postgres.py remove .data/postgres; fi
	rm -rf .data .airflow

# The Compose spec's JSON schema that tests/deploy validates docker-compose.yaml against
# (provenance in deploy/schema/README.md). Needs internet; review `git diff deploy/schema/`.
COMPOSE_SCHEMA_URL := https://raw.githubusercontent.com/compose-spec/compose-spec/main/schema/compose-spec.json
refresh-compose-schema: | $(UV)
	@$(PY) -c 'import json, sys, urllib.request; data = urllib.request.urlopen(sys.argv[1], timeout=60).read(); \
	schema = json.loads(data); assert schema.get("title") == "Compose Specification", "not the Compose schema"; \
	open(sys.argv[2], "wb").write(data)' $(COMPOSE_SCHEMA_URL) deploy/schema/compose-spec.json
	@echo "deploy/schema/compose-spec.json: git blob $$(git hash-object deploy/schema/compose-spec.json); update deploy/schema/README.md"
