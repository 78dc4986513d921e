"""Where a run lives, without Airflow: partitions, input patterns, stores."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from synth_tasks.config import ConfigError
from synth_tasks.environment import PROJECT_ROOT, Environment, partition_for, resolve_input, run_partition

DAY = datetime(2026, 3, 4, tzinfo=timezone.utc)


def test_scheduled_and_backfill_runs_write_their_data_interval_day():
    assert partition_for("scheduled", "scheduled__2026-03-04T00:00:00+00:00", DAY) == "2026-03-04"
    assert partition_for("backfill", "backfill__2026-03-04T00:00:00+00:00", DAY) == "2026-03-04"


def test_other_runs_never_write_a_dated_partition():
    """A manual run id that is a date, or an asset-triggered run, gets its own namespace."""
    assert partition_for("manual", "2026-03-04", DAY) == "run-2026-03-04"
    assert partition_for("asset_triggered", "asset_triggered__x", DAY) == "run-asset_triggered__x"
    assert partition_for("scheduled", "scheduled__x", None) == "run-scheduled__x"


def test_run_partitions_are_one_to_one_with_run_ids():
    """Each run id has its own partition: a run id that spells another one's encoded form (the
    old scheme's ``a-b-6783a31e`` for ``a:b``) cannot take that run's partition."""
    ids = [".", "..", "", "a:b", "a+b", "a-b", "...", ".x", "a~3Ab", "a-b-6783a31e", "é", "a/b", "x" * 240,
           "x" * 240 + "y"]
    names = {run_id: run_partition(run_id) for run_id in ids}
    assert len(set(names.values())) == len(ids)
    assert names["a:b"] == "run-a~3Ab" and names["a~3Ab"] == "run-a~7E3Ab" and names["a-b"] == "run-a-b"
    for name in names.values():
        assert name.startswith("run-") and "/" not in name and len(name.encode()) <= 255


def test_input_patterns_fill_ds_and_anchor_at_the_project_root():
    assert resolve_input("s3://b/raw/{ds}/*.jsonl", "2026-03-04") == "s3://b/raw/2026-03-04/*.jsonl"
    assert resolve_input("include/x.jsonl", None) == f"file://{PROJECT_ROOT}/synth_tasks/include/x.jsonl"
    assert resolve_input("tests/x.jsonl", None) == f"file://{PROJECT_ROOT}/tests/x.jsonl"
    assert resolve_input("/abs/x.jsonl", None) == "file:///abs/x.jsonl"
    with pytest.raises(ConfigError, match="uses {ds} but this run has no data interval"):
        resolve_input("/raw/{ds}.jsonl", None)


def test_the_environment_makes_layouts_and_input_stores(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_DATA_ROOT", f"file://{tmp_path}/data")
    env = Environment.from_os("2026-03-04", day="2026-03-04")
    assert env.layout("mind").base == f"file://{tmp_path}/data/mind/2026-03-04"
    assert env.input_store(f"file://{tmp_path}/in.jsonl").root == "file://"  # the whole local filesystem
    assert f"file://{tmp_path}/data/inputs" in env.allowed_input_roots
