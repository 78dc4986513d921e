"""MIND stages without Airflow, against a scripted OpenAI-compatible server (the real model is
exercised end to end in tests/dags/test_mind_e2e.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from pydantic import SecretStr

from synth_tasks.config import EndpointConfig
from synth_tasks.inputs import InputError
from synth_tasks.methods.mind import METHOD
from synth_tasks.methods.mind.config import ROLES, MindConfig, Style
from synth_tasks.methods.mind.stages import dialogue_format, salvage_turns, turns_model
from synth_tasks.pipeline import run_method
from synth_tasks.stage import run_stage
from tests.conftest import SAMPLE

DIALOGUE = (
    "Student 1: The standard deviation measures how far a random variable is from its mean, roughly.\n"
    "Student 2: Right, we first square the deviations so positive and negative ones do not cancel.\n"
    "Student 1: Then we take the expectation of the squared deviation, which is the variance.\n"
    "Student 2: And the square root brings it back to the units of the variable itself.")


def _inputs(tmp_path, extra: dict[str, bytes] | None = None):
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "sample.jsonl")
    for name, data in (extra or {}).items():
        (folder / name).write_bytes(data)
    return f"file://{folder}"


def _endpoint(server):
    return EndpointConfig(base_url=server.base_url, model="fault-model", api_key=SecretStr("k"))


def _prepare(layout, cfg, inputs):
    """prepare's hand-offs and its stats as written beside its output."""
    handoffs = run_method(METHOD, cfg, layout, inputs, until="prepare")["prepare"]
    return handoffs, layout.store.read_json(layout.stats_part("prepare", 0))


def _generate(layout, cfg, handoff, server):
    run_stage(METHOD, METHOD.stage("generate"), cfg, layout, handoff,
              endpoint_for=lambda conn_param: _endpoint(server))
    return layout.store.read_json(layout.stats_part("generate", handoff["shard"]))


def test_prepare_makes_one_job_per_context_and_style(layout, tmp_path):
    cfg = MindConfig(styles=["debate", "interview"], shard_size=3)
    handoffs, stats = _prepare(layout, cfg, _inputs(tmp_path))
    jobs = [j for h in handoffs for j in layout.store.read_parquet(h["output"])]
    assert stats["input"] == stats["kept"] == 4 and stats["produced"] == len(jobs) == stats["counts"]["contexts"] * 2
    assert all(len(layout.store.read_parquet(h["output"])) <= 3 for h in handoffs)
    assert {j["style"] for j in jobs} == {"debate", "interview"}
    assert len({j["id"] for j in jobs}) == len(jobs)
    assert all(j["context"] and j["context_tokens"] <= 500 + 125 for j in jobs)


def test_prepare_fails_bad_files_and_rows_but_keeps_the_rest(layout, tmp_path):
    inputs = _inputs(tmp_path, {"empty.jsonl": b"", "broken.jsonl": b'{"id": "z", "text": "ok text"}\n{oops\n',
                                "corrupt.parquet": b"not parquet"})
    _, stats = _prepare(layout, MindConfig(styles=["debate"]), inputs)
    assert stats["failed"] == 3 and stats["kept"] == 5  # empty + corrupt files, one bad row; 4 + 1 good
    assert stats["error_kinds"] == {"bad_file": 2, "bad_row": 1}
    ledger = {r["record_id"]: r for r in layout.store.read_parquet(layout.ledger_part("prepare", 0))}
    assert "empty.jsonl: file is empty" in ledger[f"{inputs}/empty.jsonl"]["error"]
    assert ledger["broken.jsonl#2"]["error"].startswith(f"bad_row: {inputs}/broken.jsonl row 2")


def test_prepare_with_nothing_usable_fails_naming_the_input(layout, tmp_path):
    folder = tmp_path / "only_bad"
    folder.mkdir()
    (folder / "x.jsonl").write_bytes(b"\xff\xfe\n")
    with pytest.raises(InputError, match="no usable input records"):
        _prepare(layout, MindConfig(), f"file://{folder}")


def test_max_chunks_filters_the_rest_with_a_reason(layout, tmp_path):
    _, stats = _prepare(layout, MindConfig(max_chunks=2, styles=["debate"]), _inputs(tmp_path))
    assert stats["produced"] == 2
    assert stats["filter_reasons"] == {"over_max_chunks": 2}
    dropped = layout.store.read_parquet(layout.part("_dropped/prepare", 0))
    assert [d["reason"] for d in dropped] == ["over_max_chunks: max_chunks=2 reached"] * 2


