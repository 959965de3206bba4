# The two commands a new user needs: `make demo` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check airflow cluster bench services requirements clean-state help

help:
	@echo "make demo    - set up (virtualenv, dependencies, embedded warehouse) and run the main job"
	@echo "make test    - set up, run the code's checks (make check) and the whole test suite against real servers"
	@echo "make airflow - run Airflow standalone on this repo's dags/ and plugins/ (http://localhost:8080)"
	@echo "make cluster - run docker-compose.yaml's services here as processes: Airflow on Celery, two workers (Ctrl-C stops)"
	@echo "make bench   - run the benchmarks in bench/"

# The virtualenv, rebuilt whenever the pinned requirements or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# The embedded warehouse unless one is configured; cdrflow remembers the choice in .state/warehouse,
# so `cdrflow files` and `cdrflow file ID` afterwards need no setting.
demo: $(STAMP)
	@if [ -z "$$CDRFLOW_DATABASE_URL$$AIRFLOW_CONN_CDRFLOW_WAREHOUSE" ]; then export CDRFLOW_DATABASE_URL=embedded; fi; \
	$(BIN)/cdrflow demo

services:
	bash scripts/install-test-services.sh

# The tests make their own databases (tests/conftest.py: 127.0.0.1:5432 or an embedded server)
# and ignore CDRFLOW_DATABASE_URL: they never touch a configured warehouse.
test: $(STAMP) services check
	$(BIN)/python -m pytest

# The code's own checks (configured in pyproject.toml): lint, format, types, layer contracts.
check: $(STAMP)
	$(BIN)/ruff check include dags plugins tests bench
	$(BIN)/ruff format --check include dags plugins tests bench
	$(BIN)/mypy
	PYTHONPATH=include $(BIN)/lint-imports

airflow: $(STAMP)
	bash scripts/airflow-standalone.sh

# docker-compose.yaml's topology as processes on this machine (scripts/cluster.py reads the compose
# file): Airflow on the CeleryExecutor with two workers, Redis, moto's S3, the warehouse on the
# PostgreSQL at 127.0.0.1:5432 (CDRFLOW_CLUSTER_PG_URL for another). In the foreground until Ctrl-C.
cluster: $(STAMP)
	bash scripts/cluster.sh up

bench: $(STAMP)
	$(BIN)/python bench/register_memory.py
	$(BIN)/python bench/load_asterisk.py --memory-rows 5000000
	$(BIN)/python bench/row_cost.py
	$(BIN)/python bench/many_files.py --repeat 3
	$(BIN)/python bench/numbering.py
	$(BIN)/python bench/rating.py
	$(BIN)/python bench/reports.py
	$(BIN)/python bench/api_cdrs.py
	$(BIN)/python bench/cluster.py

# Re-resolve requirements.in into the fully pinned requirements.txt.
requirements:
	rm -rf /tmp/cdrflow-reqs && $(PYTHON) -m venv /tmp/cdrflow-reqs
	/tmp/cdrflow-reqs/bin/pip install --quiet --upgrade pip
	/tmp/cdrflow-reqs/bin/pip install --quiet -r requirements.in
	{ echo "# Fully resolved, pinned dependency set for Python 3.11 (pip freeze of a fresh venv)."; \
	  echo "# Regenerate: make requirements (installs requirements.in into a fresh venv and freezes it)."; \
	  /tmp/cdrflow-reqs/bin/pip freeze; } > requirements.txt

clean-state:
	-$(BIN)/cdrflow db stop
	rm -rf .state
