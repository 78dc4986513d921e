"""The same Store on S3, through Airflow's ObjectStoragePath and an Airflow connection, against a
real S3 server (SeaweedFS, tests/s3_server.py) on 127.0.0.1 that checks every request's signature."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from tests.conftest import ROOT


@pytest.fixture
def s3_bucket(s3_server, request):
    """A fresh bucket of this test's own on the session's S3 server."""
    return s3_server.new_bucket(request.node.name.split("[")[0].removeprefix("test_")[:30])


@pytest.fixture
def s3_store(s3_server, s3_bucket, monkeypatch):
    from synth_tasks.airflow_glue import airflow_filesystem
    from synth_tasks.environment import store_for

    monkeypatch.setenv("AIRFLOW_CONN_TEST_S3", s3_server.airflow_conn())
    return store_for(f"s3://{s3_bucket}/staging", "test_s3", airflow_filesystem)


def test_parquet_json_and_glob_on_s3(s3_store, s3_bucket, s3_server):
    from synth_tasks.storage import RunLayout

    assert s3_store.protocol == "s3" and not s3_store.is_local
    layout = RunLayout(s3_store, "mind", "2026-01-01")
    url = s3_store.write_parquet(layout.part("generate", 3), [{"id": "a", "n": 1}])
    assert url == f"s3://{s3_bucket}/staging/mind/2026-01-01/generate/part-00003.parquet"
    assert s3_store.read_parquet(url) == [{"id": "a", "n": 1}]
    s3_store.write_json(layout.summary, {"ok": True})
    assert s3_store.read_json(layout.summary) == {"ok": True}
    assert s3_store.glob(f"{layout.base}/generate/*.parquet") == [url]
    # the objects are on the server, seen by a client of its own
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert keys == {"staging/mind/2026-01-01/generate/part-00003.parquet", "staging/mind/2026-01-01/_summary.json"}
    s3_store.delete_tree(layout.base, inside=s3_store.root)
    assert not s3_store.exists(url)
    assert s3_server.client().list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0


def test_the_server_refuses_other_credentials(s3_server, s3_bucket, monkeypatch):
    """The credentials come from the Airflow connection: with other ones the server says no."""
    import json

    from synth_tasks.airflow_glue import airflow_filesystem
    from synth_tasks.environment import store_for

    conn = json.loads(s3_server.airflow_conn()) | {"login": "someone-else"}
    monkeypatch.setenv("AIRFLOW_CONN_TEST_S3_WRONG", json.dumps(conn))
    store = store_for(f"s3://{s3_bucket}/staging", "test_s3_wrong", airflow_filesystem)
    with pytest.raises(PermissionError):
        store.write_bytes(store.join("x.json"), b"{}")


def test_response_cache_on_s3_runs_off_the_event_loop(s3_store, s3_server, s3_bucket):
    from synth_tasks.llm.cache import ResponseCache

    cache = ResponseCache(s3_store, s3_store.join("_cache", "llm"))

    async def round_trip():
        assert await cache.aget("ab" * 32) is None
        await cache.aput("ab" * 32, {"text": "hi"})
        return await cache.aget("ab" * 32)

    assert asyncio.run(round_trip()) == {"text": "hi"}
    # one object per answer, under {root}/{key[:2]}/{key}.json
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == [f"staging/_cache/llm/ab/{'ab' * 32}.json"]


def test_inputs_on_s3_with_local_staging(s3_store, s3_bucket, layout, monkeypatch):
    """Each input is read through the filesystem of its own URL, not the staging store's."""
    from synth_tasks.airflow_glue import airflow_filesystem
    from synth_tasks.environment import Environment
    from synth_tasks.methods import mind
    from synth_tasks.stage import run_stage
    from tests.conftest import SAMPLE

    s3_store.write_bytes(f"s3://{s3_bucket}/inputs/2026-01-01/sample.jsonl", SAMPLE.read_bytes())
    monkeypatch.setenv("SYNTH_INPUT_CONN_ID", "test_s3")
    env = Environment.from_os(layout.partition, filesystem=airflow_filesystem)
    url = f"s3://{s3_bucket}/inputs/2026-01-01"
    cfg = mind.MindConfig(input_path=url, styles=["debate"], max_chunks=2)
    handoffs = run_stage(mind.METHOD, mind.METHOD.stages[0], cfg, layout, None, env=env, input_url=url,
                         allowed_roots=(f"s3://{s3_bucket}/inputs",))
    assert layout.store.is_local and handoffs[0]["stats"]["produced"] == 2
    jobs = layout.store.read_parquet(handoffs[0]["output"])
    assert jobs[0]["source_file"] == f"s3://{s3_bucket}/inputs/2026-01-01/sample.jsonl"
    with pytest.raises(Exception, match="outside the allowed input roots"):
        run_stage(mind.METHOD, mind.METHOD.stages[0], cfg, layout, None, env=env, input_url=url,
                  allowed_roots=("s3://other-bucket",))


