# One-command set-up: every target creates the venv and installs the pinned versions first.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install quickstart test lint bench clean-cache

$(STAMP): requirements/base.txt requirements/dev.txt requirements/constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	$(BIN)/pip install -q -c requirements/constraints.txt -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)  ## the whole pipeline on the built-in world (about 20-25 min on 2 cores)
	$(BIN)/python -m genixer.run

test: $(STAMP)  ## the default test suite (a few minutes on 2 cores)
	tests/install_chromium.sh  # the browser tests' Chromium, when missing (never fails)
	$(BIN)/python -m pytest -q

bench: $(STAMP)  ## speed / memory comparisons on the built-in world (benchmarks/README.md)
	$(BIN)/python -m benchmarks --quick

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean-cache:
	rm -rf .cache/genixer
