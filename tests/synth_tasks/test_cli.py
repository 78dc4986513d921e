"""Local runs through the CLI end promptly: on a task failure (no waiting for retry delays) and on
SIGTERM (the whole run's process group goes, at once)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.airflow]

SMALL = '{"max_chunks": 1, "styles": ["interview"], "max_tokens": 32, "max_retries": 0}'


def _cli(env_extra: dict, *args: str) -> subprocess.Popen:
    env = dict(os.environ) | {"SYNTH_RETRY_DELAY_S": "300"} | env_extra  # a retry would wait 5 minutes
    return subprocess.Popen([sys.executable, "-m", "synth_tasks.cli", "run-dag", "mind", "--conf", SMALL, *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "synth_tasks.airflow_glue mind" in line]


def test_a_failed_task_ends_the_local_run_at_once(airflow_db, tmp_path):
    # No LLM endpoint anywhere: generate fails (a failure Airflow would retry after the delay).
    env = {"SYNTH_RUN_DIR": str(tmp_path / "no-server")}
    started = time.monotonic()
    proc = _cli(env)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode != 0
    assert "ended failed" in out and "no LLM endpoint" in out
    assert time.monotonic() - started < 200  # far less than the 300 s retry delay


@pytest.fixture
def silent_endpoint():
    """An address that accepts connections and never answers: a request to it hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_sigterm_stops_the_local_run_and_its_tasks(airflow_db, silent_endpoint):
    proc = _cli({"SYNTH_LLM_BASE_URL": silent_endpoint, "SYNTH_LLM_MODEL": "m", "SYNTH_LLM_PROVIDER": "vllm"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    while not any("running task <TaskInstance: mind.generate" in line for line in lines):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines[-20:])
        time.sleep(0.5)
    time.sleep(2)  # generate is now waiting on the silent endpoint
    assert _run_processes()
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 128 + signal.SIGTERM
    time.sleep(0.5)
    assert _run_processes() == []
