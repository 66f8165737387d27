# The two commands: `make demo` (the main job on the local stack) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The test suite runs its own stack, apart from the demo's, so `make test` never stops your demo.
export IDP_TEST_STATE_DIR ?= $(CURDIR)/.state/test

.PHONY: help install test unit integration lint demo stack-up stack-down stack-status clean

help:
	@echo "make demo   - start the local Keycloak + OpenLDAP stack and run the demo"
	@echo "make test   - install into $(VENV), start the test stack, run the whole suite, stop it"
	@echo "make unit   - only the fast unit tests (no servers)"
	@echo "make lint   - ruff and mypy"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m unit

integration: $(STAMP)
	$(BIN)/pytest -m integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(STAMP)
	scripts/demo.sh

stack-up: $(STAMP)
	$(BIN)/idp-agent stack up

stack-down: $(STAMP)
	$(BIN)/idp-agent stack down

stack-status: $(STAMP)
	$(BIN)/idp-agent stack status

clean:
	-$(BIN)/idp-agent stack down --state-dir $(IDP_TEST_STATE_DIR)
	rm -rf $(VENV) .state .mypy_cache .ruff_cache .pytest_cache
