"""Shard planning end to end on the shipped samples: planned shards only regroup the records a
mapped stage sees, so every file a run publishes is byte-identical to a run with fixed shards."""

from __future__ import annotations

import pytest

from synth_tasks.method import load_method
from synth_tasks.pipeline import run_method
from synth_tasks.storage import RunLayout, Store
from tests.conftest import ROOT

DOCS = ROOT / "include" / "sample_data" / "markdown_qa" / "docs"
MIX = ROOT / "include" / "configs" / "data_selection_mix.yaml"
# The shipped samples through the modes that need no model: method -> (input, Params).
SAMPLES = {
    "markdown_qa": (DOCS, {"no_llm": True}),
    "knowledge_graph": (DOCS, {"no_llm": True, "chunk_tokens": 300, "chunk_overlap": 50, "paths_per_length": 5,
                               "max_reports": 5, "train_ratio": 0.5}),
    "data_selection": (MIX, {"tokenizer": "cl100k", "max_tokens": 700}),
}


def _published(tmp_path, dag_id: str, values: dict) -> tuple[dict[str, bytes], dict[str, int]]:
    """Every data file of the run's final/ folder by its path there, and the shard count of each
    unmapped stage. The dataset card (README.md) is left out: it states the run's wall time, its
    folder and its Params, shard_size among them."""
    method = load_method(dag_id)
    cfg = method.config(input_path="unused", **values)
    store = Store(f"file://{tmp_path}/stage")
    layout = RunLayout(store, dag_id, "p1")
    results = run_method(method, cfg, layout, f"file://{SAMPLES[dag_id][0]}",
                         run_info={"run_id": "p1", "run_timestamp": "2026-01-01_00-00-00"})
    final = f"{layout.base}/final/"
    files = {url.removeprefix(final): store.read_bytes(url) for url in store.glob(f"{final}**/*.*")
             if not url.endswith("/README.md")}
    shards = {s.name: len(results[s.name]) for s in method.stages if not s.mapped}
    return files, shards


@pytest.mark.parametrize("dag_id", sorted(SAMPLES))
def test_planned_shards_publish_the_same_bytes_as_fixed_shards(tmp_path, dag_id):
    values = SAMPLES[dag_id][1]
    fixed, fixed_shards = _published(tmp_path / "fixed", dag_id, values | {"shard_size": 64})
    planned, planned_shards = _published(tmp_path / "planned", dag_id, values)
    # A target of a millisecond makes the plan cut the small sample into many shards of unequal size.
    many, many_shards = _published(tmp_path / "many", dag_id, values | {"task_target_seconds": 0.001})
    one, _ = _published(tmp_path / "one", dag_id, values | {"shard_size": 1})
    assert any(n > 2 for n in many_shards.values()), many_shards
    assert all(n == 1 for n in planned_shards.values()), planned_shards  # cheap text: one task a stage
    assert fixed_shards != many_shards
    assert "train.jsonl" in fixed and len(fixed) > 3
    assert sorted(fixed) == sorted(planned) == sorted(many) == sorted(one)
    for name in fixed:
        assert fixed[name] == planned[name] == many[name] == one[name], name


def test_every_mapped_stage_without_an_llm_declares_its_cost():
    """A text stage left on the default 10 ms a record can be far off (curriculum's measure takes
    29 ms a story, papers' render 4 us a pair), so its tasks carry far more or less than the target:
    each declares what bench/bench_stage_costs.py (or the method's own benchmark) measured."""
    from synth_tasks.method import method_names

    undeclared = [f"{name}.{stage.name}" for name in method_names() for stage in load_method(name).stages
                  if stage.mapped and stage.llm is None and stage.cost is None]
    assert undeclared == []


@pytest.mark.parametrize("dag_id, stage, off, on", [
    ("papers", "describe", {"describe_figures": False}, {"describe_figures": True}),
    ("curriculum", "evaluate", {"evaluate": False}, {"evaluate": True}),
    ("personas", "respond", {"respond": False}, {"respond": True}),
])
def test_an_llm_stage_switched_off_passes_its_records_on_in_one_task(dag_id, stage, off, on):
    """Counted as a request a record, papers' describe without describe_figures cut 1,000 papers
    into a task for every few papers, each passing them on unchanged."""
    from synth_tasks.stage import plan_shards

    method = load_method(dag_id)
    cost = method.stage(stage).seconds_per_record
    assert plan_shards(1_000, cost(method.config(input_path="unused", **off)), 30.0, None, 1024) == [1_000]
    assert len(plan_shards(1_000, cost(method.config(input_path="unused", **on)), 30.0, None, 1024)) > 1
