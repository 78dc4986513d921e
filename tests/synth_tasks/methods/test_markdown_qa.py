"""Markdown-to-QA through the stage runner, without Airflow (``run_method``): no-LLM mode, a scripted
LLM, grounding, near-duplicate questions, CoT rendering and bad input."""

from __future__ import annotations

import json
import shutil

import pytest
from pydantic import SecretStr

from synth_tasks.config import ConfigError, EndpointConfig, parse_config
from synth_tasks.inputs import InputError
from synth_tasks.methods.markdown_qa import METHOD
from synth_tasks.methods.markdown_qa.config import CoTLevel, MarkdownQAConfig
from synth_tasks.methods.markdown_qa.stages import plan_types, render_assistant
from synth_tasks.pipeline import run_method
from synth_tasks.storage import RunLayout
from tests.conftest import DATA, ROOT

DOCS = ROOT / "include" / "sample_data" / "markdown_qa" / "docs"
OUTPUTS = ("train_conversations", "validation_conversations", "train_jsonl", "validation_jsonl")


def _run(layout, cfg, input_url, server=None, until=None):
    """The method's stages in this process; returns (results, summary or None)."""
    endpoint = None if server is None else EndpointConfig(base_url=server.base_url, model="fault-model",
                                                          api_key=SecretStr("k"))
    results = run_method(METHOD, cfg, layout, input_url, endpoint_for=lambda conn_param: endpoint, until=until,
                         run_info={"run_id": "t", "run_timestamp": "2026-01-01_00-00-00"})
    summary = layout.store.read_json(results["export"]["summary"]) if "export" in results else None
    return results, summary


def _final_records(layout, export: dict) -> list[dict]:
    return [json.loads(line) for k in ("train_jsonl", "validation_jsonl")
            for line in layout.store.read_bytes(export[k]).decode().splitlines()]


def _stage_records(layout, stage: str) -> list[dict]:
    return [r for url in layout.store.glob(f"{layout.base}/{stage}/*.parquet") for r in layout.store.read_parquet(url)]


def _folder(tmp_path, files: dict[str, bytes]):
    folder = tmp_path / "md"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return f"file://{folder}"


def test_no_llm_mode_is_deterministic_byte_for_byte(store):
    cfg = MarkdownQAConfig(no_llm=True, shard_size=2)
    outputs = []
    for partition in ("a", "b"):
        layout = RunLayout(store, "markdown_qa", partition)
        results, summary = _run(layout, cfg, f"file://{DOCS}")
        assert summary["accounted_for"], summary["problems"]
        export = results["export"]
        assert export["train_conversations"].endswith("/final/train-synthetic-data-2026-01-01_00-00-00.json")
        outputs.append([store.read_bytes(export[k]) for k in OUTPUTS])
    assert outputs[0] == outputs[1]
    conversations = json.loads(outputs[0][0]) + json.loads(outputs[0][1])
    assert conversations and all([m["role"] for m in c] == ["user", "assistant"] for c in conversations)


def test_records_and_their_order_do_not_depend_on_the_shards(store):
    """dedup sees all shards at once and render keeps its order: shard_size changes no output byte."""
    outputs = []
    for size in (1, 3, 10_000):
        layout = RunLayout(store, "markdown_qa", f"size{size}")
        results, _ = _run(layout, MarkdownQAConfig(no_llm=True, shard_size=size), f"file://{DOCS}")
        outputs.append([store.read_bytes(results["export"][k]) for k in OUTPUTS])
        assert len(results["render"]) == len(results["dedup"])  # render is mapped over dedup's shards
    assert outputs[0] == outputs[1] == outputs[2]


def test_no_llm_records_carry_type_level_and_provenance(layout):
    cfg = MarkdownQAConfig(no_llm=True, cot_levels=["none", "all_steps"], train_ratio=0.5)
    results, summary = _run(layout, cfg, f"file://{DOCS}")
    records = _final_records(layout, results["export"])
    assert {r["qa_type"] for r in records} <= {"factual_recall", "true_false", "fill_in_blank"}
    assert {r["cot_level"] for r in records} == {"none", "all_steps"}
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert r["source_file"].endswith(".md") and r["section_title"] and r["quotes"]
        assert r["model"] == "heuristic" and r["id"].endswith(":" + r["cot_level"])
        level_none = r["cot_level"] == "none"
        assert (r["messages"][1]["content"] == r["answer"]) == level_none
        assert r["messages"][0] == {"role": "user", "content": r["question"]}
    stages = summary["stages"]
    assert summary["stage_order"] == ["prepare", "facts", "generate", "ground", "dedup", "render", "export"]
    assert stages["render"]["produced"] == 2 * stages["render"]["input"] == len(records)
    assert stages["dedup"]["input"] == stages["ground"]["produced"]
    train_ids = {json.loads(line)["id"] for line in
                 layout.store.read_bytes(results["export"]["train_jsonl"]).decode().splitlines()}
    counts = summary["counts"]
    assert counts["train_groups"] + counts["validation_groups"] == len({r["source_file"] for r in records})
    assert train_ids and counts["train"] == len(train_ids)
    assert summary["usage"] == {}  # no LLM client was made


