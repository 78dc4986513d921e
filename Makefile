# Two commands on a fresh machine:  make run   (set up + run the MIND DAG)   make test
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export SYNTH_RUN_DIR := $(CURDIR)/.run
# Params for `make run`, as JSON, e.g. RUN_CONF='{"max_chunks": 2}'
RUN_CONF ?= {}

.PHONY: setup run test llm-up llm-down bench lock clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	# llama-cpp-python compiles from source on first install (~6 min on 2 cores); pip caches the wheel.
	$(PY) -m pip install -r requirements.lock
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

$(AIRFLOW_HOME)/airflow.db: | $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/migrate.log

llm-up: $(STAMP)
	$(PY) -m synth_tasks.llm.embedded start

llm-down:
	-$(PY) -m synth_tasks.llm.embedded stop

# The main job on the embedded defaults: the MIND DAG through Airflow (dag.test) on include/ samples.
run: $(STAMP) $(AIRFLOW_HOME)/airflow.db llm-up
	$(PY) -m synth_tasks.cli run-dag mind --conf '$(RUN_CONF)'

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP) llm-up
	$(PY) bench/bench_generation.py
	$(PY) bench/bench_quality.py

# Re-resolve requirements.in into requirements.lock in a scratch venv.
lock:
	rm -rf /tmp/synth-lock && $(PYTHON) -m venv /tmp/synth-lock
	/tmp/synth-lock/bin/pip install -q -r requirements.in
	/tmp/synth-lock/bin/pip freeze --exclude-editable > requirements.lock

clean: llm-down
	rm -rf data .airflow .run