def test_generate_filter_export_account_for_every_record(layout, tmp_path, fault_server):
    fault_server.default_reply = DIALOGUE
    fault_server.retry_after = "0"
    # one job gets a non-dialogue, one a hard failure (no retries); the rest succeed
    essay = ("An essay, not a conversation. The variance of a random variable is the expected squared "
             "deviation from its mean, and the standard deviation is its square root, measured in the same "
             "units as the variable. Chebyshev's inequality bounds how often a variable is far from its mean.")
    fault_server.script.extend([f"text:{essay}", "500"])
    # One scripted dialogue for every context: about variance, so off-topic for most of them (the
    # topic check is tested on its own below).
    cfg = MindConfig(styles=["two_students", "teacher_student"], shard_size=4, max_retries=0,
                          train_ratio=0.5, concurrency=1,  # one at a time: the script meets jobs in order
                          min_topic_overlap=0)
    results = run_method(METHOD, cfg, layout, _inputs(tmp_path),
                         endpoint_for=lambda conn_param: _endpoint(fault_server))
    shards = results["prepare"]
    n_jobs = shards[0]["stats"]["produced"]  # every hand-off of an unmapped stage carries its totals
    result = results["export"]

    summary = layout.store.read_json(result["summary"])
    assert summary["accounted_for"] and summary["problems"] == []
    stages = summary["stages"]
    assert stages["generate"]["input"] == n_jobs
    assert stages["generate"]["failed"] == 1 and stages["generate"]["error_kinds"] == {"http_500": 1}
    assert stages["filter"]["filter_reasons"] == {"missing_speaker_turns": 1}
    assert stages["filter"]["kept"] == n_jobs - 2 == summary["counts"]["train"] + summary["counts"]["validation"]
    assert summary["usage"]["requests"] == n_jobs - 1  # answered requests; the failed job got none

    train = [json.loads(l) for l in layout.store.read_bytes(result["train_jsonl"]).decode().splitlines()]
    val = [json.loads(l) for l in layout.store.read_bytes(result["validation_jsonl"]).decode().splitlines()]
    assert train and val
    assert {r["source_id"] for r in train}.isdisjoint({r["source_id"] for r in val})
    record = train[0]
    assert set(record) >= {"id", "text", "style", "source_id", "chunk_id", "model", "messages"}
    assert record["text"].startswith("Student 1: ") or record["text"].startswith("Teacher")
    assert record["messages"][0]["role"] == "user" and record["model"] == "fault-model"

    dropped = layout.store.read_parquet(layout.part("_dropped/filter", 0))
    assert dropped[0]["reason"].startswith("missing_speaker_turns") and dropped[0]["text"] == essay

    # a re-run of shard 0 re-sends only the job that failed; completed answers come from the cache
    before = len(fault_server.requests)
    again = _generate(layout, cfg, shards[0], fault_server)
    usage = again["usage"]
    assert usage["requests"] == 1 and usage["cache_hits"] == again["input"] - 1
    assert len(fault_server.requests) == before + 1 and again["failed"] == 0


def test_token_budget_fails_the_rest_cleanly(layout, tmp_path, fault_server):
    fault_server.default_reply = DIALOGUE
    cfg = MindConfig(styles=["debate"], shard_size=100, token_budget=1, concurrency=1)
    handoffs, _ = _prepare(layout, cfg, _inputs(tmp_path))
    stats = _generate(layout, cfg, handoffs[0], fault_server)
    assert stats["kept"] == 1 and stats["failed"] == stats["input"] - 1
    assert stats["error_kinds"] == {"token_budget_exhausted": stats["input"] - 1}


def test_json_turns_schema_allows_only_the_styles_two_roles_and_four_turns_or_more():
    schema = turns_model("teacher_student").model_json_schema()
    turn = next(iter(schema["$defs"].values()))
    assert turn["properties"]["speaker"]["enum"] == ["Teacher", "Student"]
    assert schema["properties"]["turns"]["minItems"] == 4
    assert all(len(ROLES[s]) == 2 for s in Style)