def test_grounding_drops_pairs_whose_evidence_is_not_in_the_section(layout, tmp_path, fault_server):
    good = {"question": "How many retries?", "answer": "Five.", "reasoning_steps": ["Find retries.", "It says five."],
            "quotes": ["the service retries it up to five times with exponential backoff"]}
    bad = good | {"question": "How is data encrypted?", "quotes": ["All batches are encrypted with AES-256."]}
    fault_server.script.extend([
        'text:{"facts": ["The service retries a rejected write up to five times."]}',
        f"text:{json.dumps(good)}", f"text:{json.dumps(bad)}"])
    cfg = MarkdownQAConfig(pairs_per_section=2, type_weights={"factual_recall": 1, "inference": 1},
                              concurrency=1, section_min_tokens=0)
    doc = (DATA / "markdown" / "service_guide.md").read_text().split("## Monitoring")[0].split("## Retries")[1]
    results, summary = _run(layout, cfg, _folder(tmp_path, {"retries.md": f"## Retries{doc}".encode()}), fault_server)
    ground = summary["stages"]["ground"]
    assert ground["input"] == 2 and ground["kept"] == 1 and ground["filter_reasons"] == {"ungrounded_evidence": 1}
    dropped = layout.store.read_parquet(layout.part("_dropped/ground", 0))
    assert [(d["question"], list(d["quotes"])) for d in dropped] == [("How is data encrypted?", bad["quotes"])]
    assert dropped[0]["reason"].startswith("ungrounded_evidence")
    kept = _final_records(layout, results["export"])
    assert {r["question"] for r in kept} == {"How many retries?"} and len(kept) == 4  # four CoT levels
    assert all(r["model"] == "fault-model" and r["grounding_score"] >= 85 for r in kept)
    assert fault_server.requests[0]["response_format"]["json_schema"]["name"] == "Facts"
    assert fault_server.requests[1]["response_format"]["json_schema"]["name"] == "QAPair"
    assert summary["usage"]["requests"] == 3


def test_near_duplicate_questions_are_dropped_per_document_across_shards(layout, tmp_path, fault_server):
    # Every call gets the same answer: it parses as Facts and as QAPair, so each section (one per
    # shard) yields the same question. Within a document only the first (by id) is kept; another
    # document keeps its own.
    reply = {"facts": ["A fact."], "question": "What does the service do?", "answer": "It ingests events.",
             "reasoning_steps": ["Read the section."], "quotes": ["not in the text"]}
    fault_server.responder = lambda body: json.dumps(reply)
    section = "The service receives event batches from producers and writes them to the warehouse nightly."
    two_sections = f"# A\n\n{section}\n\n# B\n\n{section} It runs in three regions.".encode()
    folder = _folder(tmp_path, {"one.md": two_sections, "two.md": two_sections})
    cfg = MarkdownQAConfig(pairs_per_section=1, type_weights={"factual_recall": 1}, section_min_tokens=0,
                              grounding_threshold=0, shard_size=1, cot_levels=["none"])
    results, summary = _run(layout, cfg, folder, fault_server)
    assert len(results["ground"]) == 4  # one section per shard
    dedup = summary["stages"]["dedup"]
    assert dedup == dedup | {"input": 4, "kept": 2, "filtered": 2, "filter_reasons": {"near_duplicate_question": 2}}
    ledger = {r["record_id"]: r for url in layout.store.glob(f"{layout.base}/_ledger/dedup/*.parquet")
              for r in layout.store.read_parquet(url)}
    kept_ids = sorted(i for i, r in ledger.items() if r["outcome"] == "kept")
    assert [i.split("/")[-1].split("#")[0] for i in kept_ids] == ["one.md", "two.md"]
    dropped = layout.store.read_parquet(layout.part("_dropped/dedup", 0))
    assert len(dropped) == 2
    for d in dropped:
        first = next(i for i in kept_ids if i.split("#")[0] == d["id"].split("#")[0])
        assert d["reason"] == f"near_duplicate_question: of {first}" and d["question"] == reply["question"]
    records = _final_records(layout, results["export"])
    assert sorted(r["section_id"] for r in records) == sorted(i.rsplit(":q", 1)[0] for i in kept_ids)


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
    cfg = MarkdownQAConfig(no_llm=True, shard_size=10_000)
    _, summary = _run(layout, cfg, folder)
    prepare = summary["stages"]["prepare"]
    assert prepare == prepare | {"input": 6, "kept": 3, "filtered": 1, "failed": 2,
                                 "filter_reasons": {"empty_file": 1}, "error_kinds": {"bad_file": 2}}
    ledger = {r["record_id"].rsplit("/", 1)[1]: r for r in layout.store.read_parquet(layout.ledger_part("prepare", 0))}
    assert "binary file (NUL bytes)" in ledger["binary.md"]["error"]
    assert "latin1.md: not UTF-8 (byte" in ledger["latin1.md"]["error"]
    assert ledger["empty.md"]["reason"] == "empty_file: no text"
    sections = _stage_records(layout, "prepare")
    assert [s["title"] for s in sections if s["doc"] == "no_headings.md"] == ["no_headings"]
    assert sum(s["doc"] == "big.md" for s in sections) >= 400
    assert summary["accounted_for"], summary["problems"]


