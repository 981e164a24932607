# FlowGate: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run ui test lint format proto openapi bench clean install \
	frontend-install frontend-lint frontend-test screenshots

# Node steps (the web UI in frontend/) run when npm is installed. Without it they are skipped with
# a note, so the API can be developed with Python alone; under CI=true Node is required.
NODE_GUARD = if ! command -v npm >/dev/null 2>&1; then \
	if [ "$${CI:-}" = true ]; then echo "error: Node 20 (npm) is required when CI=true" >&2; exit 1; fi; \
	echo "note: npm not found: skipping $@ (install Node 20 for the web UI)"; exit 0; fi

$(STAMP): backend/pyproject.toml backend/requirements-collector.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e 'backend[dev]'
	$(PY) -m pip install --quiet --require-hashes --no-deps -r backend/requirements-collector.txt
	@touch $(STAMP)

install: $(STAMP) frontend-install

frontend-install:
	@$(NODE_GUARD); cd frontend && \
		{ [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }

## Serve the UI, API and OpAMP on http://127.0.0.1:8000 (FLOWGATE_* variables honoured).
run: $(STAMP) ui
	$(VENV)/bin/flowgate serve

## Build the web UI into backend/src/flowgate/ui/static when Node is installed. Never fails:
## without Node (or when the build fails) the server still runs and says how to get the UI.
ui:
	@if [ ! -f frontend/package.json ]; then \
		echo "note: no frontend/package.json; serving without the web UI"; \
	elif ! command -v npm >/dev/null 2>&1; then \
		echo "note: npm not found; install Node 20 to build the web UI (the API runs without it)"; \
	else \
		( cd frontend && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci; } \
			&& npm run build ) \
		|| echo "warning: the web UI build failed (see above); serving the previous build, if any"; \
	fi

## Lint, types and the whole test suite (UI unit tests; SQLite, PostgreSQL and the browser tests).
## The browser tests (backend/tests/ui) build the UI first when it is missing or stale.
test: $(STAMP) lint frontend-test
	cd backend && ../$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP) frontend-lint
	cd backend && ../$(VENV)/bin/ruff check src tests scripts ../bench
	cd backend && ../$(VENV)/bin/ruff format --check src tests scripts ../bench
	cd backend && ../$(VENV)/bin/mypy src

## The UI's static checks: TypeScript (strict), ESLint, and api-types.ts matching the OpenAPI document.
frontend-lint: $(STAMP) frontend-install
	@$(NODE_GUARD); cd frontend && npx tsc --noEmit && npx eslint . --max-warnings 0 && npm run --silent check:api

frontend-test: frontend-install
	@$(NODE_GUARD); cd frontend && npx vitest run

## Re-take docs/screenshots/*.png from the browser tests (live data from real agents).
screenshots: $(STAMP)
	cd backend && FLOWGATE_UI_SCREENSHOTS=1 ../$(PY) -m pytest -q -p no:cacheprovider tests/ui

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
	rm -rf $(VENV) backend/.pytest_cache backend/.mypy_cache frontend/node_modules
