# Parley. `make run` serves the embedded default; `make test` runs every test.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: help install dev-install browser-deps cluster-deps cluster cluster-down run test screenshots lint bench bench-deps capacity serve attack agent-model agent-eval clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(PYTHON):
	$(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(PYTHON)
	$(PYTHON) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt requirements.txt | $(PYTHON)
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	@touch $(VENV)/.installed $@

$(VENV)/.bench-installed: requirements-bench.txt requirements-dev.txt requirements.txt | $(PYTHON)
	$(PYTHON) -m pip install --quiet -r requirements-bench.txt
	@touch $(VENV)/.installed $(VENV)/.dev-installed $@

install: $(VENV)/.installed  ## Create .venv and install the runtime requirements

dev-install: $(VENV)/.dev-installed  ## Install runtime + test/tooling requirements

browser-deps:  ## Chromium for the browser tests, from the system packages (never downloaded by Playwright)
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "Installing Chromium from the system packages (apt-get)"; \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null; }; \
	fi

cluster-deps:  ## nginx for the multi-host run and its tests, from the system packages
	@if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then \
		echo "Installing nginx from the system packages (apt-get)"; \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q nginx >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q nginx >/dev/null; }; \
	fi

cluster: install cluster-deps  ## Several hosts on this machine (network namespaces, root): HOSTS=2, front on 127.0.0.1:CLUSTER_PORT
	$(PYTHON) -m deploy.cluster up --hosts $(or $(HOSTS),2) --port $(or $(CLUSTER_PORT),8080)

cluster-down:  ## Stop the hosts `make cluster` started and remove their namespaces
	$(PYTHON) -m deploy.cluster down

run: install  ## Migrate, seed demo accounts (DEBUG only), serve HTTP + websockets on HOST:PORT and run the worker
	$(PYTHON) manage.py migrate --noinput
	$(PYTHON) manage.py seed_demo
	@# The server and the webhook worker under one supervisor (config/serving/run.py): a process
	@# that exits is started again; Ctrl-C stops both.
	$(PYTHON) -m config.serving.run --host $(HOST) --port $(PORT)

test: dev-install browser-deps cluster-deps  ## Run the whole test suite
	$(PYTHON) manage.py collectstatic --noinput -v 0
	$(BIN)/pytest $(PYTEST_ARGS)

screenshots: dev-install browser-deps  ## Retake the docs' pictures of the inbox (docs/screenshots/) with the browser test
	$(PYTHON) manage.py collectstatic --noinput -v 0
	PARLEY_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -q tests/browser/test_inbox.py

lint: dev-install  ## ruff, mypy and the migrations check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(PYTHON) manage.py makemigrations --check --dry-run

serve: install  ## Production profile on PostgreSQL + Redis (see docs/operations.md)
	$(PYTHON) -m config.serving

bench-deps: $(VENV)/.bench-installed  ## wrk and pgbench (system packages) and the profiling tools
	@command -v pgbench >/dev/null 2>&1 || { echo "pgbench missing: install postgresql-client" >&2; exit 1; }
	@if ! command -v wrk >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q wrk >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q wrk >/dev/null; }; \
	fi

bench: bench-deps  ## Production profile vs the FastAPI peer, interleaved (BENCH_QUICK=1: quick); bench/results/
	$(PYTHON) -m bench.run

capacity: bench-deps  ## Sizing figures: CPU per message and per read, 10 000 idle websockets, the webhook queue's rate (bench/results/capacity.json)
	$(PYTHON) -m bench.capacity

attack: dev-install  ## schemathesis, bandit, check --deploy, makemigrations --check
	bash .ci/attack

agent-model: dev-install  ## Regenerate the agent's training file and retrain its intent model (messaging/agent/data/)
	$(PYTHON) -m messaging.agent.training.corpus
	$(PYTHON) -m messaging.agent.training.train

agent-eval: install  ## The agent on its evaluation sets: accuracy, confusion, human-request recall, false hand-offs
	$(PYTHON) -m messaging.agent.evaluate tests/messaging/agent/heldout.jsonl tests/messaging/agent/eval_set.jsonl tests/messaging/agent/eval_holdout.jsonl tests/messaging/agent/eval_dev.jsonl

clean:  ## Remove the virtualenv and local databases
	rm -rf $(VENV) db.sqlite3* .local staticfiles
