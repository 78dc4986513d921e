"""The instruct DAG through Airflow (dag.test) against the real embedded model, on a handful of
seeds (one of them a planted GSM8K test question)."""

from __future__ import annotations

import json

import pytest

from synth_tasks.quality.judge import ATTRIBUTES
from tests.conftest import DATA, load_dag, run_dag, run_state

pytestmark = [pytest.mark.llm, pytest.mark.airflow]

SEEDS = DATA / "instruct" / "seeds.jsonl"
SMALL = {"input_path": str(SEEDS), "self_instruct_count": 2, "evol_rounds": 1, "n_responses": 2,
         "max_instruction_tokens": 48, "max_response_tokens": 64, "min_quality": 0.0, "preference_margin": 0.1,
         "shard_size": 3, "train_ratio": 0.5}
STAGES = ["prepare", "self_instruct", "evolve", "respond", "judge", "screen", "select", "export"]


@pytest.fixture(scope="module")
def instruct_dag(airflow_db):
    return load_dag("instruct")


def _jsonl(store, url):
    return [json.loads(line) for line in store.read_bytes(url).decode().splitlines()]


def _rows(store, base, folder):
    return [r for url in store.glob(f"{base}/{folder}/*.parquet") for r in store.read_parquet(url)]


def test_instruct_end_to_end(instruct_dag, embedded_llm):
    run = run_dag(instruct_dag, SMALL)
    assert run.state == "success"
    store, base = run.store, run.base
    summary = store.read_json(f"{base}/_summary.json")
    assert summary["accounted_for"] and summary["problems"] == [] and summary["stage_order"] == STAGES
    stages = summary["stages"]
    assert stages["prepare"]["kept"] == 4 and stages["prepare"]["produced"] == 4 + 2 == stages["self_instruct"]["input"]
    assert stages["evolve"]["created"] == stages["self_instruct"]["produced"]  # one round per instruction
    assert summary["usage"]["requests"] > 0 and summary["models"] == ["smollm2-135m-instruct"]

    # the ledger has one row per record per stage, and every filtered row says why
    for stage in STAGES:
        rows = _rows(store, base, f"_ledger/{stage}")
        assert len(rows) == stages[stage]["input"], stage
        assert all(r["reason"] for r in rows if r["outcome"] == "filtered")
        assert all(r["error"] for r in rows if r["outcome"] == "failed")

    # every judged record has the five scores and the overall on every response
    judged = _rows(store, base, "judge")
    assert judged and len(judged) == stages["judge"]["kept"]
    for record in judged:
        for response in record["responses"]:
            assert {a: response["scores"][a] in range(5) for a in ATTRIBUTES} == dict.fromkeys(ATTRIBUTES, True)
            assert 0.0 <= response["scores"]["overall"] <= 4.0

    # the planted benchmark question is removed by decontamination
    screen = {r["record_id"]: r for r in _rows(store, base, "_ledger/screen")}
    assert screen["planted-gsm8k"]["reason"].startswith("benchmark_overlap: 13-gram shared with gsm8k_test")

    # SFT outputs parse, carry scores and lineage, and the split keeps a lineage on one side
    outputs = summary["outputs"]
    train, val = _jsonl(store, outputs["train_jsonl"]), _jsonl(store, outputs["validation_jsonl"])
    # min_quality is 0, so records must reach final/, and train (the bigger side) has some
    assert len(train) + len(val) >= 1 and train
    assert len(train) + len(val) == stages["select"]["kept"] == summary["counts"]["train"] + summary["counts"]["validation"]
    assert {r["root_id"] for r in train}.isdisjoint({r["root_id"] for r in val})
    assert [r["id"] for r in store.read_parquet(outputs["train_parquet"])] == [r["id"] for r in train]
    for record in train + val:
        assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
        assert record["messages"][1]["content"] == record["response"] and record["response"].strip()
        assert set(ATTRIBUTES) | {"overall"} <= set(record["scores"]) and record["overall"] == record["scores"]["overall"]
        assert record["origin"] in ("seed", "self_instruct", "evol_in_depth", "evol_in_breadth")
        assert (record["depth"] == 0) == (record["parent_id"] is None)
    lineage = {r["id"]: r["root_id"] for r in train + val}
    train_roots = {r["root_id"] for r in train}
    for record in train + val:
        if record["parent_id"] in lineage:
            assert lineage[record["parent_id"]] == record["root_id"]

    # preference pairs: chosen outscores rejected by the margin, and they follow their lineage's side
    pairs = _jsonl(store, outputs["train_preferences_jsonl"]) + _jsonl(store, outputs["validation_preferences_jsonl"])
    assert len(pairs) == sum(summary["info"]["preference_pairs"].values())
    for pair in pairs:
        assert pair["chosen_scores"]["overall"] - pair["rejected_scores"]["overall"] >= SMALL["preference_margin"]
        assert pair["prompt"] and pair["chosen"] != pair["rejected"]
    for pair in _jsonl(store, outputs["train_preferences_jsonl"]):
        assert pair["root_id"] in train_roots

    diversity = summary["info"]["diversity"]
    assert diversity["selected"]["n"] == len(train) + len(val)
    assert 0.0 <= diversity["selected"]["topic_entropy"]["normalized"] <= 1.0


def test_unknown_judge_attribute_fails_the_run_at_the_start_without_retries(instruct_dag):
    run = run_dag(instruct_dag, {"judge_weights": {"helpfulness": 1.0, "humour": 1.0}})
    assert run.state == "failed"
    ti = run.dag_run.get_task_instance("prepare")
    assert run_state(ti) == "failed" and ti.try_number == 1
