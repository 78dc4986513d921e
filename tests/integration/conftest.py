"""One real Airflow (api-server, scheduler, dag-processor) for every integration test in this folder:
starting it costs 30-60 s here. It is stopped at the end of the session even when tests fail, and
the session fails if any of its processes outlived the stop.

Its folder (AIRFLOW_HOME, data root, inputs, process logs, screenshots) is a temporary folder of
its own, not pytest's tmp_path: other pytest sessions on the same machine prune old
pytest folders, and did delete a running server's inputs here. It is removed after a session
without failures and kept (its path printed) after one with failures."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.airflow_server import ROOT, AirflowServer

# Every DAG file of the project (each is named after its dag_id): the server must parse them all.
DAG_IDS = tuple(sorted(p.stem for p in (ROOT / "dags").glob("*.py") if not p.stem.startswith("_")))
LLM_POOL, LLM_POOL_SLOTS = "synth_llm", 4


@pytest.fixture(scope="session")
def airflow(request):
    base = Path(tempfile.mkdtemp(prefix="synth-airflow-it-"))
    server = AirflowServer(base)
    try:
        server.start(dag_ids=DAG_IDS)
        # What `make` does after `db migrate`: the pool every LLM-calling task runs in.
        server.ensure_pool(LLM_POOL, LLM_POOL_SLOTS, "LLM-calling tasks (size to the endpoint's capacity)")
        yield server
    finally:
        left = server.stop()
        if request.session.testsfailed:
            print(f"\nintegration Airflow folder kept for its logs: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
        assert not left, f"Airflow processes still alive after stop: {left}"
