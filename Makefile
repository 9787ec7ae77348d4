# `make run` serves the embedded default, `make test` runs the suite, `make lint` checks
# the code (ruff, mypy).
# Both set everything up first (a virtualenv in .venv with the project installed).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ASSETS := app/web/static/vendor/.installed
SUDO     := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint install assets schema clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jobgraph needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	@touch $@

# GraphiQL and xterm.js come from the npm registry (web/package-lock.json) and are
# served by jobgraph itself, so the UI works without internet access.
$(ASSETS): web/package.json web/package-lock.json web/copy-assets.sh
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed once to fetch the browser assets: apt-get install npm"; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error
	sh web/copy-assets.sh
	@touch $@

install: $(STAMP) $(ASSETS)

assets: $(ASSETS)

run: install
	$(BIN)/jobgraph migrate
	$(BIN)/jobgraph serve

# Headless Chromium drives tests/browser (GraphiQL and the terminal page, offline).
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: install $(CHROMIUM)
	$(BIN)/python -m pytest

# ruff (rules in pyproject.toml) and mypy (strict for app/domain and app/core): CI runs
# both before the tests and wants zero findings.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Rewrite schema.graphql from the live schema (a test fails when they differ).
schema: $(STAMP)
	$(BIN)/jobgraph export-schema --output schema.graphql

clean:
	rm -rf $(VENV) .jobgraph .pytest_cache web/node_modules app/web/static/vendor
