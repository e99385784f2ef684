# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned here (not in pyproject) so that pip takes the local CPU build instead of a CUDA one.
TORCH ?= torch==2.13.0

.PHONY: install test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/frame-gen demo --output demo

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) demo build src/*.egg-info .pytest_cache
