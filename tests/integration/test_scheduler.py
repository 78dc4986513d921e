"""The DAGs on a real Airflow (scheduler, dag-processor, api-server; LocalExecutor), driven only over
its REST API, the way the UI drives it: trigger with a conf, Params refused at trigger time, a
backfill whose inputs are chosen by {ds}, repairing one failed day, and a task killed mid-shard.
The server is started once for this folder (tests/integration/conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from synth_tasks.environment import run_partition
from synth_tasks.storage import RunLayout, Store
from tests.fault_server import FaultServer
from tests.integration.airflow_server import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

DOCS = ROOT / "synth_tasks" / "include" / "sample_data" / "markdown_qa" / "docs"
# One markdown file per backfilled day, so each partition shows which day's input it was built from.
DAYS = {"2026-01-01": "ch03-04-comments.md", "2026-01-02": "ch06-03-if-let.md", "2026-01-03": "ch08-01-vectors.md"}
RUN_TIMEOUT_S = 420  # one markdown_qa run is 7 tasks; under load here a task takes 5-15 s


def layout(airflow, dag_id: str, partition: str) -> RunLayout:
    return RunLayout(Store(f"file://{airflow.data}"), dag_id, partition)


def final_records(lay: RunLayout) -> list[dict]:
    lines = [line for split in ("train", "validation")
             for line in lay.store.read_bytes(f"{lay.final_dir}/{split}.jsonl").decode().splitlines()]
    return [json.loads(line) for line in lines]


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and modification time (ns) of every file in ``folder``."""
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def markdown_qa(airflow):
    airflow.unpause("markdown_qa")
    return airflow


@pytest.fixture(scope="module")
def two_docs(airflow) -> Path:
    folder = airflow.base / "inputs" / "two-docs"
    folder.mkdir(parents=True)
    for name in ("ch03-04-comments.md", "ch06-03-if-let.md"):
        shutil.copy(DOCS / name, folder)
    return folder


def test_trigger_with_conf_runs_to_success_and_publishes_the_partition(markdown_qa, two_docs):
    run_id = "no-llm-two-docs"
    markdown_qa.trigger("markdown_qa", {"input_path": str(two_docs), "no_llm": True}, run_id)
    run = markdown_qa.wait_for_run("markdown_qa", run_id, timeout_s=RUN_TIMEOUT_S)
    assert run["state"] == "success"
    tis = markdown_qa.task_instances("markdown_qa", run_id)
    assert {t["task_id"] for t in tis} == {"prepare", "facts", "generate", "ground", "dedup", "render", "export"}
    assert all(t["state"] == "success" and t["try_number"] == 1 for t in tis), tis

    lay = layout(markdown_qa, "markdown_qa", run_partition(run_id))
    summary = lay.store.read_json(lay.summary)
    assert summary["run_id"] == run_id and summary["partition"] == f"run-{run_id}" == lay.partition
    assert summary["accounted_for"], summary["problems"]
    assert summary["config"]["no_llm"] is True and summary["config"]["input_path"] == str(two_docs)
    assert summary["usage"] == {} and summary["models"] == []  # no model was called
    assert summary["stages"]["prepare"]["input"] == summary["stages"]["prepare"]["kept"] == 2
    names = {p.name for p in (markdown_qa.data / "markdown_qa" / lay.partition / "final").iterdir()}
    assert {"train.jsonl", "validation.jsonl", "train.parquet", "validation.parquet"} <= names
    assert {n.split("-synthetic-data-")[0] for n in names if "-synthetic-data-" in n} == {"train", "validation"}
    records = final_records(lay)
    assert len(records) == summary["counts"]["train"] + summary["counts"]["validation"] > 0
    assert {r["source_file"].rsplit("/", 1)[1] for r in records} == {"ch03-04-comments.md", "ch06-03-if-let.md"}
    assert {r["model"] for r in records} == {"heuristic"}


def test_wrong_param_type_is_refused_at_trigger_and_unknown_field_fails_first_task_without_retry(
        markdown_qa, two_docs):
    refused = markdown_qa.trigger("markdown_qa", {"input_path": str(two_docs), "no_llm": "yes please"},
                                  "wrong-type", check=False)
    assert 400 <= refused.status_code < 500 and "no_llm" in refused.text, refused.text
    assert markdown_qa.api("GET", "/api/v2/dags/markdown_qa/dagRuns/wrong-type", check=False).status_code == 404

    run_id = "unknown-field"
    accepted = markdown_qa.trigger("markdown_qa", {"input_path": str(two_docs), "no_llm": True, "shard_sise": 8},
                                   run_id)
    assert accepted.status_code == 200  # Airflow accepts conf keys it has no Param for
    assert markdown_qa.wait_for_run("markdown_qa", run_id, timeout_s=RUN_TIMEOUT_S)["state"] == "failed"
    tis = {t["task_id"]: t for t in markdown_qa.task_instances("markdown_qa", run_id)}
    assert tis["prepare"]["state"] == "failed" and tis["prepare"]["try_number"] == 1  # no retry
    assert {t["state"] for name, t in tis.items() if name != "prepare"} == {"upstream_failed"}
    log = markdown_qa.task_log("markdown_qa", run_id, "prepare", 1)
    assert "shard_sise" in log and "Extra inputs are not permitted" in log, log[-3000:]


