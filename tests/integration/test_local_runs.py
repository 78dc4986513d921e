"""Local runs (``python -m synth_tasks.cli run-dag``) started together on a fresh Airflow database.

Each run goes through ``dag.test()``, which writes the DAG to the database first; two first runs
racing on that insert failed with ``UNIQUE constraint failed: dag.dag_id`` (1 of 4 runs started
within 3 s). ``run-dag`` now syncs the DAGs one process at a time before its run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FIXTURE_DAGS, ROOT

pytestmark = pytest.mark.integration

N_RUNS = 4


def test_first_runs_started_together_on_a_fresh_database_all_succeed(tmp_path):
    env = dict(os.environ)
    env |= {"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(FIXTURE_DAGS),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
                {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                 "kwargs": {}}]),
            "SYNTH_DATA_ROOT": f"file://{tmp_path / 'data'}"}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=300)
    runs = [subprocess.Popen([sys.executable, "-m", "synth_tasks.cli", "run-dag", "uppercase"], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(N_RUNS)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    failed = [out[-3000:] for run, out in zip(runs, outputs) if run.returncode != 0]
    assert failed == [], "\n=====\n".join(failed)
    assert all("accounted for: True" in out for out in outputs)
    partitions = sorted(p.name for p in (tmp_path / "data" / "uppercase").iterdir())
    assert len(partitions) == N_RUNS and all(p.startswith("run-manual__") for p in partitions)
