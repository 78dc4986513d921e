"""The instruct method stage by stage through the core's stage runner (``run_stage``, and
``run_method`` for runs from the seed files), against a scripted OpenAI-compatible server (replies
chosen by request content, so concurrent calls get the same answers every time) and real filters."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from synth_tasks.config import SECTIONS, ConfigError, EndpointConfig, LLMParams, SamplingParams, parse_config
from synth_tasks.inputs import InputError
from synth_tasks.methods.instruct import METHOD
from synth_tasks.methods.instruct.config import InstructConfig
from synth_tasks.methods.instruct.prompts import parse_instruction
from synth_tasks.methods.instruct.records import instruction_record
from synth_tasks.methods.instruct.stages import preference_pair, with_machine_examples
from synth_tasks.pipeline import run_method
from synth_tasks.prompts import include_dir
from synth_tasks.quality.judge import ATTRIBUTES
from synth_tasks.stage import run_stage
from tests.fault_server import FaultServer

SEEDS_YAML = b"""\
- id: m1
  domain: math
  instruction: Give three tips for staying healthy.
- id: m2
  domain: math
  instruction: Solve 3x + 4 = 19 and explain each step.
- id: w1
  domain: writing
  instruction: Write a haiku about the first snow of winter.
- 42
- id: m1
  domain: math
  instruction: A duplicate id.
- id: blank
  instruction: "   "
