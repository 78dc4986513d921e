"""Responses and their scores: ``respond`` samples them, ``judge`` scores them, ``screen`` drops
what must not reach an output. respond and judge make one call per response but account per
instruction: a failed response is listed on its instruction, which fails only when none is left."""

from __future__ import annotations

from synth_tasks.methods.instruct.config import InstructConfig, JudgeKind
from synth_tasks.methods.instruct.prompts import response_messages
from synth_tasks.methods.instruct.records import best_response


def _call_id(record_id: str, index: int) -> str:
    return f"{record_id}#r{index}"


def _split_call_id(call_id: str) -> tuple[str, int]:
    record_id, index = call_id.rsplit("#r", 1)
    return record_id, int(index)


def _fan_out_failures(call_ledger, stage: str) -> dict[str, list[dict]]:
    """Failed per-response calls (ids "{record}#r{k}"), grouped by record."""
    failures: dict[str, list[dict]] = {}
    for row in call_ledger.rows:
        if row["outcome"] == "failed":
            record_id, index = _split_call_id(row["record_id"])
            failures.setdefault(record_id, []).append(
                {"stage": stage, "index": index, "error": row["error"], "raw": row["raw_response"]})
    return failures


def _settle(run, record: dict, responses: list[dict], failures: list[dict], what: str) -> None:
    """An instruction with at least one usable response goes on (its failed ones listed in
    ``response_failures``); one with none fails with the first error and raw text."""
    record = record | {"responses": responses, "response_failures": [*record.get("response_failures", []), *failures]}
    if responses:
        run.kept(record["id"], record)
        return
    first = failures[0] if failures else {"error": "no responses", "raw": None}
    run.failed(record["id"], f"no_{what}: every response failed; first: {first['error']}", raw=first["raw"])


# --------------------------------------------------------------------------------------------
# respond
# --------------------------------------------------------------------------------------------
def respond(run, records: list[dict]) -> None:
    """``n_responses`` sampled responses per instruction."""
    from synth_tasks.ledger import StageLedger

    cfg: InstructConfig = run.cfg
    calls = [{"id": _call_id(r["id"], k), "instruction": r["instruction"]} for r in records
             for k in range(cfg.n_responses)]
    call_ledger = StageLedger("respond_calls", run.shard)
    answered = run.llm_calls(calls, lambda c: run.llm.chat(response_messages(c["instruction"]),
                                                           cfg.sampling(c["id"], "response")), ledger=call_ledger)
    by_record: dict[str, list[dict]] = {}
    failures = _fan_out_failures(call_ledger, "respond")
    for call, result in answered:
        record_id, index = _split_call_id(call["id"])
        if not result.text.strip():
            failures.setdefault(record_id, []).append(
                {"stage": "respond", "index": index, "error": "empty_response: the model returned no text",
                 "raw": result.text})
            continue
        by_record.setdefault(record_id, []).append(
            {"index": index, "text": result.text.strip(), "model": result.model,
             "finish_reason": result.finish_reason, "completion_tokens": result.completion_tokens})
    for r in records:
        _settle(run, r, by_record.get(r["id"], []), failures.get(r["id"], []), "response")
    n_failed = sum(map(len, failures.values()))
    run.counts.update(responses=len(calls) - n_failed, response_failures=n_failed)


# --------------------------------------------------------------------------------------------
# judge
# --------------------------------------------------------------------------------------------
def make_judge(cfg: InstructConfig, client):
    from synth_tasks.quality.judge import LLMJudge, RewardModelJudge

    if cfg.judge == JudgeKind.REWARD_MODEL:
        return RewardModelJudge(client, weights=cfg.judge_weights)
    return LLMJudge(client, weights=cfg.judge_weights)


def judge(run, records: list[dict]) -> None:
    """Scores on every response. A response whose judgement is malformed or out of range leaves
    the instruction's responses, listed with the raw judgement (on the record and in
    ``_dropped/judge``); an instruction left with no scored response fails with it."""
    from synth_tasks.ledger import StageLedger

    cfg: InstructConfig = run.cfg
    calls = [{"id": _call_id(r["id"], resp["index"]), "instruction": r["instruction"], "response": resp}
             for r in records for resp in r["responses"]]
    scorer = make_judge(cfg, run.llm)
    call_ledger = StageLedger("judge_calls", run.shard)
    answered = run.llm_calls(calls, lambda c: scorer.score(c["instruction"], c["response"]["text"]),
                             ledger=call_ledger)
    scored: dict[str, list[dict]] = {}
    for call, scores in answered:
        scored.setdefault(_split_call_id(call["id"])[0], []).append(call["response"] | {"scores": scores})
    failures = _fan_out_failures(call_ledger, "judge")
    for r in records:
        _settle(run, r, sorted(scored.get(r["id"], []), key=lambda x: x["index"]), failures.get(r["id"], []),
                "judgement")
    # The audit copy of every failed judgement: responses, not records the ledger knows (a record
    # with another scored response goes on).
    for rid, fs in failures.items():
        for f in fs:
            run.audit(rid, **f)
    n_failed = sum(map(len, failures.values()))
    run.counts.update(judged=len(calls) - n_failed, judge_failures=n_failed)


# --------------------------------------------------------------------------------------------
# screen
# --------------------------------------------------------------------------------------------
def screen(run, records: list[dict]) -> None:
    """Per-record filters, cheapest first: benchmark overlap and keyword safety (instruction and
    every response), quality threshold on the best response, then, with ``llm_safety``, the LLM
    safety judge (instruction and best response). Without it the stage calls no LLM."""
    from synth_tasks.quality.decontamination import Decontaminator
    from synth_tasks.quality.filters import KEEP, drop, first_drop
    from synth_tasks.quality.safety import KeywordSafety

    cfg: InstructConfig = run.cfg
    text_filters = ([Decontaminator(tuple(cfg.benchmarks))] if cfg.benchmarks else []) + [KeywordSafety()]
    passed = []
    for r in records:
        best = best_response(r)
        # every text that can reach an output (a rejected response too), each on its own
        texts = [r["instruction"], *(x["text"] for x in r["responses"])]
        verdict = next((v for v in (first_drop(text_filters, t) for t in texts) if not v.keep), KEEP)
        if verdict.keep and best["scores"]["overall"] < cfg.min_quality:
            verdict = drop(f"low_quality: best overall {best['scores']['overall']:.2f} < {cfg.min_quality}")
        if not verdict.keep:
            run.filtered(r["id"], verdict.reason, instruction=r["instruction"])
            continue
        passed.append(r)
    if cfg.llm_safety and passed:
        passed = _llm_safety(run, passed)
    for r in passed:
        run.kept(r["id"], r)


def _llm_safety(run, records: list[dict]) -> list[dict]:
    """The records the safety judge calls safe; the others are filtered, a failed call fails its record."""
    from synth_tasks.quality.safety import LLMSafetyJudge

    safety = LLMSafetyJudge(run.llm)
    answered = run.llm_calls(
        records, lambda r: safety(f"User: {r['instruction']}\n\nAssistant: {best_response(r)['text']}"),
        progress=run.progress(len(records), "safety"))
    safe = []
    for r, verdict in answered:
        if verdict.keep:
            safe.append(r)
        else:
            run.filtered(r["id"], verdict.reason, instruction=r["instruction"])
    return safe
