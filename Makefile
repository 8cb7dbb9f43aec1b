# Two command lines do all the set-up (see README):
#   make demo   — install into .venv, then run `xstilts search` on the embedded default
#   make test   — install into .venv, then run the test suite (what .ci/run runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch must be installed before the project, or pip pulls a multi-GB CUDA build.
# On a GPU host, set TORCH_SPEC to the build you want (e.g. TORCH_SPEC=torch).
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test lint clean-home

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/xstilts search

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check . && $(BIN)/mypy trainer spaces search dashboards

clean-home:
	rm -rf .xstilts
