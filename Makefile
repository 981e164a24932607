# FlowGate: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format proto openapi bench clean install

$(STAMP): backend/pyproject.toml backend/requirements-collector.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e 'backend[dev]'
	$(PY) -m pip install --quiet --require-hashes --no-deps -r backend/requirements-collector.txt
	@touch $(STAMP)

install: $(STAMP)

## Serve API + OpAMP on http://127.0.0.1:8000 (FLOWGATE_* variables honoured).
run: $(STAMP)
	$(VENV)/bin/flowgate serve

## Lint, types and the whole test suite (SQLite and PostgreSQL).
test: $(STAMP) lint
	cd backend && ../$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	cd backend && ../$(VENV)/bin/ruff check src tests scripts ../bench
	cd backend && ../$(VENV)/bin/ruff format --check src tests scripts ../bench
	cd backend && ../$(VENV)/bin/mypy src

format: $(STAMP)
	cd backend && ../$(VENV)/bin/ruff check --fix src tests scripts ../bench
	cd backend && ../$(VENV)/bin/ruff format src tests scripts ../bench

## Regenerate the OpAMP protobuf modules from backend/proto.
proto: $(STAMP)
	$(PY) backend/scripts/gen_proto.py

openapi: $(STAMP)
	$(VENV)/bin/flowgate openapi > docs/openapi.json

bench: $(STAMP)
	$(PY) bench/opamp_load.py --agents 1000 --transport ws

clean:
	rm -rf $(VENV) backend/.pytest_cache backend/.mypy_cache
