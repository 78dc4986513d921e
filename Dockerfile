# Airflow 3 + synth_tasks + the embedded llama.cpp server, from the project's own pinned files.
FROM python:3.11-slim-bookworm

# llama-cpp-python compiles llama.cpp at install time.
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/synth
COPY requirements.lock pyproject.toml README.md ./
# A portable build (x86-64-v3), not one for the build machine's CPU: see the Makefile.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
RUN pip install --no-cache-dir -r requirements.lock
# synth_tasks/include/ (prompts, samples, benchmark sets) is package data inside it.
COPY synth_tasks ./synth_tasks
COPY dags ./dags
COPY plugins ./plugins
RUN pip install --no-cache-dir --no-deps -e .

ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/synth/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/synth/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    SYNTH_DATA_ROOT=file:///opt/synth/data \
    SYNTH_RUN_DIR=/opt/synth/.run

EXPOSE 8080
# Standalone: scheduler, API server and DAG processor in one container (one machine). At scale,
# run the same image as separate Airflow components with the Celery or Kubernetes executor.
CMD ["bash", "-c", "python -m synth_tasks.llm.embedded start && exec airflow standalone"]
