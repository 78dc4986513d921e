# Airflow 3 + synth_tasks + the embedded llama.cpp server, from the project's own pinned files.
FROM python:3.11-slim-bookworm

# llama-cpp-python compiles llama.cpp at install time.
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/synth
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY synth_tasks ./synth_tasks
COPY dags ./dags
COPY plugins ./plugins
COPY include ./include
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
