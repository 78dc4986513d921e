"""The same Store on S3, through Airflow's ObjectStoragePath and an Airflow connection, against an
S3 API served on 127.0.0.1 by moto's server."""

from __future__ import annotations

import asyncio
import json

import pytest

moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_endpoint, monkeypatch):
    import boto3

    from synth_tasks.airflow_glue import store_for

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="k",
                 aws_secret_access_key="s").create_bucket(Bucket="synth")
    monkeypatch.setenv("AIRFLOW_CONN_TEST_S3", json.dumps({
        "conn_type": "aws", "login": "k", "password": "s",
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}))
    return store_for("s3://synth/staging", "test_s3")


def test_parquet_json_and_glob_on_s3(s3_store):
    from synth_tasks.storage import RunLayout

    assert s3_store.protocol == "s3" and not s3_store.is_local
    layout = RunLayout(s3_store, "mind", "2026-01-01")
    url = s3_store.write_parquet(layout.part("generate", 3), [{"id": "a", "n": 1}])
    assert url == "s3://synth/staging/mind/2026-01-01/generate/part-00003.parquet"
    assert s3_store.read_parquet(url) == [{"id": "a", "n": 1}]
    s3_store.write_json(layout.summary, {"ok": True})
    assert s3_store.read_json(layout.summary) == {"ok": True}
    assert s3_store.glob(f"{layout.base}/generate/*.parquet") == [url]
    s3_store.delete_tree(layout.base, inside=s3_store.root)
    assert not s3_store.exists(url)


def test_response_cache_on_s3_runs_off_the_event_loop(s3_store):
    from synth_tasks.llm.cache import ResponseCache

    cache = ResponseCache(s3_store, s3_store.join("_cache", "llm"))

    async def round_trip():
        assert await cache.aget("ab" * 32) is None
        await cache.aput("ab" * 32, {"text": "hi"})
        return await cache.aget("ab" * 32)

    assert asyncio.run(round_trip()) == {"text": "hi"}


def test_inputs_on_s3_with_local_staging(s3_store, layout, monkeypatch):
    """Each input is read through the filesystem of its own URL, not the staging store's."""
    from synth_tasks.airflow_glue import input_store_for
    from synth_tasks.methods import mind
    from synth_tasks.stage import run_stage
    from tests.conftest import SAMPLE

    s3_store.write_bytes("s3://synth/inputs/2026-01-01/sample.jsonl", SAMPLE.read_bytes())
    monkeypatch.setenv("SYNTH_INPUT_CONN_ID", "test_s3")
    url = "s3://synth/inputs/2026-01-01"
    cfg = mind.MindConfig(input_path=url, styles=["debate"], max_chunks=2)
    handoffs = run_stage(mind.METHOD, mind.METHOD.stages[0], cfg, layout, None, input_url=url,
                         input_store=input_store_for(url), allowed_roots=("s3://synth/inputs",))
    assert layout.store.is_local and handoffs[0]["stats"]["produced"] == 2
    jobs = layout.store.read_parquet(handoffs[0]["output"])
    assert jobs[0]["source_file"] == "s3://synth/inputs/2026-01-01/sample.jsonl"
    with pytest.raises(Exception, match="outside the allowed input roots"):
        run_stage(mind.METHOD, mind.METHOD.stages[0], cfg, layout, None, input_url=url,
                  input_store=input_store_for(url), allowed_roots=("s3://other-bucket",))
