"""The MIND DAG through Airflow (dag.test) against the real embedded model."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import SAMPLE, load_dag, run_dag, run_state

pytestmark = [pytest.mark.llm, pytest.mark.airflow]

SMALL = {"max_chunks": 2, "styles": ["teacher_student", "two_students", "interview"], "max_tokens": 256,
         "shard_size": 4, "train_ratio": 0.5}
# dag.test() keeps the last run's Params on the DAG object: every run names its input
BASE_CONF = {"input_path": "include/sample_data/mind/prob140_sample.jsonl"}


@pytest.fixture(scope="module")
def mind_dag(airflow_db):
    return load_dag("mind")


def _jsonl(store, url):
    return [json.loads(line) for line in store.read_bytes(url).decode().splitlines()]


def test_mind_end_to_end_then_rerun_from_cache(mind_dag, embedded_llm):
    run = run_dag(mind_dag, BASE_CONF | SMALL)
    assert run.state == "success"
    store, base = run.store, run.base
    summary = store.read_json(f"{base}/_summary.json")
    assert summary["accounted_for"] and summary["problems"] == []
    stages = summary["stages"]
    n_jobs = 2 * len(SMALL["styles"])
    assert stages["prepare"]["produced"] == stages["generate"]["input"] == n_jobs
    assert stages["generate"]["kept"] + stages["generate"]["failed"] == n_jobs
    assert stages["generate"]["kept"] >= n_jobs - 2, stages["generate"]["error_kinds"]
    assert summary["usage"]["requests"] >= n_jobs and summary["usage"]["completion_tokens"] > 0
    assert summary["models"] == ["smollm2-135m-instruct"]

    # every job got a real answer from the model
    generations = [r for url in store.glob(f"{base}/generate/part-*.parquet") for r in store.read_parquet(url)]
    assert len(generations) == stages["generate"]["kept"]
    assert all(g["raw_text"].strip() for g in generations)

    # the ledger has one row per record per stage, and the rows match the summary
    for stage in ("prepare", "generate", "filter", "export"):
        rows = [r for url in store.glob(f"{base}/_ledger/{stage}/*.parquet") for r in store.read_parquet(url)]
        assert len(rows) == stages[stage]["input"]
        assert sum(r["outcome"] == "kept" for r in rows) == stages[stage]["kept"]
        assert all(r["reason"] for r in rows if r["outcome"] == "filtered")

    # On the embedded server dialogues come as JSON turns (dialogue_format auto): the 135M model then
    # keeps to two speakers, and seeded sampling makes the kept records repeat (4 of 6 here).
    assert summary["info"]["dialogue_format"] == "json_turns"
    train, val = _jsonl(store, summary["outputs"]["train_jsonl"]), _jsonl(store, summary["outputs"]["validation_jsonl"])
    assert len(train) + len(val) == stages["filter"]["kept"] == stages["export"]["produced"] >= 1
    for record in train + val:
        assert record["n_turns"] >= 4 and record["n_tokens"] >= 50
        speakers = {line.split(":", 1)[0] for line in record["text"].split("\n\n")}
        assert len(speakers) == 2 and speakers <= {"Teacher", "Student", "Student 1", "Student 2", "Interviewer", "Expert"}
    dropped = [r for url in store.glob(f"{base}/_dropped/filter/*.parquet") for r in store.read_parquet(url)]
    assert len(dropped) == stages["filter"]["filtered"] and all(d["reason"] and d["text"] for d in dropped)

    # A second run takes every accepted answer from the response cache. An answer that failed its
    # schema was not cached, so the job's first request is sent again, and its repair too unless
    # the same repair was accepted before (the server's answers may differ slightly once sent again).
    run2 = run_dag(mind_dag, BASE_CONF | SMALL)
    store, base2 = run2.store, run2.base
    assert run2.state == "success" and base2 != base
    summary2 = store.read_json(f"{base2}/_summary.json")
    rejected_first = summary["usage"]["requests"] - n_jobs  # each was followed by one repair request
    assert rejected_first <= summary2["usage"]["requests"] <= 2 * rejected_first
    assert summary2["usage"]["cache_hits"] >= n_jobs - rejected_first and summary2["accounted_for"]


DIALOGUE = ("Teacher: Today we look at the variance of a random variable and why we square deviations.\n"
            "Student: Why square them instead of taking the absolute value of each deviation?\n"
            "Teacher: Squares keep the algebra linear in expectations, so variances of sums add up nicely.\n"
            "Student: So the standard deviation is the square root, back in the units of the variable.")


def test_records_reach_final_with_their_full_shape(mind_dag, fault_server, monkeypatch):
    """The same DAG on an OpenAI-compatible endpoint that always answers with a two-speaker dialogue:
    every job becomes a record in final/, split by source document, in the MIND record shape."""
    fault_server.default_reply = DIALOGUE
    monkeypatch.setenv("SYNTH_LLM_BASE_URL", fault_server.base_url)
    monkeypatch.setenv("SYNTH_LLM_MODEL", "fault-model")
    # one scripted dialogue for every context: about variance, off the topic of most of them, and
    # this test is about the record's shape (the topic check has its own tests)
    run = run_dag(mind_dag, BASE_CONF | SMALL | {"train_ratio": 0.5, "min_topic_overlap": 0})
    assert run.state == "success"
    store, base = run.store, run.base
    summary = store.read_json(f"{base}/_summary.json")
    n_jobs = 2 * len(SMALL["styles"])
    assert summary["stages"]["filter"]["kept"] == n_jobs and summary["accounted_for"]
    train, val = _jsonl(store, summary["outputs"]["train_jsonl"]), _jsonl(store, summary["outputs"]["validation_jsonl"])
    assert train and val and len(train) + len(val) == n_jobs
    assert {r["source_id"] for r in train}.isdisjoint({r["source_id"] for r in val})
    for record in train + val:
        assert {"id", "text", "style", "source_id", "chunk_id", "model", "messages"} <= set(record)
        assert record["n_tokens"] >= 50 and record["n_turns"] == 4 and record["model"] == "fault-model"
        assert record["text"].startswith("Teacher: Today we look at the variance")
        assert [m["role"] for m in record["messages"]] == ["user", "assistant", "user", "assistant"]


def test_bad_files_fail_alone_and_the_run_goes_on(mind_dag, embedded_llm, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "good.jsonl")
    (folder / "corrupt.parquet").write_bytes(b"PAR1 garbage")
    (folder / "latin1.jsonl").write_bytes(b'{"id": "x", "text": "caf\xe9"}\n')
    run = run_dag(mind_dag, BASE_CONF | SMALL | {"input_path": str(folder), "max_chunks": 1})
    assert run.state == "success"
    store, base = run.store, run.base
    prepare = store.read_json(f"{base}/_summary.json")["stages"]["prepare"]
    assert prepare["error_kinds"] == {"bad_file": 1, "bad_row": 1} and prepare["kept"] == 1
    ledger = {r["record_id"]: r for r in store.read_parquet(f"{base}/_ledger/prepare/part-00000.parquet")}
    assert "latin1.jsonl row 1: not UTF-8" in ledger["latin1.jsonl#1"]["error"]
    assert "corrupt.parquet: not a readable Parquet file" in ledger[f"file://{folder}/corrupt.parquet"]["error"]


def test_unusable_input_fails_the_run_at_the_start_without_retries(mind_dag, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    run = run_dag(mind_dag, BASE_CONF | {"input_path": str(empty)})
    assert run.state == "failed"
    ti = run.dag_run.get_task_instance("prepare")
    assert str(getattr(ti.state, "value", ti.state)) == "failed" and ti.try_number == 1


def test_bad_params_are_refused_naming_the_field(mind_dag):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="chunk_tokens"):
        mind_dag.test(run_conf={"chunk_tokens": 5})
    with pytest.raises(ParamValidationError, match="styles"):
        mind_dag.test(run_conf={"styles": ["sonnet"]})


def test_an_input_outside_the_allowed_roots_fails_at_once_naming_it(mind_dag, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SYNTH_INPUT_ROOTS", str(tmp_path))
    secret = "/etc/hostname"
    run = run_dag(mind_dag, BASE_CONF | {"input_path": secret})
    ti = run.dag_run.get_task_instance("prepare")
    assert run.state == "failed" and run_state(ti) == "failed" and ti.try_number == 1


def test_a_named_connection_that_does_not_exist_fails_the_run_naming_it(mind_dag):
    run = run_dag(mind_dag, BASE_CONF | SMALL | {"llm_conn_id": "vllm_prod_typo"})
    failed = {(ti.task_id, ti.try_number) for ti in run.dag_run.get_task_instances() if run_state(ti) == "failed"}
    # checked in prepare, before it rewrites the partition, not in the first LLM stage
    assert run.state == "failed" and failed == {("prepare", 1)}, failed
