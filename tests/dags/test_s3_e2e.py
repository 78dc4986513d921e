"""A whole DAG run on S3: staging, input and the LLM response cache all on a real S3 server
(SeaweedFS, tests/s3_server.py), the LLM a local OpenAI-compatible fake (tests/fault_server.py)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import SAMPLE, load_dag, run_dag

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

# min_topic_overlap 0: one scripted dialogue answers every context, off the topic of most of them,
# and this test is about storage on S3 (the topic check has its own tests).
CONF = {"max_chunks": 2, "styles": ["teacher_student", "two_students", "interview"], "max_tokens": 256,
        "shard_size": 4, "train_ratio": 0.5, "min_topic_overlap": 0}
N_JOBS = 2 * len(CONF["styles"])
DIALOGUE = ("Teacher: Today we look at the variance of a random variable and why we square deviations.\n"
            "Student: Why square them instead of taking the absolute value of each deviation?\n"
            "Teacher: Squares keep the algebra linear in expectations, so variances of sums add up nicely.\n"
            "Student: So the standard deviation is the square root, back in the units of the variable.")


@pytest.fixture(scope="module")
def mind_dag(airflow_db):
    return load_dag("mind")


def _keys(client, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``, listed by the server itself (not through the project's Store)."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _get(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_mind_runs_on_s3_and_reruns_from_the_cache_there(mind_dag, s3_server, fault_server, monkeypatch):
    bucket, client = s3_server.new_bucket("e2e"), s3_server.client()
    local_root = os.environ["SYNTH_DATA_ROOT"].removeprefix("file://")  # the session's, before this test's
    client.put_object(Bucket=bucket, Key="inputs/2026-01-01/sample.jsonl", Body=SAMPLE.read_bytes())
    monkeypatch.setenv("AIRFLOW_CONN_E2E_S3", s3_server.airflow_conn())
    monkeypatch.setenv("SYNTH_STORAGE_CONN_ID", "e2e_s3")  # staging and inputs: one connection
    monkeypatch.setenv("SYNTH_DATA_ROOT", f"s3://{bucket}/staging")
    monkeypatch.setenv("SYNTH_INPUT_ROOTS", f"{os.environ['SYNTH_INPUT_ROOTS']},s3://{bucket}/inputs")
    fault_server.default_reply = DIALOGUE
    monkeypatch.setenv("SYNTH_LLM_BASE_URL", fault_server.base_url)
    monkeypatch.setenv("SYNTH_LLM_MODEL", "fault-model")
    conf = CONF | {"input_path": f"s3://{bucket}/inputs/2026-01-01/sample.jsonl"}

    def run():
        run = run_dag(mind_dag, conf)
        assert run.state == "success"
        prefix = f"staging/mind/{run.partition}/"
        return prefix, json.loads(_get(client, bucket, prefix + "_summary.json")), _xcoms(run.dag_run.run_id)

    prefix, summary, xcoms = run()
    keys = _keys(client, bucket, prefix)
    final = {k.removeprefix(prefix + "final/") for k in keys if k.startswith(prefix + "final/")}
    assert {"train.jsonl", "validation.jsonl", "train.parquet", "validation.parquet"} <= final
    assert prefix + "_summary.json" in keys
    assert not [k for k in keys if "/_staging/" in k]  # published, and the staged copy removed
    # every output the summary (and the export's XCom) names is an object in this bucket
    assert all(url.startswith(f"s3://{bucket}/{prefix}final/") for url in summary["outputs"].values())

    # the counts add up: every job answered, all kept, split into train + validation
    assert summary["accounted_for"] and summary["problems"] == []
    stages = summary["stages"]
    assert stages["prepare"]["produced"] == stages["generate"]["input"] == N_JOBS
    assert stages["filter"]["kept"] == stages["export"]["produced"] == N_JOBS
    train = _get(client, bucket, prefix + "final/train.jsonl").decode().splitlines()
    validation = _get(client, bucket, prefix + "final/validation.jsonl").decode().splitlines()
    assert len(train) == summary["counts"]["train"] and len(validation) == summary["counts"]["validation"]
    assert len(train) + len(validation) == N_JOBS and train and validation
    assert {json.loads(r)["source_file"] for r in train + validation} == {
        f"s3://{bucket}/inputs/2026-01-01/sample.jsonl"}
    # the ledger on S3 has one row per record per stage
    for stage in ("prepare", "generate", "filter", "export"):
        rows = [r for k in keys if k.startswith(f"{prefix}_ledger/{stage}/") for r in pq_rows(_get(client, bucket, k))]
        assert len(rows) == stages[stage]["input"] and sum(r["outcome"] == "kept" for r in rows) == stages[stage]["kept"]

    # one request per job, and one cache object per answer, on S3 beside the staging
    assert len(fault_server.requests) == summary["usage"]["requests"] == N_JOBS
    cache = _keys(client, bucket, "staging/_cache/llm/")
    assert len(cache) == N_JOBS
    assert all(k.split("/")[-2] == k.split("/")[-1][:2] and k.endswith(".json") for k in cache)
    assert all(json.loads(_get(client, bucket, k)) for k in cache)
    # what tasks hand each other names objects on S3, never a local path
    assert {"prepare", "generate", "filter", "export"} <= set(xcoms)
    handed = json.dumps(xcoms)
    assert f"s3://{bucket}/{prefix}" in handed and "file://" not in handed and local_root not in handed
    # nothing of this run went to the local data root
    assert not os.path.exists(f"{local_root}/{prefix.removeprefix('staging/')}")

    # a second run (a new run id, a new partition): every answer from the cache on S3
    sent = len(fault_server.requests)
    prefix2, summary2, _ = run()
    assert prefix2 != prefix
    assert len(fault_server.requests) == sent and summary2["usage"]["requests"] == 0
    assert summary2["counts"] == summary["counts"] and summary2["accounted_for"]
    assert _keys(client, bucket, "staging/_cache/llm/") == cache
    assert len(_get(client, bucket, prefix2 + "final/train.jsonl").decode().splitlines()) == len(train)


def _xcoms(run_id: str) -> dict:
    """The values the run's tasks returned (their XComs, one per mapped instance), by task id."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == "mind", XComModel.run_id == run_id).all()
        values: dict[str, list] = {}
        for row in rows:
            values.setdefault(row.task_id, []).append(row.value)
        return values


def pq_rows(data: bytes) -> list[dict]:
    import io

    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data)).to_pylist()
