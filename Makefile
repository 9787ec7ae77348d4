# Two commands: `make run` serves the embedded default, `make test` runs the suite.
# Both set everything up first (a virtualenv in .venv with the project installed).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install schema clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jobgraph needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/jobgraph migrate
	$(BIN)/jobgraph serve

test: $(STAMP)
	$(BIN)/python -m pytest

# Rewrite schema.graphql from the live schema (a test fails when they differ).
schema: $(STAMP)
	$(BIN)/jobgraph export-schema --output schema.graphql

clean:
	rm -rf $(VENV) .jobgraph .pytest_cache
