# Each target is a one-liner and the name of the CI step it mirrors.
VENV ?= .venv
PY := $(VENV)/bin/python
TABLE ?= nao_core/tables/nb201_accuracy_table.csv.gz

.PHONY: install lint fmt test test-service test-all mutants bench-nb201 bench-controller

$(VENV)/.installed: pyproject.toml
	python3.11 -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e '.[test]' && touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

fmt: install
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

test: install
	$(PY) -m pytest -q -m "not slow"

# The service's claims with real worker processes (kill -9, cancel, fan-out): CI's second tier.
test-service: install
	$(PY) -m pytest -q -m service

test-all: install
	$(PY) -m pytest -q

# Targeted mutants of the core claims, each applied to a copy of the repo: a test must fail.
mutants: install
	$(PY) scripts/mutants.py

bench-nb201: install
	mkdir -p bench-out && $(VENV)/bin/nao bench nb201 --table $(TABLE) --methods nao,random,evolution --queries 50,100,150 --seeds 20 --signal c10_valid_acc_200ep --report c10_test_acc_200ep --json bench-out/nb201.json

bench-controller: install
	mkdir -p bench-out && $(VENV)/bin/nao bench controller --json bench-out/controller.json

.PHONY: bench-supernet
bench-supernet: install
	mkdir -p bench-out && $(VENV)/bin/nao bench supernet --json bench-out/supernet.json

# --- the service (issue #4) ---------------------------------------------------------------------
.PHONY: up worker api migrate
# make up PORT=8001 HOME=/tmp/x. HOME is also the shell's home, so it names the service's home
# only when given on make's command line; else NAO_HOME (from the environment, or ~/.nao).
PORT ?= 8000
NAO_HOME ?= ~/.nao
up: install
	$(VENV)/bin/nao up --port $(PORT) --home $(if $(filter command line,$(origin HOME)),$(HOME),$(NAO_HOME))

worker: install
	OMP_NUM_THREADS=1 $(VENV)/bin/nao worker

api: install
	$(VENV)/bin/nao api --host 127.0.0.1 --port 8000

migrate: install
	$(VENV)/bin/nao migrate

# --- the dashboard's screenshots in docs/img (Chromium + Playwright) -------------------------
.PHONY: screenshots
screenshots: install
	$(PY) benchmarks/dashboard_screenshots.py --out docs/img