def test_a_json_answer_cut_off_by_max_tokens_keeps_its_whole_turns():
    model = turns_model("interview")
    whole = [{"speaker": "Interviewer", "text": f"question {i}?"} if i % 2 == 0 else
             {"speaker": "Expert", "text": f"answer {i}."} for i in range(5)]
    import json

    raw = '{"turns": [' + ", ".join(json.dumps(t) for t in whole) + ', {"speaker": "Interviewer", "text": "and th'
    turns = salvage_turns(raw, model)
    assert [t.text for t in turns] == [t["text"] for t in whole]
    assert salvage_turns(raw.replace('"Expert"', '"Narrator"'), model) is None  # not a role of the style
    assert salvage_turns('{"turns": [{"speaker": "Expert", "text": "one"}', model) is None  # too few


def test_json_turns_are_rendered_back_to_speaker_lines_and_filtered_like_text(layout, tmp_path, fault_server):
    import json

    texts = ["What does the standard deviation of a random variable measure, roughly speaking?",
             "It measures how far the variable typically is from its mean, in the variable's own units.",
             "Why do we square the deviations before we average them over the distribution?",
             "Squares keep positive and negative deviations from cancelling, and the square root undoes it."]
    turns = [{"speaker": ("Teacher", "Student")[i % 2], "text": t} for i, t in enumerate(texts)]
    fault_server.default_reply = json.dumps({"turns": turns})
    cfg = MindConfig(styles=["teacher_student"], max_chunks=1, dialogue_format="json_turns", train_ratio=1.0)
    result = run_method(METHOD, cfg, layout, _inputs(tmp_path),
                        endpoint_for=lambda conn_param: _endpoint(fault_server))["export"]
    assert "response_format" in fault_server.requests[0]
    [record] = [json.loads(line) for line in layout.store.read_bytes(result["train_jsonl"]).splitlines()]
    assert record["text"].startswith("Teacher: What does the standard deviation") and record["n_turns"] == 4
    assert [m["role"] for m in record["messages"]] == ["user", "assistant", "user", "assistant"]
    summary = layout.store.read_json(result["summary"])
    assert summary["info"]["dialogue_format"] == "json_turns"


def test_a_cut_off_json_answer_costs_one_request_and_keeps_its_whole_turns(layout, tmp_path, fault_server):
    """No repair request for an answer cut off at max_tokens: its whole turns are what a repair,
    cut off again at the same budget, would have left."""
    import json

    texts = ["What does the standard deviation of a random variable measure, roughly speaking?",
             "It measures how far the variable typically is from its mean, in the variable's own units.",
             "Why do we square the deviations before we average them over the distribution?",
             "Squares keep positive and negative deviations from cancelling, and the square root undoes it."]
    turns = ", ".join(json.dumps({"speaker": ("Teacher", "Student")[i % 2], "text": t}) for i, t in enumerate(texts))
    content = '{"turns": [' + turns + ', {"speaker": "Teacher", "text": "And what'
    fault_server.script.append("raw:" + json.dumps({
        "id": "c", "object": "chat.completion", "created": 0, "model": "fault-model",
        "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 100, "total_tokens": 110}}))
    cfg = MindConfig(styles=["teacher_student"], max_chunks=1, dialogue_format="json_turns", train_ratio=1.0)
    result = run_method(METHOD, cfg, layout, _inputs(tmp_path),
                        endpoint_for=lambda conn_param: _endpoint(fault_server))["export"]
    assert len(fault_server.requests) == 1
    [record] = [json.loads(line) for line in layout.store.read_bytes(result["train_jsonl"]).splitlines()]
    assert record["n_turns"] == 4 and record["text"].startswith("Teacher: What does the standard deviation")
    [generated] = layout.store.read_parquet(layout.part("generate", 0))  # the tokens the answer cost
    assert generated["finish_reason"] == "incomplete_json" and generated["completion_tokens"] == 100


def test_auto_format_is_json_turns_on_llama_cpp_and_text_elsewhere():
    from synth_tasks.config import EndpointConfig

    cfg = MindConfig()
    llama = EndpointConfig(base_url="http://x/v1", model="m", structured_output="json_object_schema")
    vllm = EndpointConfig(base_url="http://x/v1", model="m", structured_output="json_schema")
    assert dialogue_format(cfg, llama) == "json_turns" and dialogue_format(cfg, vllm) == "text"
    assert dialogue_format(MindConfig(dialogue_format="text"), llama) == "text"
