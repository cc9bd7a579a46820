# Each target sets itself up: a fresh clone needs only python3 (and apt-get for the
# services the tests start).
VENV   ?= .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench bench-smoke services clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/recsync demo

services:
	bash scripts/services.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check recsync tests bench
	$(VENV)/bin/ruff format --check recsync tests bench
	$(VENV)/bin/mypy recsync

test: $(STAMP) services lint
	$(VENV)/bin/pytest

bench: $(STAMP) services
	$(VENV)/bin/python -m bench

bench-smoke: $(STAMP) services
	$(VENV)/bin/python -m bench --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
