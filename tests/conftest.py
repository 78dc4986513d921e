"""Shared fixtures. Airflow reads its settings when first imported, so the environment for it is
set here, before any test module imports airflow."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # not at import: conftest sets Airflow's environment before anything imports airflow
    from synth_tasks.storage import Store

ROOT = Path(__file__).resolve().parents[1]
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="synth-tests-"))

os.environ["AIRFLOW_HOME"] = str(_SESSION_TMP / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
# A second DAG bundle holds the test fixtures' DAGs (dag.test() runs only DAGs of a configured bundle).
FIXTURE_DAGS = ROOT / "tests" / "fixtures" / "dags"
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([
    {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
    {"name": "test-fixtures", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
     "kwargs": {"path": str(FIXTURE_DAGS)}},
])
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["SYNTH_DATA_ROOT"] = f"file://{_SESSION_TMP / 'data'}"
os.environ["SYNTH_RUN_DIR"] = str(_SESSION_TMP / "run")
os.environ["SYNTH_RETRY_DELAY_S"] = "1"
# Tests read inputs from their temporary folders and the fixtures, besides the shipped include/.
os.environ["SYNTH_INPUT_ROOTS"] = f"{tempfile.gettempdir()},{ROOT / 'tests' / 'fixtures'}"
# Tests use the embedded 135M model, whatever the shell chose for runs.
for var in ("SYNTH_LLM_BASE_URL", "SYNTH_LLM_PROVIDER", "SYNTH_LLM_MODEL", "SYNTH_LLM_API_KEY", "SYNTH_EMBEDDED_MODEL"):
    os.environ.pop(var, None)

DATA = ROOT / "tests" / "fixtures"
SAMPLE = ROOT / "include" / "sample_data" / "mind" / "prob140_sample.jsonl"


def load_dag(dag_id: str, folder: Path = ROOT / "dags"):
    """One DAG as Airflow's DagBag parses it from ``folder`` (a folder or one DAG file)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder)).dags[dag_id]


def run_state(obj) -> str:
    """A dag run's or task instance's state as a plain string (Airflow gives an enum or a str)."""
    return str(getattr(obj.state, "value", obj.state))


@dataclass
class DagRun:
    """One run of a DAG through ``dag.test()``: Airflow's dag run, the staging store and where the
    run's partition lies on it."""

    dag_run: Any  # what dag.test() returned
    store: Store  # the staging store the run wrote to
    base: str  # the run's partition folder: {data root}/{dag_id}/{partition}
    partition: str

    @property
    def state(self) -> str:
        return run_state(self.dag_run)

    @property
    def summary(self) -> dict | None:
        """The run summary (``base/_summary.json``), read now; None where the run did not write it."""
        url = f"{self.base}/_summary.json"
        return self.store.read_json(url) if self.store.exists(url) else None


def run_dag(dag, conf: dict) -> DagRun:
    """``dag.test()`` once with these Params, and where the run lives. ``dag.test()`` keeps the last
    run's Params on the DAG object, so callers name the input every time (a module's fixed defaults
    merged at the call: ``run_dag(dag, BASE_CONF | conf)``). The staging store comes from the
    environment as it is when this returns, so a test that points $SYNTH_DATA_ROOT elsewhere gets
    that store. The run's state is not checked here: callers assert it."""
    from synth_tasks.airflow_glue import environment_for

    dag_run = dag.test(run_conf=conf)
    layout = environment_for({"dag_run": dag_run}).layout(dag.dag_id)
    return DagRun(dag_run=dag_run, store=layout.store, base=layout.base, partition=layout.partition)


@pytest.fixture
def store(tmp_path):
    from synth_tasks.storage import Store

    return Store(f"file://{tmp_path}/stage")


@pytest.fixture
def layout(store):
    from synth_tasks.storage import RunLayout

    return RunLayout(store, "test_dag", "2026-01-01")


@pytest.fixture
def fault_server():
    from tests.fault_server import FaultServer

    with FaultServer() as server:
        yield server


@pytest.fixture(scope="session")
def embedded_llm():
    """The real embedded model, started once for the session and stopped after it."""
    from synth_tasks.llm import embedded
    from synth_tasks.llm.endpoint import resolve_endpoint

    embedded.start()
    try:
        yield resolve_endpoint()
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
def airflow_db():
    from airflow.utils import db

    db.resetdb()
    yield


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server (SeaweedFS) on 127.0.0.1 for the session; tests take a bucket of their own
    from it (``s3_server.new_bucket(...)``) so they never see each other's objects."""
    from tests.s3_server import SeaweedS3

    with SeaweedS3() as server:
        yield server
