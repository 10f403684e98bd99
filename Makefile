# wxcompress: `make demo` runs one cycle on the embedded default; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0 (CPU) comes from a local wheel directory when the machine has one (pip's
# find-links); elsewhere from the package index.
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell pip config get global.find-links 2>/dev/null))
UV_FLAGS := $(if $(FIND_LINKS),--find-links $(FIND_LINKS),)
CONFIG ?= configs/demo.yaml
PYTEST_ARGS ?=
# Every Python process caches its compiled imports: where the environment sets
# PYTHONDONTWRITEBYTECODE, each one (test runs, Dask workers, flow runs, `wxc` calls)
# recompiles torch, xarray, prefect... from source, ~5 s a process.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test up down clean lint venv lock system-deps

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) $(UV_FLAGS) -r requirements.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	@touch $@

demo: venv
	$(VENV)/bin/wxc up
	$(VENV)/bin/wxc run --config $(CONFIG) --report .wxc/demo-report.json
	@$(VENV)/bin/wxc registry list --config $(CONFIG)
	@$(VENV)/bin/wxc status
	@echo "Prefect UI (left running; stop it with 'make down'): $$($(VENV)/bin/python -c 'from infra.stack import status; print(status()["ui"])')"

# OpenStack Swift (a real S3-compatible server, from Debian's packages) for the tests marked s3;
# where it cannot be installed (not root, no apt), those tests use moto's server instead.
SWIFT_PKGS := swift-proxy swift-account swift-container swift-object memcached
# SLURM's controller and node daemons with munge (Debian's packages) for the tests marked slurm:
# infra/slurm starts them on loopback (as root); elsewhere those tests are skipped.
SLURM_PKGS := slurmctld slurmd slurm-client munge
system-deps:
	@if ! command -v swift-proxy-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing OpenStack Swift (S3 server for the tests)..."; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $(SWIFT_PKGS)) >/dev/null 2>&1 \
	      || echo "note: could not install OpenStack Swift; s3 tests fall back to moto"; \
	  else echo "note: OpenStack Swift is not installed; s3 tests fall back to moto"; fi; \
	fi
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium (headless browser test of the Prefect UI)..."; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium) >/dev/null 2>&1 \
	      || echo "note: could not install Chromium; the UI test is skipped"; \
	  else echo "note: Chromium is not installed; the UI test is skipped"; fi; \
	fi
	@if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing SLURM and munge (a loopback cluster for the tests marked slurm)..."; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $(SLURM_PKGS)) >/dev/null 2>&1 \
	      || echo "note: could not install SLURM; the slurm tests are skipped"; \
	  else echo "note: SLURM is not installed; the slurm tests are skipped"; fi; \
	fi

test: venv system-deps lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# re-resolve requirements.lock after changing dependencies in pyproject.toml
lock: venv
	$(VENV)/bin/uv pip compile -q pyproject.toml --extra pipeline --extra dev $(UV_FLAGS) --python-version 3.11 -o requirements.lock

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

up: venv
	$(VENV)/bin/wxc up

down:
	@if [ -x $(VENV)/bin/wxc ]; then $(VENV)/bin/wxc down; fi

clean: down
	rm -rf .wxc .pytest_cache .ruff_cache
