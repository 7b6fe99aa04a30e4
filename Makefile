# GroomGuard: `make demo` and `make test` are the two commands a newcomer needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint bench model clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e . 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import groomguard, groomguard.adapters, groomguard.models" && touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(PIP) install -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import pytest, discord, nio, sklearn" && touch $@

demo: $(STAMP)
	$(VENV)/bin/groomguard demo

# The layer contracts (plain `lint-imports`, see pyproject) run first: CI's `make test` enforces them.
# The Synapse and PostgreSQL tests are part of the suite: a setup that fails stops the run, and
# GROOMGUARD_REQUIRE_SERVICES makes their fixtures fail (not skip) when a server is missing.
test: $(TEST_STAMP)
	bash tests/synapse/setup.sh
	bash tests/postgres/setup.sh
	bash tests/browser/setup.sh
	$(VENV)/bin/lint-imports --no-cache
	GROOMGUARD_REQUIRE_SERVICES=1 $(PY) -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check bot adapters models bench tests examples
	$(VENV)/bin/lint-imports --no-cache

bench: $(TEST_STAMP)
	$(PY) bench/engine.py
	$(PY) bench/store.py
	$(PY) bench/scale.py

model: $(TEST_STAMP)
	$(PY) -m groomguard.models.train

clean:
	rm -rf $(VENV) .groomguard-demo.db*
