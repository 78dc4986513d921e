import os

import pytest

from synth_tasks.storage import RunLayout, Store


def test_layout_paths(store):
    layout = RunLayout(store, "mind", "2026-01-02")
    assert layout.part("generate", 7) == f"{store.root}/mind/2026-01-02/generate/part-00007.parquet"
    assert layout.ledger_part("filter", 0) == f"{store.root}/mind/2026-01-02/_ledger/filter/part-00000.parquet"
    assert layout.summary == f"{store.root}/mind/2026-01-02/_summary.json"
    assert layout.cache_root == f"{store.root}/_cache/llm"


def test_atomic_write_replaces_and_leaves_no_temp_files(store, tmp_path):
    url = store.join("a", "b.json")
    store.write_json(url, {"v": 1})
    store.write_json(url, {"v": 2})
    assert store.read_json(url) == {"v": 2}
    assert os.listdir(tmp_path / "stage" / "a") == ["b.json"]


def test_parquet_and_jsonl_round_trip(store):
    records = [{"id": "1", "messages": [{"role": "user", "content": "hi"}]}, {"id": "2", "messages": []}]
    url = store.write_parquet(store.join("x", "part-00000.parquet"), records)
    assert store.read_parquet(url) == records
    store.write_jsonl(store.join("x", "out.jsonl"), records)
    assert store.read_bytes(store.join("x", "out.jsonl")).decode().count("\n") == 2


def test_relative_root_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store("file://./data")
    assert store.root == f"file://{tmp_path}/data"


def test_writing_again_after_the_folder_was_removed(store):
    url = store.join("p", "stage", "part-00000.parquet")
    store.write_bytes(url, b"one")
    store.delete_tree(store.join("p"), inside=store.root)
    store.write_bytes(url, b"two")
    assert store.read_bytes(url) == b"two"


def test_deletes_never_reach_outside_their_folder(store):
    from synth_tasks.storage import RunLayout

    inside = store.join("mind", "p1")
    for bad in (store.join("mind", "p1", ".."), store.join("mind", "p1", "."), inside, store.join("mind"),
                store.join("mind", "p1", "a", "..", "..", "x"), store.join("other")):
        with pytest.raises(ValueError, match="refusing to delete"):
            store.delete_tree(bad, inside=inside)
    for partition in (".", "..", "", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="unsafe partition"):
            RunLayout(store, "mind", partition)


def test_publish_replaces_final_and_removes_files_the_new_run_did_not_write(store):
    from synth_tasks.storage import RunLayout

    layout = RunLayout(store, "d", "p")
    store.write_bytes(f"{layout.final_dir}/train.jsonl", b"old")
    store.write_bytes(f"{layout.final_dir}/extra.json", b"old")
    store.write_bytes(f"{layout.staging_dir}/train.jsonl", b"new")
    assert [u.rsplit("/", 1)[1] for u in layout.publish()] == ["train.jsonl"]
    assert store.read_bytes(f"{layout.final_dir}/train.jsonl") == b"new"
    assert not store.exists(f"{layout.final_dir}/extra.json") and not store.exists(layout.staging_dir)
