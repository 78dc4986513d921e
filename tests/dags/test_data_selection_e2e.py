"""The data_selection DAG through Airflow (dag.test) on the shipped samples: no LLM anywhere."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_dag, run_dag

pytestmark = [pytest.mark.airflow]


@pytest.fixture(scope="module")
def selection_dag(airflow_db):
    return load_dag("data_selection")


def test_shipped_mix_reaches_final_with_tokenized_files(selection_dag, tmp_path, monkeypatch):
    from synth_tasks.methods.data_selection.tokenized import load_tokenizer, read_split

    monkeypatch.setenv("SYNTH_RUN_DIR", str(tmp_path / "no-server-here"))  # no model server to find
    run = run_dag(selection_dag, {"input_path": "include/configs/data_selection_mix.yaml"})
    assert run.state == "success"
    store, summary = run.store, run.summary
    assert summary["accounted_for"], summary["problems"]
    assert summary["usage"] == {} and summary["endpoints"] == []
    assert summary["stage_order"] == ["prepare", "seq2seq", "screen", "select", "render", "tokenize", "export"]
    stages = summary["stages"]
    # 200 GSM8K rows + 4 trees in; the German tree filtered; 6 threads, 2 without a pair
    assert (stages["prepare"]["input"], stages["prepare"]["produced"]) == (204, 206)
    assert stages["prepare"]["filter_reasons"] == {"language": 1}
    assert stages["seq2seq"]["filter_reasons"] == {"too_short": 2}
    # math prompts (three GSM8K examples each) over 1,024 tokens of the embedded vocabulary are left
    # out before sampling, so math still reaches its target of 40 (they were dropped after it, #25)
    assert stages["select"]["kept"] == 44 and stages["select"]["filter_reasons"]["too_long"] == 10
    assert stages["tokenize"]["filter_reasons"] == {}
    selection = summary["info"]["selection"]
    assert (selection["math"]["too_long"], selection["math"]["eligible"], selection["math"]["selected"]) == (10, 189, 40)
    # chat has 4 pairs for a target of 10: the summary says so
    assert summary["info"]["under_target"] == [
        "under_target: chat 4 of 10: pool exhausted (4 items after deduplication, 0 of them over max_tokens 1024)"]
    assert summary["info"]["sources"]["math/gsm8k"] == {"files": 1, "rows": 200}

    outputs = summary["outputs"]
    rows = {split: [json.loads(line) for line in store.read_bytes(outputs[f"{split}_jsonl"]).decode().splitlines()]
            for split in ("train", "validation")}
    assert len(rows["train"]) + len(rows["validation"]) == 44
    assert sum(r["domain"] == "math" for split in rows.values() for r in split) == 40
    assert {r["domain"] for r in rows["train"] + rows["validation"]} == {"math", "chat"}
    assert all(r["n_tokens"] <= 1024 for split in rows.values() for r in split)

    manifest = json.loads(store.read_bytes(outputs["tokenized_manifest"]))
    assert manifest["tokenizer"]["kind"] == "embedded" and manifest["dtype"] == "uint16"
    tok = load_tokenizer("embedded")
    folder = outputs["tokenized_manifest"].rsplit("/", 1)[0]
    tokens, offsets, prompt_lengths = read_split(store, folder, "train")
    first = rows["train"][0]
    sample = tokens[offsets[0]:offsets[1]]
    assert tok.decode(sample[:prompt_lengths[0]]) + tok.decode(sample[prompt_lengths[0]:-1]) == \
        first["Input"] + first["Output"]
    assert manifest["counts"]["train"]["samples"] == len(rows["train"]) == len(offsets) - 1