class Backfill:
    """A backfill of 2026-01-01..03 whose input_path selects each day's folder by {ds}."""

    def __init__(self, airflow):
        self.airflow = airflow
        self.days = airflow.base / "inputs" / "days"
        for ds, name in DAYS.items():
            (self.days / ds).mkdir(parents=True)
            shutil.copy(DOCS / name, self.days / ds / name)
        self.template = f"{self.days}/{{ds}}"
        self.created = airflow.create_backfill("markdown_qa", "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z",
                                               {"input_path": self.template, "no_llm": True}, max_active_runs=3)
        self._runs: dict[str, dict] | None = None

    def runs(self) -> dict[str, dict]:
        """The backfill's runs by day, once all three have finished."""
        deadline = time.monotonic() + RUN_TIMEOUT_S * 2
        while self._runs is None:
            runs = [r for r in self.airflow.dag_runs("markdown_qa", run_type=["backfill"])
                    if (r["logical_date"] or "")[:10] in DAYS]
            if len(runs) == 3 and all(r["state"] in ("success", "failed") for r in runs):
                self._runs = {r["logical_date"][:10]: r for r in runs}
                break
            assert time.monotonic() < deadline, f"backfill not done in time: {[(r['dag_run_id'], r['state']) for r in runs]}"
            time.sleep(2)
        return self._runs


@pytest.fixture(scope="module", autouse=True)
def january_backfill(markdown_qa):
    """Created before this module's first test, so that its three runs (which do not count against
    the DAG's one active run) overlap with the tests before the two that check it."""
    return Backfill(markdown_qa)


def test_backfill_of_three_days_builds_each_partition_from_its_own_days_input(markdown_qa, january_backfill):
    runs = january_backfill.runs()
    assert sorted(runs) == sorted(DAYS)
    assert {ds: r["state"] for ds, r in runs.items()} == {ds: "success" for ds in DAYS}
    assert (markdown_qa.data / "markdown_qa").is_dir()
    for ds, name in DAYS.items():
        lay = layout(markdown_qa, "markdown_qa", ds)  # backfills write the partition of their data interval
        summary = lay.store.read_json(lay.summary)
        assert summary["partition"] == ds and summary["run_id"] == runs[ds]["dag_run_id"]
        assert summary["accounted_for"], summary["problems"]
        assert summary["config"]["input_path"] == january_backfill.template  # the Param as given
        assert summary["stages"]["prepare"]["kept"] == 1
        sources = {r["source_file"] for r in final_records(lay)}
        assert sources == {f"file://{january_backfill.days}/{ds}/{name}"}, (ds, sources)


def test_a_failed_day_is_repaired_by_clearing_only_its_failed_tasks(markdown_qa, january_backfill):
    runs, days = january_backfill.runs(), january_backfill.days
    bad_day, good_days = "2026-01-02", ("2026-01-01", "2026-01-03")
    bad_run = runs[bad_day]["dag_run_id"]
    finals = {ds: markdown_qa.data / "markdown_qa" / ds / "final" for ds in good_days}
    before = {ds: fingerprint(f) | {"_summary.json": fingerprint(f.parent)["_summary.json"]} for ds, f in finals.items()}

    # The day's input turns out corrupt; re-running that day (clearing its run) fails at once, naming it.
    doc = days / bad_day / DAYS[bad_day]
    good_bytes = doc.read_bytes()
    doc.write_bytes(b"\x00\x01\x02 not markdown \xff\xfe")
    markdown_qa.api("POST", "/api/v2/dags/markdown_qa/clearTaskInstances", json={
        "dry_run": False, "only_failed": False, "dag_run_id": bad_run})
    assert markdown_qa.wait_for_run("markdown_qa", bad_run, timeout_s=RUN_TIMEOUT_S)["state"] == "failed"
    prepare = markdown_qa.task_instance("markdown_qa", bad_run, "prepare")
    assert prepare["state"] == "failed"
    log = markdown_qa.task_log("markdown_qa", bad_run, "prepare", prepare["try_number"])
    assert DAYS[bad_day] in log and "binary file (NUL bytes)" in log, log[-3000:]

    # Repaired input; clear only that run's failed task instances, as the UI's "Clear failed" does.
    doc.write_bytes(good_bytes)
    cleared = markdown_qa.clear_failed("markdown_qa", bad_run)
    assert cleared and {t["dag_run_id"] for t in cleared} == {bad_run}
    assert markdown_qa.wait_for_run("markdown_qa", bad_run, timeout_s=RUN_TIMEOUT_S)["state"] == "success"
    repaired = layout(markdown_qa, "markdown_qa", bad_day)
    assert repaired.store.read_json(repaired.summary)["accounted_for"]
    assert {r["source_file"].rsplit("/", 1)[1] for r in final_records(repaired)} == {DAYS[bad_day]}

    after = {ds: fingerprint(f) | {"_summary.json": fingerprint(f.parent)["_summary.json"]} for ds, f in finals.items()}
    assert after == before  # the other two days' files were neither rewritten nor touched
    assert {ds: markdown_qa.dag_run("markdown_qa", runs[ds]["dag_run_id"])["state"] for ds in good_days} == {
        ds: "success" for ds in good_days}


