"""Markdown-to-QA stages without Airflow: no-LLM mode, a scripted LLM, grounding and bad input."""

from __future__ import annotations

import json
import shutil

import pytest
from pydantic import SecretStr

from synth_tasks.config import ConfigError, EndpointConfig, parse_config
from synth_tasks.inputs import InputError
from synth_tasks.methods import markdown_qa as qa
from tests.conftest import DATA, ROOT

DOCS = ROOT / "include" / "sample_data" / "markdown_qa" / "docs"


def _run(layout, cfg, input_url, endpoint=None):
    prepared = qa.prepare(layout, cfg, input_url)
    n = len(prepared["shards"])
    planned = [qa.facts(layout, cfg, i, url, endpoint, n) for i, url in enumerate(prepared["shards"])]
    generated = [qa.generate(layout, cfg, p["stats"]["shard"], p["output"], endpoint, n) for p in planned]
    grounded = [qa.ground(layout, cfg, g["stats"]["shard"], g["output"]) for g in generated]
    result = qa.export(layout, cfg, [g["output"] for g in grounded], [prepared, *planned, *generated, *grounded],
                       run_info={"run_id": "t", "run_timestamp": "2026-01-01_00-00-00"})
    return result, layout.store.read_json(result["summary"])


def _folder(tmp_path, files: dict[str, bytes]):
    folder = tmp_path / "md"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return f"file://{folder}"


def test_no_llm_mode_is_deterministic_byte_for_byte(store, tmp_path):
    from synth_tasks.storage import RunLayout

    cfg = qa.MarkdownQAConfig(no_llm=True, shard_size=2)
    outputs = []
    for partition in ("a", "b"):
        result, summary = _run(RunLayout(store, "markdown_qa", partition), cfg, f"file://{DOCS}")
        assert summary["accounted_for"]
        outputs.append([store.read_bytes(result[k]) for k in
                        ("train_conversations", "validation_conversations", "train_jsonl", "validation_jsonl")])
    assert outputs[0] == outputs[1]
    conversations = json.loads(outputs[0][0]) + json.loads(outputs[0][1])
    assert conversations and all([m["role"] for m in c] == ["user", "assistant"] for c in conversations)


def test_no_llm_records_carry_type_level_and_provenance(layout):
    cfg = qa.MarkdownQAConfig(no_llm=True, cot_levels=["none", "all_steps"], train_ratio=0.5)
    result, summary = _run(layout, cfg, f"file://{DOCS}")
    records = [json.loads(l) for k in ("train_jsonl", "validation_jsonl")
               for l in layout.store.read_bytes(result[k]).decode().splitlines()]
    assert {r["qa_type"] for r in records} <= {"factual_recall", "true_false", "fill_in_blank"}
    assert {r["cot_level"] for r in records} == {"none", "all_steps"}
    for r in records:
        assert r["source_file"].endswith(".md") and r["section_title"] and r["evidence"]
        level_none = r["cot_level"] == "none"
        assert (r["messages"][1]["content"] == r["answer"]) == level_none
    stages = summary["stages"]
    assert stages["render"]["produced"] == 2 * stages["render"]["input"] == len(records)
    train_files = {r["source_file"] for r in records if r["id"] in layout.store.read_bytes(result["train_jsonl"]).decode()}
    assert summary["counts"]["train_groups"] + summary["counts"]["validation_groups"] == len({r["source_file"] for r in records})
    assert train_files


def test_grounding_drops_pairs_whose_evidence_is_not_in_the_section(layout, tmp_path, fault_server):
    good = {"question": "How many retries?", "answer": "Five.", "reasoning_steps": ["Find retries.", "It says five."],
            "evidence": "the service retries it up to five times with exponential backoff"}
    bad = good | {"question": "How is data encrypted?", "evidence": "All batches are encrypted with AES-256."}
    fault_server.script.extend([
        'text:{"facts": ["The service retries a rejected write up to five times."]}',
        f"text:{json.dumps(good)}", f"text:{json.dumps(bad)}"])
    cfg = qa.MarkdownQAConfig(pairs_per_section=2, type_weights={"factual_recall": 1, "inference": 1},
                              concurrency=1, section_min_tokens=0)
    doc = (DATA / "markdown" / "service_guide.md").read_text().split("## Monitoring")[0].split("## Retries")[1]
    endpoint = EndpointConfig(base_url=fault_server.base_url, model="fault-model", api_key=SecretStr("k"))
    result, summary = _run(layout, cfg, _folder(tmp_path, {"retries.md": f"## Retries{doc}".encode()}), endpoint)
    ground = summary["stages"]["ground"]
    assert ground["input"] == 2 and ground["kept"] == 1 and ground["filter_reasons"] == {"ungrounded_evidence": 1}
    dropped = layout.store.read_parquet(layout.part("_dropped/ground", 0))
    assert dropped[0]["question"] == "How is data encrypted?"
    kept = [json.loads(l) for k in ("train_jsonl", "validation_jsonl")
            for l in layout.store.read_bytes(result[k]).decode().splitlines()]
    assert {r["question"] for r in kept} == {"How many retries?"} and len(kept) == 4  # four CoT levels
    assert fault_server.requests[1]["response_format"]["json_schema"]["name"] == "QAPair"