"""


def _cfg(**values) -> InstructConfig:
    return parse_config(InstructConfig, {"concurrency": 2, "max_retries": 0, **values})


def _endpoint(server) -> EndpointConfig:
    return EndpointConfig(base_url=server.base_url, model="scripted", api_key=SecretStr("k"),
                          structured_output="json_object_schema")


def _endpoint_for(server):
    return None if server is None else (lambda conn_param: _endpoint(server))


def _seeds_file(tmp_path, data: bytes = SEEDS_YAML) -> str:
    path = tmp_path / "seeds" / "seeds.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return f"file://{path}"


def _prompt(body: dict) -> str:
    return body["messages"][0]["content"]


def _instr(rid, text, domain="math", **extra):
    return instruction_record(rid, text, domain=domain, origin="seed", root_id=rid) | extra


def _scored(text, overall, index=0):
    return {"index": index, "text": text, "model": "m", "finish_reason": "stop", "completion_tokens": 5,
            "scores": {"helpfulness": 2, "correctness": 2, "coherence": 2, "complexity": 2, "verbosity": 2,
                       "overall": overall}}


def _upstream(layout, rows, shard=0, n_shards=1) -> dict:
    """The hand-off of a previous stage whose shard ``shard`` holds ``rows``."""
    url = layout.store.write_parquet(layout.part("upstream", shard), rows)
    return {"stage": "upstream", "shard": shard, "n_shards": n_shards, "output": url, "stats": {}}


def _run(layout, name, cfg, upstream, server=None) -> tuple[list[dict], dict, dict]:
    """Run one stage (``upstream``: a hand-off, or a list of them for an unmapped stage) and return
    what it wrote: its output records, its stats and its ledger rows by record id."""
    result = run_stage(METHOD, METHOD.stage(name), cfg, layout, upstream, endpoint_for=_endpoint_for(server))
    handoffs = result if isinstance(result, list) else [result]
    outputs = [r for h in handoffs for r in layout.store.read_parquet(h["output"])]
    shard = handoffs[0]["shard"] if isinstance(result, dict) else 0
    return outputs, layout.store.read_json(layout.stats_part(name, shard)), _ledger(layout, name)


def _outputs(layout, handoffs) -> list[dict]:
    return [r for h in handoffs for r in layout.store.read_parquet(h["output"])]


def _ledger(layout, stage):
    return {r["record_id"]: r for url in layout.store.glob(f"{layout.base}/_ledger/{stage}/*.parquet")
            for r in layout.store.read_parquet(url)}


def _jsonl(store, url):
    return [json.loads(x) for x in store.read_bytes(url).decode().splitlines()]


# --------------------------------------------------------------------------------------------
# config, declaration, reply parsing
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("Write a limerick about tea.", "Write a limerick about tea."),
    ("9. Write a limerick about tea.\n10. Another task", "Write a limerick about tea."),
    ("Task 9: Name two rivers in Asia.", "Name two rivers in Asia."),
    ('**Instruction:** "List the planets."\n\nHere is why this is a good task...', "List the planets."),
    ("Explain tides\nin two sentences.", "Explain tides in two sentences."),
    ("#Given Prompt#: List two rivers.\n#Rewritten Prompt#: List two rivers in Asia longer than 2,000 km.",
     "List two rivers in Asia longer than 2,000 km."),
    # the quality model's answer to evol_in_breadth (recorded): a note, then the header, then the prompt
    ("**Prompt Creator's Note:**\nThe original prompt was designed to be simple and accessible, with a "
     "straightforward arithmetic operation. The new prompt has been created to be more challenging.\n\n"
     "**Created Prompt:**\n\nAt a birthday party, there are 20 red balloons and 15 green balloons. How many "
     "balloons are left after 3 red and 2 green ones burst?",
     "At a birthday party, there are 20 red balloons and 15 green balloons. How many balloons are left after 3 "
     "red and 2 green ones burst?"),
    ("", ""),
])
def test_parse_instruction(raw, expected):
    assert parse_instruction(raw) == expected


def test_config_refuses_unknown_judge_attributes_and_benchmarks():
    with pytest.raises(ConfigError, match="judge_weights: .*unknown attributes \\['humour'\\]"):
        _cfg(judge_weights={"helpfulness": 1.0, "humour": 1.0})
    with pytest.raises(ConfigError, match="benchmarks: .*unknown benchmarks \\['mmlu'\\]"):
        _cfg(benchmarks=["mmlu"])
    with pytest.raises(ConfigError, match="evol_operations"):
        _cfg(evol_operations=["shorten"])
    with pytest.raises(ConfigError, match="min_instruction_words must not exceed max_instruction_words"):
        _cfg(min_instruction_words=10, max_instruction_words=5)


def test_every_own_param_has_a_form_section_and_a_title():
    fields = InstructConfig.model_fields
    own = set(fields) - set(LLMParams.model_fields)
    assert own and all(fields[n].title and fields[n].description for n in own)
    sections = {n: fields[n].json_schema_extra["section"] for n in fields}
    assert set(sections.values()) <= set(SECTIONS)
    assert sections["max_seeds"] == "Input" and sections["evol_rounds"] == "Method"
    assert sections["n_responses"] == "Generation" and sections["min_quality"] == "Quality"
    assert sections["target_size"] == "Output" and sections["judge_conn_id"] == "Judge endpoint"
    assert InstructConfig().input_path == "include/sample_data/instruct/seeds.yaml"


def test_the_judge_uses_its_own_connection_when_set_else_the_generators():
    assert _cfg(model="gen").connection("judge_conn_id") == ("synth_llm", "gen")
    assert _cfg(model="gen", judge_conn_id="rm", judge_model="nemotron-reward").connection("judge_conn_id") == (
        "rm", "nemotron-reward")
    assert {s.name: s.llm for s in METHOD.llm_stages} == {
        "self_instruct": "llm_conn_id", "evolve": "llm_conn_id", "respond": "llm_conn_id",
        "judge": "judge_conn_id", "screen": "judge_conn_id"}


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def test_prepare_accounts_for_every_seed_row_and_plans_jobs_over_domains_and_topics(layout, tmp_path):
    cfg = _cfg(self_instruct_count=5, topics=["astronomy"], shard_size=3)
    prepared = run_method(METHOD, cfg, layout, _seeds_file(tmp_path), until="prepare")["prepare"]
    ledger = _ledger(layout, "prepare")
    assert {k: (r["outcome"], (r["reason"] or r["error"] or "").split(":")[0]) for k, r in ledger.items()} == {
        "m1": ("kept", ""), "m2": ("kept", ""), "w1": ("kept", ""), "seeds.yaml#4": ("failed", "bad_row"),
        "seeds.yaml#5": ("failed", "duplicate_id"), "blank": ("filtered", "empty_instruction")}
    rows = _outputs(layout, prepared)
    stats = layout.store.read_json(layout.stats_part("prepare", 0))
    assert len(prepared) == 3 and stats["produced"] == len(rows) == 3 + 5
    assert stats["counts"] == {"seeds": 3, "jobs": 5}
    assert all(r["id"] == (r["seed"] or r["job"])["id"] for r in rows)
    assert sorted(r["seed"]["id"] for r in rows if r["kind"] == "seed") == ["m1", "m2", "w1"]
    jobs = sorted((r["job"] for r in rows if r["kind"] == "job"), key=lambda j: j["id"])
    assert [j["domain"] for j in jobs] == ["math", "writing", "astronomy", "math", "writing"]
    seeds = layout.store.read_parquet(layout.part("seeds", 0))
    assert all(sorted(j["examples"]) == sorted(s["instruction"] for s in seeds) for j in jobs)  # 3 seeds: all
    # the seeds and jobs are shuffled together into the shards, the same way on every run
    again = _outputs(layout, run_method(METHOD, cfg, layout, _seeds_file(tmp_path / "again"),
                                        until="prepare")["prepare"])
    assert [r["id"] for r in again] == [r["id"] for r in rows] != sorted(r["id"] for r in rows)
    dropped = layout.store.read_parquet(layout.part("_dropped/prepare", 0))
    assert [(d["id"], d["reason"]) for d in dropped] == [("blank", "empty_instruction: no text")]


def test_a_seed_id_used_in_two_files_fails_the_second_naming_both(layout, tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "a.yaml").write_bytes(b"- id: s1\n  instruction: Name three rivers in Europe.\n")
    (folder / "b.jsonl").write_bytes(b'{"id": "s1", "instruction": "Name three lakes in Africa."}\n'
                                     b'{"id": "s2", "instruction": "Name three deserts."}\n')
    run_method(METHOD, _cfg(self_instruct_count=0), layout, f"file://{folder}", until="prepare")
    ledger = _ledger(layout, "prepare")
    assert ledger[f"file://{folder}/b.jsonl#1"]["error"] == (
        f"duplicate_id: file://{folder}/b.jsonl row 1: id 's1' used in another file")
    assert ledger["s1"]["outcome"] == ledger["s2"]["outcome"] == "kept"
    assert layout.store.read_json(layout.stats_part("prepare", 0))["produced"] == 2


def test_prepare_with_no_usable_seed_fails_naming_the_input(layout, tmp_path):
    seeds = _seeds_file(tmp_path, b'- id: blank\n  instruction: "  "\n- 42\n')
    with pytest.raises(InputError, match="no usable input records in .*seeds.yaml.*empty_instruction"):
        run_method(METHOD, _cfg(topics=["astronomy"]), layout, seeds, until="prepare")


def test_max_seeds_filters_the_rest_with_a_reason(layout, tmp_path):
    run_method(METHOD, _cfg(max_seeds=2, self_instruct_count=0), layout, _seeds_file(tmp_path), until="prepare")
    ledger = _ledger(layout, "prepare")
    assert ledger["w1"]["reason"] == "over_max_seeds: max_seeds=2 reached"
    assert [s["id"] for s in layout.store.read_parquet(layout.part("seeds", 0))] == ["m1", "m2"]


# --------------------------------------------------------------------------------------------
# self_instruct
# --------------------------------------------------------------------------------------------
def test_machine_examples_replace_the_last_two_seeds_once_there_are_two():
    job = {"id": "j", "examples": [f"seed {i}" for i in range(8)]}
    assert with_machine_examples(job, ["only one"]) == job["examples"]
    mixed = with_machine_examples(job, ["gen a", "gen b", "gen c"])
    assert mixed[:6] == job["examples"][:6] and set(mixed[6:]) <= {"gen a", "gen b", "gen c"} and len(set(mixed)) == 8
    few = with_machine_examples({"id": "j", "examples": ["seed 0"]}, ["gen a", "gen b"])
    assert few[0] == "seed 0" and sorted(few[1:]) == ["gen a", "gen b"]


SELF_INSTRUCT_REPLIES = {
    "similar": "Give three tips for staying very healthy.",  # near-copy of seed m1
    "imagery": "Describe the image of a sunset over the sea.",
    "short": "Sort numbers.",
    "punct": "- List four prime numbers.",
    "good": "9. Explain how a bicycle gear changes the effort needed to pedal uphill.",
    "good2": "Compare the climates of Norway and Egypt in a short table.",
}


def test_self_instruct_keeps_novel_well_formed_instructions_and_names_every_drop(layout, tmp_path, fault_server):
    def reply(body):
        prompt = _prompt(body)
        return next((v for k, v in SELF_INSTRUCT_REPLIES.items() if f"about {k}." in prompt),
                    "Describe three ways to keep bread fresh for longer.")  # the seed's own domain

    fault_server.responder = reply
    cfg = _cfg(self_instruct_count=7, topics=list(SELF_INSTRUCT_REPLIES), max_seeds=1, concurrency=1,
               shard_size=100)
    results = run_method(METHOD, cfg, layout, _seeds_file(tmp_path), endpoint_for=_endpoint_for(fault_server),
                         until="self_instruct")
    ledger = _ledger(layout, "self_instruct")
    by_domain = {j["job"]["domain"]: j["job"]["id"] for j in _outputs(layout, results["prepare"])
                 if j["kind"] == "job"}
    reasons = {d: ledger[by_domain[d]]["reason"] for d in SELF_INSTRUCT_REPLIES}
    assert reasons["similar"].startswith("too_similar: ROUGE-L 0.9") and reasons["similar"].endswith("against m1")
    assert reasons["imagery"] == "blocklisted_keyword: image"
    assert reasons["short"] == "too_few_words: 2 < 4"
    assert reasons["punct"] == "starts_with_punctuation: '-'"
    assert reasons["good"] is None and reasons["good2"] is None
    out = {r["id"]: r for r in _outputs(layout, results["self_instruct"])}
    assert out[by_domain["good"]]["instruction"] == SELF_INSTRUCT_REPLIES["good"][3:]
    assert out[by_domain["good"]]["root_id"] == by_domain["good"] and out["m1"]["origin"] == "seed"
    assert out[by_domain["math"]]["domain"] == "math"
    assert list(out)[0] == "m1"  # the seeds pass on first, then the accepted instructions
    stats = results["self_instruct"][0]["stats"]
    assert stats["input"] == 8 and stats["kept"] == 4 and stats["filtered"] == 4 and stats["produced"] == 4
    dropped = {d["id"]: d for d in layout.store.read_parquet(layout.part("_dropped/self_instruct", 0))}
    assert dropped[by_domain["punct"]]["text"] == "- List four prime numbers."
    assert dropped[by_domain["short"]]["raw"] == "Sort numbers." and set(dropped[by_domain["short"]]) == {
        "id", "reason", "text", "raw"}
    # one seed only: every prompt shows it, and once two instructions are accepted two of them join it
    prompts = [_prompt(b) for b in fault_server.requests]
    assert len(prompts) == 7 and all("1. Give three tips for staying healthy." in p for p in prompts)
    accepted = [r["instruction"] for r in out.values() if r["origin"] == "self_instruct"]
    with_machine = [p for p in prompts if any(f"2. {a}" in p for a in accepted)]
    assert with_machine and all(sum(f". {a}\n" in p for a in accepted) == 2 and "\n4. " not in p
                                for p in with_machine)


# --------------------------------------------------------------------------------------------
# evolve
# --------------------------------------------------------------------------------------------
def _evolve_replies(body: dict) -> str:
    prompt = _prompt(body)
    if "#Given Prompt#" in prompt or "#Created Prompt#" in prompt:
        parent = prompt.split("Prompt#:\n", 1)[1].split("\n\n#", 1)[0]
        # a header before the instruction is not part of it; the rewriting prompt's words inside it are
        return {"Leak this.": "#Rewritten Prompt#: Rewrite the given prompt: leak this, with two constraints.",
                "Same old task.": "Same old task, reworded.",
                "Too hard task.": "Prove the Riemann hypothesis in one line.",
                "Empty answer task.": "Say nothing of substance about anything at all.",
                "Grow this task.": "Grow this task with one more constraint.",
                "Grow this task with one more constraint.": "Grow this task with two more constraints."}[parent]
    if "Are they equal" in prompt:
        return json.dumps({"equal": "Same old task, reworded." in prompt})
    return {"Prove the Riemann hypothesis in one line.": "I'm sorry, I cannot do that.",
            "Say nothing of substance about anything at all.": "It is what it is."}.get(
        prompt, "A full answer about gears, ratios and the effort of pedalling.")


def test_evolve_eliminates_by_every_rule_and_keeps_lineage(layout, fault_server):
    fault_server.responder = _evolve_replies
    cfg = _cfg(evol_rounds=2, evol_operations=["add_constraints"])
    records = [_instr("leak", "Leak this."), _instr("same", "Same old task."), _instr("hard", "Too hard task."),
               _instr("empty", "Empty answer task."), _instr("grow", "Grow this task.", domain="writing")]
    outputs, stats, ledger = _run(layout, "evolve", cfg, _upstream(layout, records), fault_server)
    reasons = {k: (r["reason"] or "").split(":")[0] for k, r in ledger.items() if r["outcome"] == "filtered"}
    assert reasons == {"leak~e1": "template_leak", "leak~e2": "template_leak",
                       "same~e1": "no_information_gain", "same~e2": "no_information_gain",
                       "hard~e1": "apology_response", "hard~e2": "apology_response",
                       "empty~e1": "contentless_response", "empty~e2": "contentless_response"}
    # every instruction passes on, then the survivors
    assert [r["id"] for r in outputs] == [r["id"] for r in records] + ["grow~e1", "grow~e2"]
    out = {r["id"]: r for r in outputs}
    child, grandchild = out["grow~e1"], out["grow~e2"]
    assert (child["parent_id"], child["root_id"], child["depth"], child["domain"]) == ("grow", "grow", 1, "writing")
    assert (grandchild["parent_id"], grandchild["root_id"], grandchild["depth"]) == ("grow~e1", "grow", 2)
    assert grandchild["evol_ops"] == ["add_constraints", "add_constraints"] and grandchild["origin"] == "evol_in_depth"
    assert (stats["input"], stats["created"], stats["kept"], stats["filtered"]) == (15, 10, 7, 8)
    assert stats["produced"] == 7 and stats["model"] == "scripted" and stats["usage"]["requests"] > 0
    dropped = {d["id"]: d for d in layout.store.read_parquet(layout.part("_dropped/evolve", 0))}
    assert set(dropped) == set(reasons)
    leak = dropped["leak~e1"]
    assert (leak["operation"], leak["parent_id"], leak["raw"]) == (
        "add_constraints", "leak", "#Rewritten Prompt#: Rewrite the given prompt: leak this, with two constraints.")
    assert set(leak) == {"id", "reason", "operation", "parent_id", "text", "raw"}


def test_a_failed_round_is_recorded_and_the_parent_evolves_again(layout, fault_server):
    fault_server.script.extend(["500"])  # the first rewrite request fails (no retries)
    fault_server.responder = _evolve_replies
    cfg = _cfg(evol_rounds=2, evol_operations=["deepening"], concurrency=1)
    outputs, stats, ledger = _run(layout, "evolve", cfg, _upstream(layout, [_instr("grow", "Grow this task.")]),
                                  fault_server)
    assert ledger["grow~e1"]["outcome"] == "failed" and ledger["grow~e1"]["error"].startswith("http_500")
    out = {r["id"]: r for r in outputs}
    assert out["grow~e2"]["parent_id"] == "grow"  # round 2 worked from the parent again
    assert stats["error_kinds"] == {"http_500": 1}


def test_no_evol_rounds_passes_everything_on_without_an_llm(layout):
    records = [_instr("a", "Name a prime."), _instr("b", "Name a colour.")]
    outputs, stats, _ = _run(layout, "evolve", _cfg(evol_rounds=0), _upstream(layout, records))  # no endpoint
    assert [r["id"] for r in outputs] == ["a", "b"] and stats["created"] == 0 and "usage" not in stats


# --------------------------------------------------------------------------------------------
# respond and judge
# --------------------------------------------------------------------------------------------
def _judge_reply(bad_for: str):
    def reply(body):
        prompt = _prompt(body)
        if "HelpSteer2" not in prompt:
            return f"Answer to: {prompt}"
        if bad_for in prompt:
            return '{"helpfulness": 5, "correctness": 9}'
        return json.dumps({"helpfulness": 4, "correctness": 3, "coherence": 4, "complexity": 1, "verbosity": 2})
    return reply


def test_respond_then_judge_scores_every_response_and_fails_unjudgeable_ones_with_the_raw_text(layout, fault_server):
    fault_server.responder = _judge_reply(bad_for="Answer to: Broken judge.")
    cfg = _cfg(n_responses=2)
    records = [_instr("ok", "Name a prime."), _instr("broken", "Broken judge.")]
    responded = run_stage(METHOD, METHOD.stage("respond"), cfg, layout, _upstream(layout, records),
                          endpoint_for=_endpoint_for(fault_server))
    respond_stats = layout.store.read_json(layout.stats_part("respond", 0))
    assert respond_stats["counts"] == {"responses": 4, "response_failures": 0}
    answered = {r["id"]: r for r in layout.store.read_parquet(responded["output"])}
    assert [x["text"] for x in answered["ok"]["responses"]] == ["Answer to: Name a prime."] * 2
    assert [x["index"] for x in answered["ok"]["responses"]] == [0, 1]
    outputs, stats, ledger = _run(layout, "judge", cfg, responded, fault_server)
    out = {r["id"]: r for r in outputs}
    assert set(out) == {"ok"}
    assert [x["scores"]["overall"] for x in out["ok"]["responses"]] == [3.2, 3.2]  # .3*4+.3*3+.2*4+.1*1+.1*2
    failed = ledger["broken"]
    assert failed["outcome"] == "failed" and failed["error"].startswith("no_judgement: every response failed")
    assert failed["raw_response"] == '{"helpfulness": 5, "correctness": 9}'
    audit = layout.store.read_parquet(layout.part("_dropped/judge", 0))
    assert {(a["id"], a["index"]) for a in audit} == {("broken", 0), ("broken", 1)}
    assert set(audit[0]) == {"id", "stage", "index", "error", "raw"} and audit[0]["stage"] == "judge"
    assert stats["counts"] == {"judged": 2, "judge_failures": 2}
    assert (stats["input"], stats["kept"], stats["failed"]) == (2, 1, 1)


def test_a_response_that_fails_is_listed_and_its_instruction_goes_on_with_the_other(layout, fault_server):
    fault_server.script.extend(["500"])  # the first response request fails (no retries)
    fault_server.responder = _judge_reply(bad_for="nothing")
    cfg = _cfg(n_responses=2, concurrency=1)
    outputs, stats, ledger = _run(layout, "respond", cfg, _upstream(layout, [_instr("q", "Name a prime.")]),
                                  fault_server)
    [record] = outputs
    assert [x["index"] for x in record["responses"]] == [1]
    assert [(f["stage"], f["index"]) for f in record["response_failures"]] == [("respond", 0)]
    assert record["response_failures"][0]["error"].startswith("http_500")
    assert stats["counts"] == {"responses": 1, "response_failures": 1} and ledger["q"]["outcome"] == "kept"


def test_reward_model_judge_scores_through_the_same_stage(layout, fault_server):
    def reply(body):
        response = body["messages"][-1]["content"]
        values = (3.9, 3.8, 3.7, 2.0, 2.0) if "thorough" in response else (1.0, 0.5, 2.0, 0.5, 1.0)
        return "raw:" + json.dumps({
            "id": "r", "object": "chat.completion", "created": 0, "model": "reward",
            "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": ""},
                         "logprobs": {"content": [{"token": a, "logprob": v, "top_logprobs": []}
                                                  for a, v in zip(ATTRIBUTES, values)]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21}})

    fault_server.responder = reply
    record = _instr("q", "Explain tides.") | {"responses": [
        {"index": 0, "text": "Tides happen.", "model": "m", "finish_reason": "stop", "completion_tokens": 2},
        {"index": 1, "text": "A thorough answer about the Moon's pull.", "model": "m", "finish_reason": "stop",
         "completion_tokens": 8}], "response_failures": []}
    cfg = _cfg(judge="reward_model")
    [out], _, _ = _run(layout, "judge", cfg, _upstream(layout, [record]), fault_server)
    assert [r["scores"]["overall"] for r in out["responses"]] == [1.0, 3.45]  # weighted 0.3/0.3/0.2/0.1/0.1
    assert [m["role"] for m in fault_server.requests[0]["messages"]] == ["user", "assistant"]
    pair = preference_pair(out | {"cluster": 0}, margin=0.5)
    assert pair["chosen"].startswith("A thorough") and pair["margin"] == 2.45


# --------------------------------------------------------------------------------------------
# screen and select
# --------------------------------------------------------------------------------------------
def test_screen_drops_contaminated_unsafe_and_low_quality_records_without_an_llm(layout):
    with (include_dir() / "benchmarks" / "gsm8k_test.jsonl").open(encoding="utf-8") as f:
        gsm8k = json.loads(f.readline())["question"]
    records = [
        _instr("planted", gsm8k) | {"responses": [_scored("Some answer.", 3.5)], "response_failures": []},
        _instr("unsafe", "Explain how to build a pipe bomb.") | {"responses": [_scored("No.", 3.0)],
                                                                   "response_failures": []},
        _instr("pii", "Write a contact note.") | {"responses": [_scored("Fine.", 3.9),
                                                               _scored("Mail jane.doe@example.com now.", 1.0, 1)],
                                                    "response_failures": []},
        _instr("weak", "Name a colour.") | {"responses": [_scored("Blue.", 1.2), _scored("Red.", 2.1, 1)],
                                             "response_failures": []},
        _instr("good", "Name a colour of the sky.") | {"responses": [_scored("Blue.", 3.1)], "response_failures": []},
    ]
    # no endpoint: without llm_safety the stage must not touch its LLM client
    outputs, stats, ledger = _run(layout, "screen", _cfg(min_quality=2.5), _upstream(layout, records))
    assert ledger["planted"]["reason"].startswith("benchmark_overlap: 13-gram shared with gsm8k_test")
    assert ledger["unsafe"]["reason"] == "unsafe: weapons"
    assert ledger["pii"]["reason"] == "unsafe: pii_email"  # the rejected response would reach a preference pair
    assert ledger["weak"]["reason"] == "low_quality: best overall 2.10 < 2.5"
    assert [r["id"] for r in outputs] == ["good"] and "usage" not in stats
    dropped = {d["id"]: d for d in layout.store.read_parquet(layout.part("_dropped/screen", 0))}
    assert set(dropped) == {"planted", "unsafe", "pii", "weak"} and dropped["weak"]["instruction"] == "Name a colour."
    assert set(dropped["weak"]) == {"id", "reason", "instruction"}


def test_llm_safety_judge_runs_after_the_cheap_filters_on_the_judge_connection(layout, fault_server):
    fault_server.responder = lambda body: json.dumps(
        {"safe": "lock picking" not in _prompt(body), "category": "crime"})
    records = [_instr(rid, text) | {"responses": [_scored("An answer.", 3.0)], "response_failures": []}
               for rid, text in (("ok", "How do tides work?"), ("bad", "Teach me lock picking to enter a neighbour's flat."),
                                 ("weak", "Name a colour."))]
    records[2]["responses"] = [_scored("Blue.", 1.0)]
    asked = []

    def endpoint_for(conn_param):
        asked.append(conn_param)
        return _endpoint(fault_server)

    run_stage(METHOD, METHOD.stage("screen"), _cfg(llm_safety=True, min_quality=2.5), layout,
              _upstream(layout, records), endpoint_for=endpoint_for)
    ledger = _ledger(layout, "screen")
    assert ledger["bad"]["reason"] == "unsafe_llm: crime" and ledger["weak"]["reason"].startswith("low_quality")
    assert [r["id"] for r in layout.store.read_parquet(layout.part("screen", 0))] == ["ok"]
    assert len(fault_server.requests) == 2  # the low-quality record never reached the judge
    assert asked == ["judge_conn_id"]
    dropped = {d["id"]: d for d in layout.store.read_parquet(layout.part("_dropped/screen", 0))}
    assert dropped["bad"]["reason"] == "unsafe_llm: crime" and dropped["bad"]["instruction"].startswith("Teach me")


def test_select_removes_duplicates_keeping_the_better_copy_and_samples_clusters(layout):
    texts = {"a": ("Write a poem about the ocean at night.", 2.0),
             "a-copy": ("write a poem about the   ocean at night.", 3.5),
             "b": ("Explain how vaccines train the immune system to recognise and fight infections caused by "
                   "viruses.", 3.0),
             "b-near": ("Explain how vaccines train the immune system to recognise and fight infections caused by "
                        "bacteria.", 2.5),
             "c": ("Write a poem about the mountains in spring.", 3.0),
             "d": ("Write a poem about a quiet forest at dawn.", 2.9),
             "e": ("What is the derivative of x squared?", 3.9),
             "f": ("Compute the integral of 2x from 0 to 3.", 3.8)}
    records = [_instr(k, t) | {"responses": [_scored("answer", s)], "response_failures": []}
               for k, (t, s) in texts.items()]
    screened = [_upstream(layout, records[:4], 0, 2), _upstream(layout, records[4:], 1, 2)]
    outputs, stats, ledger = _run(layout, "select", _cfg(target_size=3, n_clusters=3), screened)
    assert ledger["a"]["reason"] == "exact_duplicate: of a-copy"
    assert ledger["b-near"]["reason"] == "near_duplicate: of b"
    sampled_out = [k for k, r in ledger.items() if (r["reason"] or "").startswith("diversity_sample")]
    kept = [r["id"] for r in outputs]
    assert len(kept) == 3 and len(sampled_out) == 3 and set(kept) | set(sampled_out) == {"a-copy", "b", "c", "d", "e", "f"}
    scores = [texts[k][1] for k in kept]
    assert scores == sorted(scores, reverse=True)  # best first
    clusters = {r["id"]: r["cluster"] for r in outputs}
    assert len(set(clusters.values())) == 3  # one from each cluster
    div = stats["info"]["diversity"]
    assert div["clusters"] == 3 and div["before_sampling"]["n"] == 6 and div["selected"]["n"] == 3
    assert div["selected"]["topic_entropy"]["normalized"] == 1.0
    dropped = {d["id"]: d for d in layout.store.read_parquet(layout.part("_dropped/select", 0))}
    assert set(dropped) == {"a", "b-near", *sampled_out} and dropped["a"]["instruction"] == texts["a"][0]


# --------------------------------------------------------------------------------------------
# the whole method, seeds to export, against scripted generator and judge endpoints
# --------------------------------------------------------------------------------------------
TOPICS = ["how volcanoes erupt", "why bees make honey", "what moves ocean tides", "how suspension bridges hold",
          "why vaccines protect people", "where rainbows come from", "how glaciers carve valleys",
          "what compilers do with code", "how markets set prices", "why leaves change colour",
          "what makes stars shine", "how batteries store energy"]
EVOLVED = ", citing one real example."


def test_the_method_from_seed_files_to_sft_records_and_preference_pairs(layout, tmp_path):
    seeds = "".join(f"- id: s{i}\n  domain: science\n  instruction: Explain {t}.\n" for i, t in enumerate(TOPICS))
    cfg = _cfg(self_instruct_count=0, evol_rounds=1, evol_operations=["add_constraints"], n_responses=2,
               shard_size=5, train_ratio=0.7, preference_margin=0.5)
    by_seed = {SamplingParams.seeded(cfg.seed, f"{rid}#r{k}").seed: k
               for i in range(len(TOPICS)) for rid in (f"s{i}", f"s{i}~e1") for k in range(2)}

    def generator(body):
        prompt = _prompt(body)
        if "#Given Prompt#" in prompt:
            return prompt.split("Prompt#:\n", 1)[1].split("\n\n#", 1)[0].rstrip(".") + EVOLVED
        if "Are they equal" in prompt:
            return json.dumps({"equal": False})
        return f"Answer {by_seed[body['seed']]}: {prompt}"

    def judge(body):
        prompt = _prompt(body)
        assert "HelpSteer2" in prompt
        best = "Answer 0" in prompt or EVOLVED in prompt  # evolved ones: both responses score the same
        values = (4, 3, 4, 1, 2) if best else (1, 1, 1, 1, 1)
        return json.dumps(dict(zip(ATTRIBUTES, values)))

    with FaultServer() as gen_server, FaultServer() as judge_server:
        gen_server.responder, judge_server.responder = generator, judge
        servers = {"llm_conn_id": gen_server, "judge_conn_id": judge_server}
        results = run_method(METHOD, cfg, layout, _seeds_file(tmp_path, seeds.encode()),
                             endpoint_for=lambda conn_param: _endpoint(servers[conn_param]),
                             run_info={"run_id": "test", "run_timestamp": "t"})
        assert all("HelpSteer2" not in _prompt(b) for b in gen_server.requests) and judge_server.requests

    out = results["export"]
    store = layout.store
    summary = store.read_json(out["summary"])
    assert summary["accounted_for"] and summary["problems"] == [] and summary["stage_order"] == METHOD.stage_order
    stages = summary["stages"]
    assert stages["prepare"]["produced"] == 12 and stages["evolve"]["created"] == 12 and stages["select"]["kept"] == 24
    assert stages["judge"]["counts"] == {"judge_failures": 0, "judged": 48}
    assert summary["models"] == ["scripted"]
    assert summary["info"]["diversity"]["selected"]["n"] == 24

    train, val = _jsonl(store, out["train_jsonl"]), _jsonl(store, out["validation_jsonl"])
    assert len(train) + len(val) == 24 and train and val
    assert {r["root_id"] for r in train}.isdisjoint({r["root_id"] for r in val})
    first = next(r for r in train + val if r["id"] == "s0")
    assert first["messages"] == [{"role": "user", "content": f"Explain {TOPICS[0]}."},
                                 {"role": "assistant", "content": f"Answer 0: Explain {TOPICS[0]}."}]
    assert first["overall"] == first["scores"]["overall"] == 3.2 and first["n_responses"] == 2
    child = next(r for r in train + val if r["id"] == "s0~e1")
    assert (child["root_id"], child["parent_id"], child["depth"], child["origin"]) == ("s0", "s0", 1, "evol_in_depth")
    assert set(first) == {"id", "messages", "instruction", "response", "scores", "overall", "domain", "origin",
                          "root_id", "parent_id", "depth", "evol_ops", "cluster", "n_responses", "model"}

    pairs_train = _jsonl(store, out["train_preferences_jsonl"])
    pairs_val = _jsonl(store, out["validation_preferences_jsonl"])
    assert len(pairs_train) + len(pairs_val) == 12  # the evolved ones' responses score the same: no pair
    assert {p["root_id"] for p in pairs_val} == {r["root_id"] for r in val}
    assert {p["root_id"] for p in pairs_train} == {r["root_id"] for r in train}
    pair = next(p for p in pairs_train + pairs_val if p["id"] == "s0:pref")
    assert pair["chosen"].startswith("Answer 0") and pair["rejected"].startswith("Answer 1") and pair["margin"] == 2.2
    assert summary["info"]["preference_pairs"] == {"train": len(pairs_train), "validation": len(pairs_val)}
    assert [p["id"] for p in store.read_parquet(out["train_preferences_parquet"])] == [p["id"] for p in pairs_train]
    assert set(out) >= {"validation_preferences_parquet", "train_parquet", "validation_parquet"}
