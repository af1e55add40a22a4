# Two commands on a fresh Debian/Ubuntu machine with python3 and make:
#   make run    set up .venv, create ./inbox ./processed ./failed, start the daemon (SQLite ./ocrd.db)
#   make test   set up .venv with test tools, then ruff and the whole test suite
# VENV=/path/to/venv reuses an existing virtual environment.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PG_INITDB := $(wildcard /usr/lib/postgresql/*/bin/initdb)
CHROMIUM := $(shell command -v chromium >/dev/null && command -v chromedriver >/dev/null && echo yes)

.PHONY: run test install install-test dirs postgres chromium lint clean

run: install dirs
	$(BIN)/ocrd db upgrade
	exec $(BIN)/ocrd watch

test: install-test postgres chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

install: $(VENV)/.ocrd-installed
install-test: $(VENV)/.ocrd-test-installed

# Debian's python3 lacks ensurepip until python3-venv is installed: install it when root.
$(BIN)/pip:
	@$(PYTHON) -m venv $(VENV) || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)" >&2; exit 1; fi; }

# Stamp files: re-install only when pyproject.toml changes.
$(VENV)/.ocrd-installed: pyproject.toml setup.py | $(BIN)/pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.ocrd-test-installed: pyproject.toml setup.py | $(BIN)/pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.ocrd-installed

dirs:
	mkdir -p inbox processed failed

# The PostgreSQL tests start a throwaway server from the Debian binaries; they skip without them.
postgres:
ifeq ($(PG_INITDB),)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; \
	else echo "PostgreSQL binaries not found: the PostgreSQL tests will be skipped" >&2; fi
endif

# The review page tests drive Debian's chromium through chromedriver; they skip without them.
chromium:
ifneq ($(CHROMIUM),yes)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	else echo "chromium / chromedriver not found: the review page browser tests will be skipped" >&2; fi
endif

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
