# gigaam-api — every entry point a person or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Empty: the HOST/PORT settings (.env / environment, default 0.0.0.0:8000) decide.
HOST ?=
PORT ?=
# Native runs keep weights in ./models unless MODELS_DIR is set in the environment or .env:
# the settings default, /data/models, is the Docker volume path and needs root elsewhere.
NATIVE_MODELS_DIR = if [ -z "$${MODELS_DIR:-}" ] && ! grep -qs '^MODELS_DIR=' .env; then export MODELS_DIR=./models; fi
# Likewise durable jobs live in ./data/jobs natively (/data/jobs is the Docker volume path).
NATIVE_JOBS_DIR = if [ -z "$${JOBS_DIR:-}" ] && ! grep -qs '^JOBS_DIR=' .env; then export JOBS_DIR=./data/jobs; fi


.PHONY: help install chromium run test test-integration pre-commit check lint format typecheck pytest bench download-weights download-weights-local build-docker image-test up down logs lock clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

chromium:  ## make sure Debian's chromium is installed (the web page's browser tests use it)
	@scripts/ensure-chromium.sh >/dev/null

# requirements-dev.lock pins every package, transitive ones included, so installs are reproducible.
$(BIN)/gigaam-api: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements-dev.lock -e '.[dev]'
	@touch $@

install: $(BIN)/gigaam-api  ## create .venv and install the project with dev tools

run: install  ## install and start the server (settings from .env / environment)
	@$(NATIVE_MODELS_DIR); $(NATIVE_JOBS_DIR); exec $(BIN)/gigaam-api serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

test: install chromium  ## install everything and run the whole suite: lint, format, types, tests
	$(MAKE) check

# The suites that run real components (a uvicorn server over TCP or a server process, Chromium,
# PostgreSQL, the Wyoming door): tests/conftest.py marks them `integration` from what each test
# module uses, so a new such file is selected without being listed here. `make test` runs them too.
test-integration: install chromium  ## only the integration suites: real server, browser, PostgreSQL, Wyoming
	$(BIN)/pytest -q -m integration

# Exactly the steps of .ci/run (tests/test_makefile.py holds the two together): the image test is
# included because it is the only check of the Dockerfile as built, and a push that passes this
# passes CI. Like CI it needs root on Debian 12 (podman; apt-get for what is missing).
pre-commit:  ## before a push: what CI runs (.ci/run): `make test`, then `make image-test` (root)
	$(MAKE) test
	$(MAKE) image-test

check: lint typecheck pytest  ## lint + format check + types + tests (needs `make install`)

lint:
	$(BIN)/ruff check gigaam_api tests benchmarks
	$(BIN)/ruff format --check gigaam_api tests benchmarks

format:  ## apply ruff formatting and autofixes
	$(BIN)/ruff format gigaam_api tests benchmarks
	$(BIN)/ruff check --fix gigaam_api tests benchmarks

typecheck:
	$(BIN)/mypy
	$(BIN)/mypy benchmarks/*.py  # scripts run by hand: checked so a refactor cannot break them

pytest:
	$(BIN)/pytest -q

bench: install  ## speed and memory benchmarks (reported, never asserted)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/memory.py

# ./models is made first so it belongs to you, not to root (the container writes as UID 1000).
download-weights:  ## download MODEL's weights into ./models through Docker, before `make up`
	mkdir -p models
	docker compose --profile tools run --rm download-weights

download-weights-local: install  ## download MODEL's weights into MODELS_DIR (default ./models)
	@$(NATIVE_MODELS_DIR); exec $(BIN)/gigaam-api download

build-docker:  ## build the Docker image
	docker build -t gigaam-api:latest .

image-test:  ## build the image with podman and run it (root, Debian 12; see scripts/image-test.sh)
	scripts/image-test.sh

up:  ## start with docker compose
	docker compose up -d

down:
	docker compose down

logs:
	docker compose logs -f

lock:  ## re-resolve requirements*.lock from pyproject.toml in a throw-away venv
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet .
	.lock-venv/bin/pip freeze --exclude gigaam-api > requirements.lock
	.lock-venv/bin/pip install --quiet '.[dev]'
	.lock-venv/bin/pip freeze --exclude gigaam-api > requirements-dev.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
