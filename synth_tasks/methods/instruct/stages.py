"""The stage functions of instruct (declared in ``METHOD``, ``__init__.py``) and its export hooks.

Where the instructions come from: the seeds (``prepare``), Self-Instruct (``self_instruct``) and
Evol-Instruct (``evolve``). Their responses and scores: ``respond`` samples them, ``judge`` scores
them, ``screen`` drops what must not reach an output; respond and judge make one call per response
but account per instruction (a failed response is listed on its instruction, which fails only when
none is left). ``select``, over all shards at once: duplicates out, then a cluster-balanced sample.
What the export writes: SFT chat records (the core splits them by seed lineage) and, beside them,
the preference pairs, on the side of their lineage. Heavy imports happen inside the functions."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

from synth_tasks.config import SamplingParams
from synth_tasks.methods.instruct.config import EvolOperation, InstructConfig, JudgeKind
from synth_tasks.methods.instruct.prompts import (
    EqualityJudgement,
    equality_messages,
    evol_messages,
    parse_instruction,
    response_messages,
    self_instruct_messages,
)
from synth_tasks.methods.instruct.records import best_response, instruction_record
from synth_tasks.quality.decontamination import Decontaminator
from synth_tasks.quality.filters import KEEP, drop, first_drop
from synth_tasks.quality.judge import LLMJudge, RewardModelJudge

if TYPE_CHECKING:  # the stage runner and the export import pyarrow: not at DAG parse time
    from synth_tasks.export import ExportContext
    from synth_tasks.llm.client import LLMError
    from synth_tasks.progress import Progress
    from synth_tasks.stage import StageRun

EXAMPLES_PER_PROMPT, MACHINE_EXAMPLES = 8, 2
SEEDS = "seeds"  # the seed pool, an artifact of prepare: Self-Instruct's novelty check needs all of it


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def prepare(run: StageRun[InstructConfig], files: list[str]) -> None:
    """Read the seed files; write the seed pool (for the novelty check) and pass on the seeds and
    the Self-Instruct jobs (each with its 8 example seeds and target domain), shuffled together,
    so that self_instruct passes every seed on exactly once."""
    cfg = run.cfg
    records = run.read_inputs(files, cfg.instruction_column, cfg.id_column, extra_columns=(cfg.domain_column,))
    seeds: list[dict] = []
    for rec in records:
        if not rec.text.strip():
            run.filtered(rec.id, "empty_instruction: no text")
            continue
        if cfg.max_seeds is not None and len(seeds) >= cfg.max_seeds:
            run.filtered(rec.id, f"over_max_seeds: max_seeds={cfg.max_seeds} reached")
            continue
        run.kept(rec.id)  # it goes on inside the shuffled rows below
        domain = str(rec.fields.get(cfg.domain_column, "general")).strip() or "general"
        seeds.append(instruction_record(rec.id, rec.text.strip(), domain=domain, origin="seed", root_id=rec.id,
                                        source_file=rec.source, source_row=rec.row))
    if not seeds:
        return  # no output: the runner fails the run, naming the input and its first problems
    run.store.write_parquet(f"{run.artifact(SEEDS)}/part-00000.parquet", seeds)

    jobs = plan_self_instruct(cfg, seeds)
    rows = ([{"id": s["id"], "kind": "seed", "seed": s, "job": None} for s in seeds]
            + [{"id": j["id"], "kind": "job", "seed": None, "job": j} for j in jobs])
    random.Random(f"{cfg.seed}:shards").shuffle(rows)
    run.emit(*rows)
    run.counts.update(seeds=len(seeds), jobs=len(jobs))


def plan_self_instruct(cfg: InstructConfig, seeds: list[dict]) -> list[dict]:
    """``self_instruct_count`` jobs, round-robin over the seed domains and the topics, each with
    up to 8 example seeds drawn at random (deterministic per job)."""
    domains = sorted({s["domain"] for s in seeds}) + [t for t in cfg.topics if t.strip()]
    texts = [s["instruction"] for s in seeds]
    jobs = []
    for i in range(cfg.self_instruct_count):
        job_id = f"self_instruct-{i:05d}"
        rng = random.Random(f"{cfg.seed}:{job_id}")
        jobs.append({"id": job_id, "domain": domains[i % len(domains)],
                     "examples": rng.sample(texts, min(EXAMPLES_PER_PROMPT, len(texts)))})
    return jobs


# --------------------------------------------------------------------------------------------
# self_instruct
# --------------------------------------------------------------------------------------------
def instruction_filters(cfg: InstructConfig) -> list:
    from synth_tasks.methods.instruct.filters import CleanStart, KeywordBlocklist, WordCount

    return [CleanStart(), WordCount(cfg.min_instruction_words, cfg.max_instruction_words),
            KeywordBlocklist(tuple(cfg.blocklist))]


def with_machine_examples(job: dict, machine: list[str]) -> list[str]:
    """Self-Instruct's mix: six of the job's seeds and two instructions this shard has already
    accepted (only seeds while fewer than two are accepted)."""
    examples = list(job["examples"])
    if len(machine) < MACHINE_EXAMPLES:
        return examples
    picked = random.Random(f"{job['id']}:machine").sample(machine, MACHINE_EXAMPLES)
    return examples[: EXAMPLES_PER_PROMPT - MACHINE_EXAMPLES] + picked


def self_instruct(run: StageRun[InstructConfig], rows: list[dict]) -> None:
    """The shard's seeds pass on; its jobs ask for new instructions in waves of ``concurrency``.
    Each answer is parsed and checked against the shape rules and the pool (all seeds + what this
    shard accepted so far), and the accepted ones become the machine examples of the next wave."""
    from synth_tasks.methods.instruct.filters import RougeNovelty

    cfg = run.cfg
    novelty = RougeNovelty(cfg.rouge_threshold)
    for s in run.store.read_parquet(f"{run.artifact(SEEDS)}/part-00000.parquet"):
        novelty.add(s["id"], s["instruction"])
    shape_rules = instruction_filters(cfg)
    for r in rows:
        if r["kind"] == "seed":
            run.kept(r["id"], r["seed"])
    jobs = [r["job"] for r in rows if r["kind"] == "job"]
    progress = run.progress(len(jobs))
    machine: list[str] = []
    for start in range(0, len(jobs), cfg.concurrency):
        wave = jobs[start : start + cfg.concurrency]
        prompts = {job["id"]: self_instruct_messages(with_machine_examples(job, machine), job["domain"])
                   for job in wave}
        answered = run.llm_calls(wave, lambda job: run.llm.chat(prompts[job["id"]],
                                                                cfg.sampling(job["id"], "instruction")),
                                 progress=progress)
        for job, result in answered:
            text = parse_instruction(result.text)
            verdict = first_drop([*shape_rules, novelty], text)
            if not verdict.keep:
                run.filtered(job["id"], verdict.reason, text=text, raw=result.text)
                continue
            novelty.add(job["id"], text)
            machine.append(text)
            run.kept(job["id"], instruction_record(job["id"], text, domain=job["domain"], origin="self_instruct",
                                                   root_id=job["id"]))


# --------------------------------------------------------------------------------------------
# evolve
# --------------------------------------------------------------------------------------------
async def elimination_verdict(client, cfg: InstructConfig, candidate_id: str, parent_text: str, raw: str,
                              text: str):
    """Evol-Instruct's elimination rules for one evolved instruction, cheapest first: template
    leakage (in the instruction parsed from the reply: a "Created Prompt:" header before it is not
    part of it), nothing left, no information gain over the parent (the model compares the two),
    and a response that is a short apology or only punctuation and stop words."""
    from synth_tasks.methods.instruct.filters import ApologyResponse, ContentlessResponse, TemplateLeak

    leak = TemplateLeak()(text)
    if not leak.keep:
        return leak
    if not text:
        return drop("empty_instruction: nothing left after parsing")
    same = await client.chat(equality_messages(parent_text, text), SamplingParams(temperature=0.0, max_tokens=16),
                             response_model=EqualityJudgement)
    if same.parsed.equal:
        return drop("no_information_gain: the model judged it equal to its parent")
    # The respond stage asks the very same request for response 0, so it comes from the cache there.
    answer = await client.chat(response_messages(text), cfg.sampling(f"{candidate_id}#r0", "response"))
    return first_drop([ApologyResponse(), ContentlessResponse()], answer.text, text)


async def evolve_one(run: StageRun[InstructConfig], record: dict, progress: Progress) -> list[dict]:
    """``evol_rounds`` rounds on one instruction, each rewriting the current one by a randomly
    picked operation. An eliminated or failed round leaves the parent in place for the next round
    (as in WizardLM). Every candidate is created here and filtered or failed here; the surviving
    descendants are returned, in round order, for the caller to keep."""
    from synth_tasks.llm.client import LLMError

    cfg = run.cfg
    rng = random.Random(f"{cfg.seed}:{record['id']}:evol")
    survivors: list[dict] = []
    parent = record
    for round_no in range(1, cfg.evol_rounds + 1):
        operation = rng.choice(cfg.evol_operations)
        cid = f"{record['id']}~e{round_no}"
        run.created(cid)
        try:
            rewritten = await run.llm.chat(evol_messages(operation, parent["instruction"]),
                                           cfg.sampling(cid, "instruction"))
            text = parse_instruction(rewritten.text)
            verdict = await elimination_verdict(run.llm, cfg, cid, parent["instruction"], rewritten.text, text)
        except LLMError as exc:
            run.failed(cid, str(exc), raw=exc.raw)
            progress.update(error=True)
            continue
        progress.update(tokens=0 if rewritten.cached else rewritten.completion_tokens)
        if not verdict.keep:
            run.filtered(cid, verdict.reason, operation=str(operation), parent_id=parent["id"], text=text,
                         raw=rewritten.text)
            continue
        origin = "evol_in_breadth" if operation == EvolOperation.IN_BREADTH else "evol_in_depth"
        parent = instruction_record(cid, text, domain=parent["domain"], origin=origin, root_id=record["root_id"],
                                    parent_id=parent["id"], depth=parent["depth"] + 1,
                                    evol_ops=[*parent["evol_ops"], str(operation)])
        survivors.append(parent)
    return survivors


def evolve(run: StageRun[InstructConfig], records: list[dict]) -> None:
    """Every instruction passes on, followed (after all of them) by the surviving descendants of
    each in turn, which this stage creates."""
    cfg = run.cfg
    for r in records:
        run.kept(r["id"], r)
    if not cfg.evol_rounds:
        return
    progress = run.progress(len(records) * cfg.evol_rounds)
    families = run.run_async(lambda: asyncio.gather(*(evolve_one(run, r, progress) for r in records)))
    for family in families:
        for descendant in family:
            run.kept(descendant["id"], descendant)


# --------------------------------------------------------------------------------------------
# respond and judge: one call per response, accounted per instruction
# --------------------------------------------------------------------------------------------
def _call_id(record_id: str, index: int) -> str:
    return f"{record_id}#r{index}"


def _split_call_id(call_id: str) -> tuple[str, int]:
    record_id, index = call_id.rsplit("#r", 1)
    return record_id, int(index)


def _collect_failures(stage: str, failures: dict[str, list[dict]]):
    """An ``on_failure`` for per-response calls (ids "{record}#r{k}"): a failed call is listed on
    its record, in the order the calls failed, instead of failing the record."""
    def on_failure(call: dict, exc: LLMError) -> None:
        record_id, index = _split_call_id(call["id"])
        failures.setdefault(record_id, []).append({"stage": stage, "index": index, "error": str(exc), "raw": exc.raw})

    return on_failure


def _settle(run: StageRun[InstructConfig], record: dict, responses: list[dict], failures: list[dict],
            what: str) -> None:
    """An instruction with at least one usable response goes on (its failed ones listed in
    ``response_failures``); one with none fails with the first error and raw text."""
    record = record | {"responses": responses, "response_failures": [*record.get("response_failures", []), *failures]}
    if responses:
        run.kept(record["id"], record)
        return
    first = failures[0] if failures else {"error": "no responses", "raw": None}
    run.failed(record["id"], f"no_{what}: every response failed; first: {first['error']}", raw=first["raw"])


def respond(run: StageRun[InstructConfig], records: list[dict]) -> None:
    """``n_responses`` sampled responses per instruction."""
    cfg = run.cfg
    calls = [{"id": _call_id(r["id"], k), "instruction": r["instruction"]} for r in records
             for k in range(cfg.n_responses)]
    failures: dict[str, list[dict]] = {}
    answered = run.llm_calls(calls, lambda c: run.llm.chat(response_messages(c["instruction"]),
                                                           cfg.sampling(c["id"], "response")),
                             on_failure=_collect_failures("respond", failures))
    by_record: dict[str, list[dict]] = {}
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


def make_judge(cfg: InstructConfig, client):
    if cfg.judge == JudgeKind.REWARD_MODEL:
        return RewardModelJudge(client, weights=cfg.judge_weights)
    return LLMJudge(client, weights=cfg.judge_weights)


def judge(run: StageRun[InstructConfig], records: list[dict]) -> None:
    """Scores on every response. A response whose judgement is malformed or out of range leaves
    the instruction's responses, listed with the raw judgement (on the record and in
    ``_dropped/judge``); an instruction left with no scored response fails with it."""
    cfg = run.cfg
    calls = [{"id": _call_id(r["id"], resp["index"]), "instruction": r["instruction"], "response": resp}
             for r in records for resp in r["responses"]]
    scorer = make_judge(cfg, run.llm)
    failures: dict[str, list[dict]] = {}
    answered = run.llm_calls(calls, lambda c: scorer.score(c["instruction"], c["response"]["text"]),
                             on_failure=_collect_failures("judge", failures))
    scored: dict[str, list[dict]] = {}
    for call, scores in answered:
        scored.setdefault(_split_call_id(call["id"])[0], []).append(call["response"] | {"scores": scores})
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
def screen(run: StageRun[InstructConfig], records: list[dict]) -> None:
    """Per-record filters, cheapest first: benchmark overlap and keyword safety (instruction and
    every response), quality threshold on the best response, then, with ``llm_safety``, the LLM
    safety judge (instruction and best response). Without it the stage calls no LLM."""
    from synth_tasks.quality.safety import KeywordSafety

    cfg = run.cfg
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


def _llm_safety(run: StageRun[InstructConfig], records: list[dict]) -> list[dict]:
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


# --------------------------------------------------------------------------------------------
# select
# --------------------------------------------------------------------------------------------
def select(run: StageRun[InstructConfig], records: list[dict]) -> None:
    """Exact and MinHash near-duplicate instructions (the better-scored copy stays), then k-means
    over sentence embeddings and, with ``target_size``, a cluster-balanced sample that favours the
    best-scored in each cluster. The diversity metrics before and after sampling go to the run
    summary (``info.diversity``)."""
    from synth_tasks.quality import diversity
    from synth_tasks.quality.dedup import exact_duplicate_of, minhash_duplicate_of

    cfg = run.cfg
    # best first, so the copy a duplicate group keeps is its best-scored one
    records = sorted(records, key=lambda r: (-best_response(r)["scores"]["overall"], r["id"]))
    texts = [r["instruction"] for r in records]
    exact = exact_duplicate_of(texts)
    near = minhash_duplicate_of(texts, threshold=cfg.near_duplicate_threshold, shingle_words=3)
    unique = []
    for r, ex, nd in zip(records, exact, near):
        reason = (f"exact_duplicate: of {records[ex]['id']}" if ex is not None else
                  f"near_duplicate: of {records[nd]['id']}" if nd is not None else None)
        if reason:
            run.filtered(r["id"], reason, instruction=r["instruction"])
        else:
            unique.append(r)

    embeddings = diversity.embed([r["instruction"] for r in unique])
    k = cfg.n_clusters or max(1, round(len(unique) ** 0.5))
    labels = diversity.kmeans_labels(embeddings, k, seed=cfg.seed) if unique else []
    before = diversity.diversity_report([r["instruction"] for r in unique], embeddings, labels)
    chosen = list(range(len(unique)))
    if cfg.target_size is not None and cfg.target_size < len(unique):
        scores = [best_response(r)["scores"]["overall"] for r in unique]
        chosen = diversity.cluster_balanced_sample(labels, cfg.target_size, seed=cfg.seed, scores=scores)
    chosen_set = set(chosen)
    selected = []
    for i, r in enumerate(unique):
        r = r | {"cluster": int(labels[i])}
        if i in chosen_set:
            run.kept(r["id"], r)
            selected.append(r)
        else:
            run.filtered(r["id"], f"diversity_sample: cluster {int(labels[i])} over its share of "
                         f"target_size={cfg.target_size}", instruction=r["instruction"])
    after = diversity.diversity_report([r["instruction"] for r in selected], embeddings[chosen],
                                       [labels[i] for i in chosen])
    run.info["diversity"] = {"clusters": int(k) if unique else 0, "before_sampling": before, "selected": after}


# --------------------------------------------------------------------------------------------
# export: SFT records, and the preference pairs beside them
# --------------------------------------------------------------------------------------------
def sft_record(r: dict) -> dict:
    best = best_response(r)
    return {"id": r["id"], "messages": [{"role": "user", "content": r["instruction"]},
                                        {"role": "assistant", "content": best["text"]}],
            "instruction": r["instruction"], "response": best["text"], "scores": best["scores"],
            "overall": best["scores"]["overall"], "domain": r["domain"], "origin": r["origin"],
            "root_id": r["root_id"], "parent_id": r["parent_id"], "depth": r["depth"], "evol_ops": r["evol_ops"],
            "cluster": r["cluster"], "n_responses": len(r["responses"]), "model": best["model"]}


def sft_records(records: list[dict]) -> list[dict]:
    """The selected instructions as SFT chat records, each with its best response."""
    return [sft_record(r) for r in records]


def preference_pair(r: dict, margin: float) -> dict | None:
    """Chosen = best-scored, rejected = worst-scored response of the same instruction, when the
    gap reaches ``margin``."""
    if len(r["responses"]) < 2:
        return None
    best = best_response(r)
    worst = min(r["responses"], key=lambda x: (x["scores"]["overall"], x["index"]))
    gap = round(best["scores"]["overall"] - worst["scores"]["overall"], 4)
    if gap < margin or gap <= 0:
        return None
    return {"id": f"{r['id']}:pref", "root_id": r["root_id"], "domain": r["domain"], "prompt": r["instruction"],
            "chosen": best["text"], "rejected": worst["text"], "chosen_scores": best["scores"],
            "rejected_scores": worst["scores"], "margin": gap}


def preference_files(ctx: ExportContext, train: list[dict], validation: list[dict]) -> dict[str, str]:
    """Preference pairs of the selected instructions, each on the side its lineage (``root_id``)
    went to in the SFT split, as JSONL and Parquet; their counts go to the summary's info."""
    pairs = [p for r in ctx.records if (p := preference_pair(r, ctx.cfg.preference_margin)) is not None]
    validation_lineages = {r["root_id"] for r in validation}
    sides = {"train": [p for p in pairs if p["root_id"] not in validation_lineages],
             "validation": [p for p in pairs if p["root_id"] in validation_lineages]}
    ctx.info["preference_pairs"] = {side: len(rows) for side, rows in sides.items()}
    files = {}
    for side, rows in sides.items():
        files[f"{side}_preferences_jsonl"] = ctx.store.write_jsonl(f"{ctx.final_dir}/{side}_preferences.jsonl", rows)
    for side, rows in sides.items():
        files[f"{side}_preferences_parquet"] = ctx.store.write_parquet(
            f"{ctx.final_dir}/{side}_preferences.parquet", rows)
    return files