def test_sections_know_their_neighbour_for_multi_hop(layout, tmp_path):
    shutil.copy(DATA / "markdown" / "service_guide.md", tmp_path / "guide.md")
    cfg = MarkdownQAConfig(no_llm=True, section_min_tokens=0)
    results, _ = _run(layout, cfg, f"file://{tmp_path}/guide.md", until="prepare")
    assert set(results) == {"prepare"}
    sections = _stage_records(layout, "prepare")
    assert len(sections) >= 3 and [s["section_index"] for s in sections] == list(range(len(sections)))
    for i, s in enumerate(sections):
        other = sections[i + 1] if i + 1 < len(sections) else sections[i - 1]
        assert s["id"] == f"{s['source_file']}#s{i:04d}" and s["neighbor_text"] == other["text"]


def test_nothing_usable_fails_naming_the_files(layout, tmp_path):
    with pytest.raises(InputError, match="empty.md: file is empty|empty_file"):
        _run(layout, MarkdownQAConfig(), _folder(tmp_path, {"empty.md": b"  \n"}), until="prepare")


def test_no_llm_stages_never_make_an_llm_client(layout):
    def no_endpoint(conn_param):
        raise AssertionError(f"no_llm asked for the {conn_param} endpoint")

    results = run_method(METHOD, MarkdownQAConfig(no_llm=True), layout, f"file://{DOCS}",
                         endpoint_for=no_endpoint, until="generate")
    stats = [layout.store.read_json(url) for url in layout.store.glob(f"{layout.base}/_stats/generate/*.json")]
    assert results["generate"] and stats and all("usage" not in s for s in stats)


def test_type_planning_follows_weights_and_no_llm_types():
    cfg = MarkdownQAConfig(pairs_per_section=3, type_weights={"inference": 1, "multi_hop": 5, "true_false": 0})
    plans = [plan_types(cfg, f"s{i}", has_neighbor=True) for i in range(50)]
    assert all(set(p) <= {"inference", "multi_hop"} for p in plans)
    assert plan_types(cfg, "s1", True) == plan_types(cfg, "s1", True)
    assert "multi_hop" not in plan_types(cfg, "s1", has_neighbor=False)
    with pytest.raises(ConfigError, match="type_weights"):
        parse_config(MarkdownQAConfig, {"no_llm": True, "type_weights": {"inference": 1}})
    with pytest.raises(ConfigError, match="type_weights"):
        parse_config(MarkdownQAConfig, {"type_weights": {"inference": 1, "true_false": -1}})


def test_config_defaults_and_form_sections():
    from synth_tasks.airflow_glue import params_from_config

    cfg = MarkdownQAConfig()
    assert (cfg.input_path, cfg.shard_size, cfg.train_ratio) == ("include/sample_data/markdown_qa/docs", None, 0.8)
    params = params_from_config(MarkdownQAConfig)
    sections = {name: p.schema["section"] for name, p in params.items()}
    assert {sections[n] for n in ("type_weights", "pairs_per_section", "cot_levels", "no_llm")} == {"Method"}
    assert {sections[n] for n in ("temperature", "max_tokens")} == {"Generation"}
    assert {sections[n] for n in ("grounding_threshold", "duplicate_threshold")} == {"Quality"}
    assert all(p.schema.get("title") and p.description for p in params.values())


def test_cot_rendering():
    steps = ["Find the retry policy.", "It says five retries.", "So the answer is five."]
    assert render_assistant("Five.", steps, CoTLevel.NONE) == "Five."
    assert render_assistant("Five.", steps, CoTLevel.ONE_STEP) == "First, find the retry policy.\n\nFive."
    assert render_assistant("Five.", steps, CoTLevel.TWO_STEP) == (
        "First, find the retry policy. Next, it says five retries.\n\nFive.")
    assert render_assistant("Five.", steps, CoTLevel.ALL_STEPS).startswith(
        "First, find the retry policy. Next, it says five retries. Finally, so the answer is five.")


def test_the_shipped_sample_is_real_chapters_not_redirect_stubs():
    pages = sorted(DOCS.glob("ch*.md"))
    assert len(pages) == 3
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "no longer distributed" not in text and len(text) > 1000, page.name
        assert text.count("\n#") >= 1 or text.startswith("#"), page.name
