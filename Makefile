# Two command lines do all the set-up (see README):
#   make demo   — install into .venv, then run `xstilts search` on the embedded default
#   make test   — install into .venv, then run the test suite (what .ci/run runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch must be installed before the project, or pip pulls a multi-GB CUDA build.
# On a GPU host, set TORCH_SPEC to the build you want (e.g. TORCH_SPEC=torch).
TORCH_SPEC ?= torch==2.13.0

.PHONY: install chromium demo test test-all lint clean-home

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(MAKE) --no-print-directory chromium
	touch $@

install: $(BIN)/.installed

# The MLflow UI test drives Debian's chromium through Playwright (executable_path=/usr/bin/chromium).
# Never `playwright install`: it downloads a browser from a CDN and fails without internet.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@if command -v chromium >/dev/null 2>&1; then \
		echo "chromium: $$(command -v chromium)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "warning: no chromium and no apt-get: the real-browser test will be skipped" >&2; \
	fi

demo: install
	$(BIN)/xstilts search

test: install chromium
	$(BIN)/python -m pytest -q -m "not heavy"

test-all: install chromium  # every test, the heavy end-to-end runs too (about 10 min more)
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check . && $(BIN)/mypy trainer spaces search dashboards

clean-home:
	rm -rf .xstilts
