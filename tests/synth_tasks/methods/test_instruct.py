"""The instruct method stage by stage, against a scripted OpenAI-compatible server (replies chosen
by request content, so concurrent calls get the same answers every time) and real filters."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from synth_tasks.config import ConfigError, EndpointConfig, parse_config
from synth_tasks.methods import instruct
from synth_tasks.methods.instruct import InstructConfig, parse_instruction
from synth_tasks.prompts import include_dir
from synth_tasks.quality.judge import ATTRIBUTES

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


def _seeds_file(tmp_path) -> str:
    path = tmp_path / "seeds" / "seeds.yaml"
    path.parent.mkdir()
    path.write_bytes(SEEDS_YAML)
    return f"file://{path}"


def _prompt(body: dict) -> str:
    return body["messages"][0]["content"]


def _instr(rid, text, domain="math", **extra):
    return instruct.instruction_record(rid, text, domain=domain, origin="seed", root_id=rid) | extra


def _scored(text, overall, index=0):
    return {"index": index, "text": text, "model": "m", "finish_reason": "stop", "completion_tokens": 5,
            "scores": {"helpfulness": 2, "correctness": 2, "coherence": 2, "complexity": 2, "verbosity": 2,
                       "overall": overall}}


def _write(layout, stage, rows, shard=0, n_shards=1):
    url = layout.store.write_parquet(layout.part(stage, shard), rows)
    return {"output": url, "stats": {"stage": stage, "shard": shard, "n_shards": n_shards}}


def _ledger(layout, stage):
    return {r["record_id"]: r for url in layout.store.glob(f"{layout.base}/_ledger/{stage}/*.parquet")
            for r in layout.store.read_parquet(url)}


# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("Write a limerick about tea.", "Write a limerick about tea."),
    ("9. Write a limerick about tea.\n10. Another task", "Write a limerick about tea."),
    ("Task 9: Name two rivers in Asia.", "Name two rivers in Asia."),
    ('**Instruction:** "List the planets."\n\nHere is why this is a good task...', "List the planets."),
    ("Explain tides\nin two sentences.", "Explain tides in two sentences."),
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


def test_the_judge_uses_its_own_connection_when_set_else_the_generators():
    assert _cfg(model="gen").judge_connection() == ("synth_llm", "gen")
    assert _cfg(model="gen", judge_conn_id="rm", judge_model="nemotron-reward").judge_connection() == (
        "rm", "nemotron-reward")


def test_prepare_accounts_for_every_seed_row_and_plans_jobs_over_domains_and_topics(layout, tmp_path):
    cfg = _cfg(self_instruct_count=5, topics=["astronomy"], shard_size=3)
    prepared = instruct.prepare(layout, cfg, _seeds_file(tmp_path))
    ledger = _ledger(layout, "prepare")
    assert {k: (r["outcome"], (r["reason"] or r["error"] or "").split(":")[0]) for k, r in ledger.items()} == {
        "m1": ("kept", ""), "m2": ("kept", ""), "w1": ("kept", ""), "seeds.yaml#4": ("failed", "bad_row"),
        "seeds.yaml#5": ("failed", "duplicate_id"), "blank": ("filtered", "empty_instruction")}
    rows = [r for url in prepared["shards"] for r in layout.store.read_parquet(url)]
    assert len(prepared["shards"]) == 3 and prepared["stats"]["produced"] == len(rows) == 3 + 5
    assert sorted(r["seed"]["id"] for r in rows if r["kind"] == "seed") == ["m1", "m2", "w1"]
    jobs = sorted((r["job"] for r in rows if r["kind"] == "job"), key=lambda j: j["id"])
    assert [j["domain"] for j in jobs] == ["math", "writing", "astronomy", "math", "writing"]
    assert all(sorted(j["examples"]) == sorted(s["instruction"] for s in layout.store.read_parquet(
        layout.part("seeds", 0))) for j in jobs)  # 3 seeds: all of them are the examples


def test_a_seed_id_used_in_two_files_fails_the_second_naming_both(layout, tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "a.yaml").write_bytes(b"- id: s1\n  instruction: Name three rivers in Europe.\n")
    (folder / "b.jsonl").write_bytes(b'{"id": "s1", "instruction": "Name three lakes in Africa."}\n'
                                     b'{"id": "s2", "instruction": "Name three deserts."}\n')
    prepared = instruct.prepare(layout, _cfg(self_instruct_count=0), f"file://{folder}")
    ledger = _ledger(layout, "prepare")
    assert ledger[f"file://{folder}/b.jsonl#1"]["error"] == (
        f"duplicate_id: file://{folder}/b.jsonl row 1: id 's1' used in another file")
    assert ledger["s1"]["outcome"] == ledger["s2"]["outcome"] == "kept" and prepared["stats"]["produced"] == 2


def test_machine_examples_replace_the_last_two_seeds_once_there_are_two():
    job = {"id": "j", "examples": [f"seed {i}" for i in range(8)]}
    assert instruct.with_machine_examples(job, ["only one"]) == job["examples"]
    mixed = instruct.with_machine_examples(job, ["gen a", "gen b", "gen c"])
    assert mixed[:6] == job["examples"][:6] and set(mixed[6:]) <= {"gen a", "gen b", "gen c"} and len(set(mixed)) == 8
    few = instruct.with_machine_examples({"id": "j", "examples": ["seed 0"]}, ["gen a", "gen b"])
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
    prepared = instruct.prepare(layout, cfg, _seeds_file(tmp_path))
    result = instruct.self_instruct(layout, cfg, 0, prepared["shards"][0], _endpoint(fault_server), 1)
    ledger = _ledger(layout, "self_instruct")
    by_domain = {j["job"]["domain"]: j["job"]["id"] for j in layout.store.read_parquet(prepared["shards"][0])
                 if j["kind"] == "job"}
    reasons = {d: ledger[by_domain[d]]["reason"] for d in SELF_INSTRUCT_REPLIES}
    assert reasons["similar"].startswith("too_similar: ROUGE-L 0.9") and reasons["similar"].endswith("against m1")
    assert reasons["imagery"] == "blocklisted_keyword: image"
    assert reasons["short"] == "too_few_words: 2 < 4"
    assert reasons["punct"] == "starts_with_punctuation: '-'"
    assert reasons["good"] is None and reasons["good2"] is None
    out = {r["id"]: r for r in layout.store.read_parquet(result["output"])}
    assert out[by_domain["good"]]["instruction"] == SELF_INSTRUCT_REPLIES["good"][3:]
    assert out[by_domain["good"]]["root_id"] == by_domain["good"] and out["m1"]["origin"] == "seed"
    assert out[by_domain["math"]]["domain"] == "math"
    assert result["stats"]["input"] == 8 and result["stats"]["kept"] == 4 and result["stats"]["filtered"] == 4
    # one seed only: every prompt shows it, and once two instructions are accepted two of them join it
    prompts = [_prompt(b) for b in fault_server.requests]
    assert all("1. Give three tips for staying healthy." in p for p in prompts)
    accepted = [r["instruction"] for r in out.values() if r["origin"] == "self_instruct"]
    with_machine = [p for p in prompts if any(f"2. {a}" in p for a in accepted)]
    assert with_machine and all(sum(f". {a}\n" in p for a in accepted) == 2 and "\n4. " not in p
                                for p in with_machine)


def _evolve_replies(body: dict) -> str:
    prompt = _prompt(body)
    if "#Given Prompt#" in prompt or "#Created Prompt#" in prompt:
        parent = prompt.split("Prompt#:\n", 1)[1].split("\n\n#", 1)[0]
        return {"Leak this.": "#Rewritten Prompt#: Leak this, with two constraints.",
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
    result = instruct.evolve(layout, cfg, _write(layout, "self_instruct", records), _endpoint(fault_server))
    ledger = _ledger(layout, "evolve")
    reasons = {k: (r["reason"] or "").split(":")[0] for k, r in ledger.items() if r["outcome"] == "filtered"}
    assert reasons == {"leak~e1": "template_leak", "leak~e2": "template_leak",
                       "same~e1": "no_information_gain", "same~e2": "no_information_gain",
                       "hard~e1": "apology_response", "hard~e2": "apology_response",
                       "empty~e1": "contentless_response", "empty~e2": "contentless_response"}
    out = {r["id"]: r for r in layout.store.read_parquet(result["output"])}
    assert set(out) == {r["id"] for r in records} | {"grow~e1", "grow~e2"}
    child, grandchild = out["grow~e1"], out["grow~e2"]
    assert (child["parent_id"], child["root_id"], child["depth"], child["domain"]) == ("grow", "grow", 1, "writing")
    assert (grandchild["parent_id"], grandchild["root_id"], grandchild["depth"]) == ("grow~e1", "grow", 2)
    assert grandchild["evol_ops"] == ["add_constraints", "add_constraints"] and grandchild["origin"] == "evol_in_depth"
    stats = result["stats"]
    assert (stats["input"], stats["created"], stats["kept"], stats["filtered"]) == (15, 10, 7, 8)


def test_a_failed_round_is_recorded_and_the_parent_evolves_again(layout, fault_server):
    fault_server.script.extend(["500"])  # the first rewrite request fails (no retries)
    fault_server.responder = _evolve_replies
    cfg = _cfg(evol_rounds=2, evol_operations=["deepening"], concurrency=1)
    result = instruct.evolve(layout, cfg, _write(layout, "self_instruct", [_instr("grow", "Grow this task.")]),
                             _endpoint(fault_server))
    ledger = _ledger(layout, "evolve")
    assert ledger["grow~e1"]["outcome"] == "failed" and ledger["grow~e1"]["error"].startswith("http_500")
    out = {r["id"]: r for r in layout.store.read_parquet(result["output"])}
    assert out["grow~e2"]["parent_id"] == "grow"  # round 2 worked from the parent again


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
    responded = instruct.respond(layout, cfg, _write(layout, "evolve", records), _endpoint(fault_server))
    assert responded["stats"]["counts"] == {"responses": 4, "response_failures": 0}
    judged = instruct.judge(layout, cfg, responded, _endpoint(fault_server))
    out = {r["id"]: r for r in layout.store.read_parquet(judged["output"])}
    assert set(out) == {"ok"}
    assert [x["scores"]["overall"] for x in out["ok"]["responses"]] == [3.2, 3.2]  # .3*4+.3*3+.2*4+.1*1+.1*2
    failed = _ledger(layout, "judge")["broken"]
    assert failed["outcome"] == "failed" and failed["error"].startswith("no_judgement: every response failed")
    assert failed["raw_response"] == '{"helpfulness": 5, "correctness": 9}'
    audit = layout.store.read_parquet(layout.part("_dropped/judge", 0))
    assert {(a["id"], a["index"]) for a in audit} == {("broken", 0), ("broken", 1)}
    assert judged["stats"]["counts"] == {"judged": 2, "judge_failures": 2}


def test_screen_drops_contaminated_unsafe_and_low_quality_records(layout):
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
    result = instruct.screen(layout, _cfg(min_quality=2.5), _write(layout, "judge", records))
    ledger = _ledger(layout, "screen")
    assert ledger["planted"]["reason"].startswith("benchmark_overlap: 13-gram shared with gsm8k_test")
    assert ledger["unsafe"]["reason"] == "unsafe: weapons"
    assert ledger["pii"]["reason"] == "unsafe: pii_email"  # the rejected response would reach a preference pair
    assert ledger["weak"]["reason"] == "low_quality: best overall 2.10 < 2.5"
    assert [r["id"] for r in layout.store.read_parquet(result["output"])] == ["good"]


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
    screened = [_write(layout, "screen", records[:4], 0), _write(layout, "screen", records[4:], 1)]
    result = instruct.select(layout, _cfg(target_size=3, n_clusters=3), [s["output"] for s in screened])
    ledger = _ledger(layout, "select")
    assert ledger["a"]["reason"] == "exact_duplicate: of a-copy"
    assert ledger["b-near"]["reason"] == "near_duplicate: of b"
    sampled_out = [k for k, r in ledger.items() if (r["reason"] or "").startswith("diversity_sample")]
    kept = [r["id"] for r in layout.store.read_parquet(result["output"])]
    assert len(kept) == 3 and len(sampled_out) == 3 and set(kept) | set(sampled_out) == {"a-copy", "b", "c", "d", "e", "f"}
    clusters = {r["id"]: r["cluster"] for r in layout.store.read_parquet(result["output"])}
    assert len(set(clusters.values())) == 3  # one from each cluster
    div = result["stats"]["diversity"]
    assert div["before_sampling"]["n"] == 6 and div["selected"]["n"] == 3
    assert div["selected"]["topic_entropy"]["normalized"] == 1.0


def test_export_writes_sft_and_preference_pairs_split_by_lineage(layout):
    def rec(rid, root, scores):
        return (instruct.instruction_record(rid, f"Instruction {rid}.", domain="math", origin="seed", root_id=root)
                | {"responses": [_scored(f"answer {i} of {rid}", s, i) for i, s in enumerate(scores)],
                   "response_failures": [], "cluster": 0})
    records = [rec(f"s{i}", f"s{i}", [3.0, 1.0]) for i in range(12)]
    records += [rec(f"s{i}~e1", f"s{i}", [2.0, 1.8]) for i in range(12)]  # margin 0.2: no pair
    selected = _write(layout, "select", records)
    stats = [{"stats": {"stage": "select", "shard": 0, "input": 24, "kept": 24, "filtered": 0, "failed": 0,
                        "produced": 24}}]
    out = instruct.export(layout, _cfg(train_ratio=0.7, preference_margin=0.5), selected["output"], stats,
                          run_info={})
    store = layout.store
    train = [json.loads(x) for x in store.read_bytes(out["train_jsonl"]).decode().splitlines()]
    val = [json.loads(x) for x in store.read_bytes(out["validation_jsonl"]).decode().splitlines()]
    assert len(train) + len(val) == 24 and val
    assert {r["root_id"] for r in train}.isdisjoint({r["root_id"] for r in val})
    first = next(r for r in train + val if r["id"] == "s0")
    assert first["messages"] == [{"role": "user", "content": "Instruction s0."},
                                 {"role": "assistant", "content": "answer 0 of s0"}]
    assert first["overall"] == 3.0 and first["scores"]["overall"] == 3.0
    pairs_train = [json.loads(x) for x in store.read_bytes(out["train_preferences_jsonl"]).decode().splitlines()]
    pairs_val = [json.loads(x) for x in store.read_bytes(out["validation_preferences_jsonl"]).decode().splitlines()]
    assert len(pairs_train) + len(pairs_val) == 12  # the evolved ones' gap is under the margin
    assert {p["root_id"] for p in pairs_val} <= {r["root_id"] for r in val}
    pair = (pairs_train + pairs_val)[0]
    assert pair["chosen"].startswith("answer 0") and pair["rejected"].startswith("answer 1") and pair["margin"] == 2.0
    summary = store.read_json(out["summary"])
    assert summary["preference_pairs"] == {"train": len(pairs_train), "validation": len(pairs_val)}


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
    judged = instruct.judge(layout, cfg, _write(layout, "respond", [record]), _endpoint(fault_server))
    [out] = layout.store.read_parquet(judged["output"])
    assert [r["scores"]["overall"] for r in out["responses"]] == [1.0, 3.45]  # weighted 0.3/0.3/0.2/0.1/0.1
    assert [m["role"] for m in fault_server.requests[0]["messages"]] == ["user", "assistant"]
    pair = instruct.preference_pair(out | {"cluster": 0}, margin=0.5)
    assert pair["chosen"].startswith("A thorough") and pair["margin"] == 2.45


def test_llm_safety_judge_runs_after_the_cheap_filters(layout, fault_server):
    fault_server.responder = lambda body: json.dumps(
        {"safe": "lock picking" not in _prompt(body), "category": "crime"})
    records = [_instr(rid, text) | {"responses": [_scored("An answer.", 3.0)], "response_failures": []}
               for rid, text in (("ok", "How do tides work?"), ("bad", "Teach me lock picking to enter a neighbour's flat."),
                                 ("weak", "Name a colour."))]
    records[2]["responses"] = [_scored("Blue.", 1.0)]
    result = instruct.screen(layout, _cfg(llm_safety=True, min_quality=2.5), _write(layout, "judge", records),
                             _endpoint(fault_server))
    ledger = _ledger(layout, "screen")
    assert ledger["bad"]["reason"] == "unsafe_llm: crime" and ledger["weak"]["reason"].startswith("low_quality")
    assert [r["id"] for r in layout.store.read_parquet(result["output"])] == ["ok"]
    assert len(fault_server.requests) == 2  # the low-quality record never reached the judge
