# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned here (not in pyproject) so that pip takes the local CPU build instead of a CUDA one.
TORCH ?= torch==2.13.0
UV ?= uv>=0.13,<0.14
# The browser test drives Debian's Chromium (nothing downloads a browser of its own).
CHROMIUM ?= /usr/bin/chromium

.PHONY: install install-dev browser lint test demo bench clean

# pip installs torch (it finds the pinned CPU build where the machine's pip configuration says) and uv, a
# faster installer, which installs the package and its extras beside it (it keeps the torch it finds
# installed: 16 CPU-s for everything against pip's 74). Neither compiles the modules it installs to
# bytecode (pip with --no-compile: torch's 2,300 took 18 of its 26 CPU-s; 15,000 in the dev extras):
# Python compiles the few thousand a run imports when it first imports them and keeps them, if it may write
# them (about 12 CPU-s, once, in the first `make test`; `import torch` compiles 750 in 2): make's commands
# run with bytecode writing on even where the environment turns it off (PYTHONDONTWRITEBYTECODE), or every
# process would compile again.
unexport PYTHONDONTWRITEBYTECODE

# The package alone (what the demo needs: onnxruntime and OpenVINO included); install-dev adds the dev extras (Ray, aiortc,
# playwright, pipecat...: what the tests and benchmarks need).
install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile --disable-pip-version-check "$(TORCH)" "$(UV)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[dev]"
	touch $@

browser:
	@test -x $(CHROMIUM) || { test "$$(id -u)" = 0 || { echo "the browser test needs Debian's chromium: sudo apt-get install chromium" >&2; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# ruff (pyflakes, import order, style) on src, tests, benchmarks, examples and mypy on src/: a new unused import or type error fails `make test`.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/python -m mypy

test: lint browser
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/frame-gen demo --output demo

bench: install-dev
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/template_cache.py
	$(BIN)/python benchmarks/live.py
	$(BIN)/python benchmarks/live_stages.py
	$(BIN)/python benchmarks/farm.py

clean:
	rm -rf $(VENV) demo build src/*.egg-info .pytest_cache
