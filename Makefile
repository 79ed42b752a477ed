# The two set-up commands of the README. Each works on a fresh machine with Python 3.11, pip and gcc.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_RUN ?= runs/demo

.PHONY: demo test venv dev lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The pinned CPU wheel first: any other torch request pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: venv
	$(BIN)/nsvae data render dsprites --sheet $(DEMO_RUN)/dsprites_contact_sheet.png

test: dev
	$(BIN)/python -m pytest -n 2 -q

lint: dev
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info
