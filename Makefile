# The commands people type. CI calls `make test` (see .ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
-include .env
export

.PHONY: help packages venv services services-down migrate seed run up cluster cluster-up stop down status test test-browser test-faults test-cluster lint format bench bench-queue bench-baseline capacity tokens

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

packages:  ## install missing Debian packages (MariaDB, Redis, nginx, build headers, Chromium, npm) when root
	@python3 scripts/devservices.py install-packages

.venv/.installed: requirements.txt requirements-dev.txt | packages
	@test -x $(PY) || python3 -m venv .venv
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

# Front-end libraries served as static files (uPlot for the sale dashboard), pinned in package-lock.json.
node_modules/.installed: package.json package-lock.json | packages
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

venv: packages .venv/.installed node_modules/.installed  ## create the virtual environment, install requirements and npm packages

services: venv  ## start project-owned MariaDB, Redis and the broker (idempotent)
	@$(PY) scripts/devservices.py up

services-down:  ## stop them
	@$(PY) scripts/devservices.py down

status:  ## show what is running
	@$(PY) scripts/devservices.py status; scripts/stack.sh status

migrate: services  ## apply migrations
	@$(PY) manage.py migrate --noinput -v 0

seed: migrate  ## seed demo data (only what is missing)
	@$(PY) manage.py seed_demo

run: seed  ## run the whole system in the foreground (Ctrl-C stops everything)
	@scripts/stack.sh run

up: seed  ## run the whole system in the background; returns once /readyz answers 200
	@scripts/stack.sh up

cluster: seed  ## the whole system as a cluster (Procfile.cluster: every process twice, one beat), foreground
	@PROCFILE=Procfile.cluster scripts/stack.sh run

cluster-up: seed  ## the cluster in the background; returns once /readyz answers 200 (stop with make stop)
	@PROCFILE=Procfile.cluster scripts/stack.sh up

stop:  ## stop the background system, keep the services running
	@scripts/stack.sh stop

down:  ## stop the background system and the services
	@scripts/stack.sh down

test: services  ## lint, migration check and the whole test suite (fault scenarios and browser tests included)
	@$(PY) -m ruff check .
	@$(PY) manage.py makemigrations --check --dry-run -v 1
	@DJANGO_ENV=test $(PY) -m pytest -m "not cluster" $(PYTEST_ARGS)

test-browser: services  ## only the browser tests (headless Chromium; also part of make test)
	@DJANGO_ENV=test $(PY) -m pytest -m browser $(PYTEST_ARGS)

test-faults: services  ## only the fault-injection tests (a private copy of the system; also part of make test)
	@DJANGO_ENV=test $(PY) -m pytest -m faults $(PYTEST_ARGS)

test-cluster: services  ## the cluster test: mixed load, kill -9 of the active relay and of a checkout consumer
	@DJANGO_ENV=test $(PY) -m pytest -m cluster -s $(PYTEST_ARGS)

lint: venv  ## ruff lint and format check
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .

format: venv  ## apply ruff formatting and safe fixes
	@$(PY) -m ruff check --fix .
	@$(PY) -m ruff format .

tokens: seed  ## write access tokens for users 1..1000 to k6/results/tokens.json
	@$(PY) manage.py issue_tokens --users 1-1000 --out k6/results/tokens.json

bench: seed  ## run a benchmark/load scenario: make bench SCENARIO=<name> (see k6/README.md)
	@scripts/bench.sh $(SCENARIO)

bench-baseline: venv  ## the same scenario against an older commit (REV=0f1a688), in a worktree on its own database; main stack stopped first
	@scripts/bench_baseline.sh

capacity: seed  ## the event simulation at 100/300/500/1000 VUs -> one table and chart (LEVELS=...)
	@scripts/capacity.sh

bench-queue: services  ## orders/s on one hot product: queue consumer vs synchronous checkout (BENCH_ARGS=...)
	@$(PY) manage.py bench_queue --out k6/results/bench-queue.json $(BENCH_ARGS)