def test_bad_inputs_have_clear_outcomes_and_nothing_else_is_lost(layout, tmp_path):
    paragraph = " ".join(f"Sentence {k} of this part explains one more detail of the installation." for k in range(20))
    big = ("# Big\n\n" + "\n\n".join(f"## Part {i}\n\n" + "\n\n".join([paragraph] * 10)
                                     for i in range(400))).encode()
    assert len(big) > 5_000_000
    folder = _folder(tmp_path, {"empty.md": b"", "binary.md": bytes(range(256)) * 4,
                                "latin1.md": "# Caf\xe9\n\nThe caf\xe9 is open.".encode("latin-1"),
                                "no_headings.md": b"The service is deployed in three regions. It was written by the team.",
                                "big.md": big})
    shutil.copy(DATA / "markdown" / "service_guide.md", tmp_path / "md" / "guide.md")
    cfg = qa.MarkdownQAConfig(no_llm=True, shard_size=10_000)
    result, summary = _run(layout, cfg, folder)
    prepare = summary["stages"]["prepare"]
    assert prepare == prepare | {"input": 6, "kept": 3, "filtered": 1, "failed": 2,
                                 "filter_reasons": {"empty_file": 1}, "error_kinds": {"bad_file": 2}}
    ledger = {r["record_id"].rsplit("/", 1)[1]: r for r in layout.store.read_parquet(layout.ledger_part("prepare", 0))}
    assert "binary file (NUL bytes)" in ledger["binary.md"]["error"]
    assert "latin1.md: not UTF-8 (byte" in ledger["latin1.md"]["error"]
    sections = [s for url in layout.store.glob(f"{layout.base}/sections/*.parquet") for s in layout.store.read_parquet(url)]
    assert [s["title"] for s in sections if s["doc"] == "no_headings.md"] == ["no_headings"]
    assert sum(s["doc"] == "big.md" for s in sections) >= 400
    assert summary["accounted_for"]


def test_nothing_usable_fails_naming_the_files(layout, tmp_path):
    with pytest.raises(InputError, match="empty.md: file is empty|empty_file"):
        qa.prepare(layout, qa.MarkdownQAConfig(), _folder(tmp_path, {"empty.md": b"  \n"}))


def test_type_planning_follows_weights_and_no_llm_types():
    cfg = qa.MarkdownQAConfig(pairs_per_section=3, type_weights={"inference": 1, "multi_hop": 5, "true_false": 0})
    plans = [qa.plan_types(cfg, f"s{i}", has_neighbor=True) for i in range(50)]
    assert all(set(p) <= {"inference", "multi_hop"} for p in plans)
    assert qa.plan_types(cfg, "s1", True) == qa.plan_types(cfg, "s1", True)
    assert "multi_hop" not in qa.plan_types(cfg, "s1", has_neighbor=False)
    with pytest.raises(ConfigError, match="type_weights"):
        parse_config(qa.MarkdownQAConfig, {"no_llm": True, "type_weights": {"inference": 1}})


def test_cot_rendering():
    steps = ["Find the retry policy.", "It says five retries.", "So the answer is five."]
    assert qa.render_assistant("Five.", steps, qa.CoTLevel.NONE) == "Five."
    assert qa.render_assistant("Five.", steps, qa.CoTLevel.ONE_STEP) == "First, find the retry policy.\n\nFive."
    assert qa.render_assistant("Five.", steps, qa.CoTLevel.TWO_STEP) == (
        "First, find the retry policy. Next, it says five retries.\n\nFive.")
    assert qa.render_assistant("Five.", steps, qa.CoTLevel.ALL_STEPS).startswith(
        "First, find the retry policy. Next, it says five retries. Finally, so the answer is five.")