# ---------------------------------------------------------------------------------------------
# a task killed mid-shard
# ---------------------------------------------------------------------------------------------
def body_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def peer_closed(sock: socket.socket) -> bool:
    """The client hung up: its socket reads as end-of-file (a waiting HTTP client sends nothing)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class GatedServer(FaultServer):
    """The fake OpenAI endpoint, counting completed requests by body, which holds the request that
    arrives after ``hold_after`` completed ones until ``release`` is set: the test kills the task
    while that request is in flight. A reply is only counted as completed if its client is still
    there to read it."""

    def __init__(self, hold_after: int, **kwargs):
        super().__init__(**kwargs)
        self.hold_after = hold_after
        self.completed: Counter = Counter()
        self.aborted: list[str] = []
        self.holding, self.release = threading.Event(), threading.Event()
        self.held_socket: socket.socket | None = None
        self._count_lock = threading.Lock()

    def wait_held_client_gone(self, timeout_s: float = 60.0) -> float:
        """Seconds until the client of the held request hung up (its process is gone)."""
        started = time.monotonic()
        while not peer_closed(self.held_socket):
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"the held request's client still connected {timeout_s:.0f}s after the kill")
            time.sleep(0.05)
        return time.monotonic() - started

    def _act(self, h, action: str, body: dict) -> None:
        key = body_key(body)
        with self._count_lock:
            hold = not self.holding.is_set() and sum(self.completed.values()) == self.hold_after
            if hold:
                self.held_socket = h.connection
                self.holding.set()
        if hold:
            self.release.wait(timeout=600)
        if peer_closed(h.connection):
            with self._count_lock:
                self.aborted.append(key)
            h.close_connection = True
            return
        super()._act(h, action, body)
        with self._count_lock:
            self.completed[key] += 1


def wait_gone(pid: int, timeout_s: float = 30.0) -> None:
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still alive {timeout_s}s after SIGKILL")


def test_task_killed_mid_shard_is_retried_and_resends_no_completed_request(airflow):
    completed_before_kill = 5
    reply = "Student 1: What does the context say?\nStudent 2: It defines a random variable and its mean."
    with GatedServer(completed_before_kill, default_reply=reply) as llm:
        airflow.create_connection("fault_llm", "generic", llm.base_url, {"model": "fault-model", "provider": "vllm"})
        airflow.unpause("mind")
        run_id = "killed-mid-shard"
        # 2 contexts x 7 styles = 14 requests in one generate shard (shard_size fixed: the plan would
        # cut them into shards of 5), one at a time
        airflow.trigger("mind", {"llm_conn_id": "fault_llm", "max_chunks": 2, "concurrency": 1, "shard_size": 64,
                                 "dialogue_format": "text", "min_conversation_tokens": 0}, run_id)
        assert llm.holding.wait(timeout=RUN_TIMEOUT_S), "the generate task never reached its 6th request"
        ti = airflow.task_instance("mind", run_id, "generate", map_index=0)
        assert ti["state"] == "running" and ti["try_number"] == 1
        cmdline = Path(f"/proc/{ti['pid']}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert ti["id"] in cmdline, cmdline  # the task process itself ("airflow worker -- <ti id>")
        os.kill(ti["pid"], signal.SIGKILL)
        wait_gone(ti["pid"])
        # A killed process shows as a zombie a moment before its last thread has closed its sockets:
        # let the held request go only once its client is gone, so it cannot count as completed.
        llm.wait_held_client_gone()
        llm.release.set()

        run = airflow.wait_for_run("mind", run_id, timeout_s=RUN_TIMEOUT_S)
        assert run["state"] == "success"
        ti = airflow.task_instance("mind", run_id, "generate", map_index=0)
        assert ti["state"] == "success" and ti["try_number"] == 2
        duplicates = {k: n for k, n in llm.completed.items() if n > 1}
        arrivals = [body_key(b) for b in llm.requests]
        assert not duplicates, (f"{len(duplicates)} completed requests were sent again after the kill; arrival "
                                f"positions: {[[i for i, a in enumerate(arrivals) if a == k] for k in duplicates]}, "
                                f"aborted: {[arrivals.index(k) for k in llm.aborted]}")
        assert len(llm.completed) == 14 and len(llm.aborted) == 1
        assert llm.aborted[0] in llm.completed  # the one in flight at the kill was asked again, once
        assert len(llm.requests) == 15

    lay = layout(airflow, "mind", run_partition(run_id))
    summary = lay.store.read_json(lay.summary)
    assert summary["accounted_for"], summary["problems"]
    usage = summary["stages"]["generate"]["usage"]
    assert (usage["cache_hits"], usage["requests"]) == (completed_before_kill, 14 - completed_before_kill), usage