# ---------------------------------------------------------------------------------------------
# a write killed mid-object
# ---------------------------------------------------------------------------------------------
class HoldingProxy:
    """A TCP relay to the S3 server that forwards the client's first ``hold_after`` bytes, then
    holds the rest back and sets ``holding``: the upload is then stuck mid-body, for certain, until
    the test kills the writer. With ``hold_after=None`` it forwards everything."""

    def __init__(self, target_port: int, hold_after: int | None):
        self.target_port, self.hold_after = target_port, hold_after
        self.sent = 0  # client -> server bytes forwarded
        self.holding, self._closed = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._socks += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool):
        try:
            while data := src.recv(65536):
                if upstream:
                    with self._lock:
                        room = len(data) if self.hold_after is None else self.hold_after - self.sent
                        data = data[:max(room, 0)]
                        self.sent += len(data)
                    if data:
                        dst.sendall(data)
                    if self.hold_after is not None and self.sent >= self.hold_after:
                        self.holding.set()
                        self._closed.wait()
                        return
                else:
                    dst.sendall(data)
        except OSError:
            pass

    def close(self):
        self._closed.set()
        self.listener.close()
        with self._lock:
            for s in self._socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


# The writer: the project's Store.write_bytes on an s3fs filesystem. "multipart" makes s3fs cut the
# object into 5 MiB parts sent one after another (it does so only past 100 MiB by default).
WRITER = textwrap.dedent("""
    import json, os, sys
    import s3fs
    from synth_tasks.storage import Store

    opts, url, size, multipart = json.loads(sys.argv[1])
    if multipart:
        class SmallParts(s3fs.S3FileSystem):
            async def _pipe_file(self, path, data, chunksize=5 * 2**20, **kwargs):
                return await super()._pipe_file(path, data, chunksize=chunksize, **kwargs)
        fs = SmallParts(max_concurrency=1, skip_instance_cache=True, **opts)
    else:
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
    store = Store(url.rsplit("/", 1)[0], fs=fs)
    print("writing", flush=True)
    store.write_bytes(url, os.urandom(size))
    print("written", flush=True)
""")

MiB = 2**20


@pytest.mark.parametrize("multipart,size,hold_after", [
    (False, 8 * MiB, 2 * MiB),  # one PUT (what Store does for every object under 100 MiB), killed mid-body
    (True, 12 * MiB, 7 * MiB),  # part 1 of 3 stored, part 2 mid-body
], ids=["put", "multipart"])
def test_a_write_killed_mid_object_leaves_no_partial_object(s3_server, s3_bucket, multipart, size, hold_after):
    from botocore.exceptions import ClientError

    client = s3_server.client()
    key = "staging/mind/2026-01-01/generate/part-00000.parquet"
    url = f"s3://{s3_bucket}/{key}"
    proxy = HoldingProxy(int(s3_server.endpoint_url.rsplit(":", 1)[1]), hold_after)
    opts = s3_server.storage_options()
    opts["client_kwargs"]["endpoint_url"] = proxy.url
    writer = subprocess.Popen([sys.executable, "-c", WRITER, __import__("json").dumps([opts, url, size, multipart])],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=os.environ | {"PYTHONPATH": str(ROOT)})
    try:
        assert proxy.holding.wait(60), f"the upload never got {hold_after} bytes out: {writer.stdout.read1()!r}"
        writer.send_signal(signal.SIGKILL)
        output = writer.communicate(timeout=30)[0].decode()
    finally:
        writer.kill()
        proxy.close()
    # really interrupted: killed by the signal, mid-upload, having never finished the write
    assert writer.returncode == -signal.SIGKILL and "writing" in output and "written" not in output
    assert hold_after <= proxy.sent < size
    if multipart:  # the server holds part 1 of an upload that was never completed
        uploads = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
        assert [u["Key"] for u in uploads] == [key]
        parts = client.list_parts(Bucket=s3_bucket, Key=key, UploadId=uploads[0]["UploadId"]).get("Parts", [])
        assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB)]

    # ... and nothing of it is visible: no object under the key, nothing listed, not even a prefix
    with pytest.raises(ClientError) as missing:
        client.head_object(Bucket=s3_bucket, Key=key)
    assert missing.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    listing = client.list_objects_v2(Bucket=s3_bucket)
    assert listing["KeyCount"] == 0 and "Contents" not in listing, listing.get("Contents")
    assert client.list_objects_v2(Bucket=s3_bucket, Delimiter="/").get("CommonPrefixes") is None

    # the same write through the same relay, left alone, completes: the kill is what stopped it
    relay = HoldingProxy(int(s3_server.endpoint_url.rsplit(":", 1)[1]), None)
    try:
        import s3fs

        from synth_tasks.storage import Store

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **(opts | {"client_kwargs": {
            "endpoint_url": relay.url, "region_name": s3_server.region}}))
        Store(f"s3://{s3_bucket}/staging", fs=fs).write_bytes(url, b"x" * size)
    finally:
        relay.close()
    assert client.head_object(Bucket=s3_bucket, Key=key)["ContentLength"] == size
