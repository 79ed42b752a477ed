# The two set-up commands of the README. Each works on a fresh machine with Python 3.11, pip and gcc.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO_RUN ?= runs/demo
DEMO_STEPS ?= 15000

.PHONY: demo test venv dev chromium lint clean

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

# The main job: train a Non-Syn VAE on rendered dSprites (resumed if interrupted), score it,
# and write its report. About 15 minutes on 2 CPU cores.
demo: venv
	if [ -f $(DEMO_RUN)/config.json ]; then \
	  $(BIN)/nsvae train --resume $(DEMO_RUN) --steps $(DEMO_STEPS); \
	else \
	  $(BIN)/nsvae train --model nonsyn --steps $(DEMO_STEPS) --run-dir $(DEMO_RUN); \
	fi
	$(BIN)/nsvae evaluate $(DEMO_RUN) --fast
	$(BIN)/nsvae report $(DEMO_RUN)

# Headless Chromium (Debian's package) for the report test; skipped when it cannot be installed.
chromium:
	command -v chromium >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium could not be installed: the report screenshot test will be skipped"

test: dev chromium
	$(BIN)/python -m pytest -n 2 -q

lint: dev
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info
