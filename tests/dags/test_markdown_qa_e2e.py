"""The markdown_qa DAG through Airflow (dag.test): with the real embedded model, and in no-LLM mode."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import DATA, ROOT, load_dag, run_dag

pytestmark = [pytest.mark.airflow]



@pytest.fixture(scope="module")
def qa_dag(airflow_db):
    return load_dag("markdown_qa")


@pytest.mark.llm
def test_two_real_markdown_files_with_the_embedded_model(qa_dag, embedded_llm, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(ROOT / "include/sample_data/markdown_qa/docs/ch03-04-comments.md", folder)
    shutil.copy(DATA / "markdown" / "service_guide.md", folder)
    # grounding_threshold 0: the 135M model's quotes rarely match their section, and this test is
    # about the DAG carrying pairs end to end (grounding itself is tested with a scripted LLM)
    run = run_dag(qa_dag, {"input_path": str(folder), "pairs_per_section": 2, "max_tokens": 256,
                           "section_min_tokens": 40, "train_ratio": 0.5, "grounding_threshold": 0,
                           "min_quote_words": 1})
    assert run.state == "success"
    store, summary = run.store, run.summary
    assert summary["accounted_for"], summary["problems"]
    stages = summary["stages"]
    assert stages["prepare"]["kept"] == 2
    assert stages["facts"]["input"] >= 3 and summary["usage"]["requests"] > 0
    # The real model answered in the schemas (structured output end to end): at least one facts
    # answer parsed, and every generated pair has the QAPair shape. (How many parse varies with
    # the llama.cpp server's cache state; a 135M model is at the edge of this task.)
    assert stages["facts"]["kept"] + stages["facts"]["filtered"] >= 1, stages["facts"]
    pairs = [p for url in store.glob(summary["outputs"]["train_jsonl"].rsplit("/final/", 1)[0] + "/generate/*.parquet")
             for p in store.read_parquet(url)]
    assert all(p["question"] and isinstance(p["reasoning_steps"], list) and p["quotes"] is not None for p in pairs)
    assert stages["generate"]["kept"] == len(pairs) and stages["generate"]["input"] == (
        stages["generate"]["kept"] + stages["generate"]["failed"])
    for name in ("train_conversations", "validation_conversations"):
        url = summary["outputs"][name]
        assert url.rsplit("/", 1)[1].startswith(name.split("_")[0] + "-synthetic-data-")
        conversations = json.loads(store.read_bytes(url))
        for conv in conversations:
            assert [set(m) for m in conv] == [{"role", "content"}] * 2
            assert [m["role"] for m in conv] == ["user", "assistant"]
    records = [json.loads(l) for k in ("train_jsonl", "validation_jsonl")
               for l in store.read_bytes(summary["outputs"][k]).decode().splitlines()]
    assert summary["counts"]["train"] + summary["counts"]["validation"] == len(records) >= 1, stages
    assert len(records) == stages["render"]["produced"] == 4 * stages["render"]["input"]
    assert stages["dedup"]["input"] == stages["ground"]["produced"]
    for r in records:
        assert r["qa_type"] and r["cot_level"] in ("none", "one_step", "two_step", "all_steps")
        assert len(r["quotes"]) and r["grounding_score"] >= 0 and r["model"]
        assert r["messages"][0] == {"role": "user", "content": r["question"]}


def test_no_llm_mode_runs_without_any_model_and_repeats_exactly(qa_dag, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_RUN_DIR", str(tmp_path / "no-server-here"))  # no embedded server to find
    run = run_dag(qa_dag, {"no_llm": True})
    assert run.state == "success"
    store, first = run.store, run.summary
    run = run_dag(qa_dag, {"no_llm": True})
    assert run.state == "success"
    second = run.summary
    assert first["accounted_for"] and first["counts"]["train"] > 0 and first["usage"] == {}
    assert first["stage_order"] == ["prepare", "facts", "generate", "ground", "dedup", "render", "export"]
    for name in ("train_conversations", "validation_conversations", "train_jsonl", "validation_jsonl"):
        assert store.read_bytes(first["outputs"][name]) == store.read_bytes(second["outputs"][name])
