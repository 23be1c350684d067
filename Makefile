# Every target that needs the virtualenv builds it first; installs go through constraints.txt.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: setup test lint format demo bench schemas fixtures clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint
	@# The browser tests drive Debian's chromium; install it where we may (root, apt).
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
		|| (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver) || true; \
	fi
	$(BIN)/python -m pytest -q

schemas: setup
	$(BIN)/python -m shared.schema_export schemas

demo: setup
	$(BIN)/streamscribe demo

bench: setup
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.enrich_speed
	$(BIN)/python -m bench.semantic_speed
	$(BIN)/python -m bench.gateway

fixtures:
	bash scripts/make_fixtures.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
