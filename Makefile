# Two commands matter: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PLATFORM_ENV ?= local
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DEMO_SCALE ?= demo
PORT ?= 3000
STANDINS_PID := $(DAGSTER_HOME)/standins.pid
STANDINS_LOG := $(DAGSTER_HOME)/standins.log
# The demo sends through the SOLAPI stand-in so messages and statistics show up; it stays dry_run
# if .env or the environment names any SOLAPI_BASE_URL (never a live send to a real provider).
DEMO_SEND_MODE := $(if $(filter local,$(PLATFORM_ENV)),$(if $(SOLAPI_BASE_URL),dry_run,$(shell grep -qs '^SOLAPI_BASE_URL=' .env && echo dry_run || echo live)),dry_run)

.PHONY: FORCE serve-distributed demo-showcase demo demo-distributed workers chaos demo-setup test test-unit test-integration test-e2e lint bench install services migrate seed standins standins-stop materialize serve dagster-home clean cdc-worker

## demo: set up everything, materialize every asset once, and serve the UI with the daemon
demo: demo-setup serve

## demo-setup: everything `demo` does except serving (for scripts and CI-like checks)
demo-setup: install services dagster-home migrate standins seed materialize demo-showcase

## demo-showcase: after the first materialization, one gfx table is paused (seed 003 §7.1) so the
## dashboard shows a PAUSED row; `gfx-sync resume --table wsop_chip_counts` brings it back
demo-showcase: install
	$(BIN)/platform exec -- $(BIN)/gfx-sync pause --table wsop_chip_counts --reason "demo: paused to show pause/resume on the dashboard"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py gfx_sync/cdc/_fastrows.c | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,local,debezium,distributed]'
	touch $@

install: $(VENV)/.installed

services: install
	$(BIN)/platform services ensure

DAGSTER_YAML ?= dagster.yaml
dagster-home: install
	mkdir -p $(DAGSTER_HOME)
	ln -sf $(CURDIR)/$(DAGSTER_YAML) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/platform exec -- $(BIN)/dagster instance concurrency set notion 1 > /dev/null

migrate: services
	$(BIN)/platform migrations apply

## standins: the API stand-ins, in the background (`serve` stops them with everything else)
standins: install dagster-home standins-stop
	nohup $(BIN)/python -m standins --scale $(DEMO_SCALE) > $(STANDINS_LOG) 2>&1 & echo $$! > $(STANDINS_PID)
	$(BIN)/python -m standins.wait

standins-stop:
	@if [ -f $(STANDINS_PID) ]; then kill $$(cat $(STANDINS_PID)) 2>/dev/null || true; rm -f $(STANDINS_PID); sleep 0.5; fi

seed: migrate standins
	for domain in consultation_backup gfx_sync messaging; do $(BIN)/python -m $$domain.demo --scale $(DEMO_SCALE) || exit 1; done
	$(BIN)/python -m gfx_sync.cdc init

## cdc-worker: stream gfx CDC into Supabase with sub-second lag (else the sensor applies every ~5 s)
cdc-worker: install
	$(BIN)/python -m gfx_sync.cdc worker

materialize: dagster-home
	MESSAGING_SEND_MODE=$${MESSAGING_SEND_MODE:-$(DEMO_SEND_MODE)} $(BIN)/platform exec -- $(BIN)/platform materialize-all

## serve: UI + daemon + CDC worker + webhook receiver, supervised; Ctrl-C or SIGTERM stops all
## of them and the stand-ins (logs in $(DAGSTER_HOME)/logs)
##
## SIGINT sent to make alone (not to its process group) is not passed on by make: make waits for
## its child. It does delete the file target being built, so the supervisor builds one
## ($(SERVING)) and stops everything when make deletes it.
SERVING = $(DAGSTER_HOME)/.serving
serve: $(SERVING)
$(SERVING): dagster-home FORCE
	@rm -f $@
	MESSAGING_SEND_MODE=$${MESSAGING_SEND_MODE:-$(DEMO_SEND_MODE)} exec $(BIN)/platform exec -- $(BIN)/platform up --port $(PORT) --adopt $(STANDINS_PID) --sentinel $@ $(UP_ARGS)
FORCE:

## demo-distributed: the demo on the distributed profile: PostgreSQL instance storage, RabbitMQ,
## steps of every run on $(N) Celery workers (Ctrl-C stops everything)
N ?= 2
DIST_HOME := $(CURDIR)/.dagster_home_distributed
demo-distributed: install
	$(BIN)/platform services ensure --distributed
	# Setup materializes with steps in-process (no workers yet), recorded in the shared instance.
	$(MAKE) demo-setup DAGSTER_HOME=$(DIST_HOME) PLATFORM_PROFILE=single DAGSTER_YAML=dagster.distributed.yaml
	$(MAKE) --no-print-directory serve-distributed DAGSTER_HOME=$(DIST_HOME)

serve-distributed: $(DIST_HOME)/.serving-distributed
$(DIST_HOME)/.serving-distributed: FORCE
	@rm -f $@
	PLATFORM_PROFILE=distributed DAGSTER_HOME=$(DIST_HOME) MESSAGING_SEND_MODE=$${MESSAGING_SEND_MODE:-$(DEMO_SEND_MODE)} \
	  exec $(BIN)/platform exec -- $(BIN)/platform up --port $(PORT) --workers $(N) --adopt $(DIST_HOME)/standins.pid --sentinel $@

## workers: N Celery workers of the distributed profile in the foreground (Ctrl-C stops them)
workers: install
	$(BIN)/platform services ensure --distributed
	PLATFORM_PROFILE=distributed DAGSTER_HOME=$(DIST_HOME) exec $(BIN)/platform exec -- \
	  $(BIN)/platform up --only-workers --workers $(N)

## test: the whole suite against the real local databases and the stand-ins
test: services
	$(BIN)/pytest -q -n 2 --dist loadfile

## test-unit: the pure tests alone (seconds; no database or server needed)
test-unit: install
	$(BIN)/pytest -q -m unit

test-integration: services
	$(BIN)/pytest -q -n 2 --dist loadfile -m integration

test-e2e: services
	$(BIN)/pytest -q -n 2 --dist loadfile -m e2e

## lint: formatting, lint rules, strict types on resources and pure modules, import rules
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## chaos: every sync path killed CHAOS_KILLS times (default 50) at random under injected faults,
## then verified row for row; the table goes to benchmarks/results/chaos.md
chaos: migrate
	$(BIN)/python -m tooling.chaos

## bench: benchmarks as ratios against a physical reference measured in the same run
bench: migrate
	$(BIN)/python -m benchmarks

clean: standins-stop
	rm -rf $(DAGSTER_HOME) .pytest_cache
