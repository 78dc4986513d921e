"""Where the instructions come from: the seeds (``prepare``), Self-Instruct (``self_instruct``) and
Evol-Instruct (``evolve``). Heavy imports happen inside the stage functions."""

from __future__ import annotations

import random

from synth_tasks.config import SamplingParams
from synth_tasks.methods.instruct.config import EvolOperation, InstructConfig
from synth_tasks.methods.instruct.prompts import (
    EqualityJudgement,
    equality_messages,
    evol_messages,
    parse_instruction,
    response_messages,
    self_instruct_messages,
)
from synth_tasks.methods.instruct.records import instruction_record

EXAMPLES_PER_PROMPT, MACHINE_EXAMPLES = 8, 2
SEEDS = "seeds"  # the seed pool, beside the stage outputs: Self-Instruct's novelty check needs all of it


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def prepare(run, files: list[str]) -> None:
    """Read the seed files; write the seed pool (for the novelty check) and pass on the seeds and
    the Self-Instruct jobs (each with its 8 example seeds and target domain), shuffled together,
    so that self_instruct passes every seed on exactly once."""
    from synth_tasks.inputs import read_inputs

    cfg: InstructConfig = run.cfg
    records, _ = read_inputs(run.input_store, files, run.ledger, cfg.instruction_column, cfg.id_column,
                             extra_columns=(cfg.domain_column,))
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
    run.store.write_parquet(run.layout.part(SEEDS, 0), seeds)

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


def self_instruct(run, rows: list[dict]) -> None:
    """The shard's seeds pass on; its jobs ask for new instructions in waves of ``concurrency``.
    Each answer is parsed and checked against the shape rules and the pool (all seeds + what this
    shard accepted so far), and the accepted ones become the machine examples of the next wave."""
    from synth_tasks.methods.instruct.filters import RougeNovelty
    from synth_tasks.quality.filters import first_drop

    cfg: InstructConfig = run.cfg
    novelty = RougeNovelty(cfg.rouge_threshold)
    for s in run.store.read_parquet(run.layout.part(SEEDS, 0)):
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
    from synth_tasks.quality.filters import drop, first_drop

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


async def evolve_one(run, record: dict, progress) -> list[dict]:
    """``evol_rounds`` rounds on one instruction, each rewriting the current one by a randomly
    picked operation. An eliminated or failed round leaves the parent in place for the next round
    (as in WizardLM). Every candidate is created here and filtered or failed here; the surviving
    descendants are returned, in round order, for the caller to keep."""
    from synth_tasks.llm.client import LLMError

    cfg: InstructConfig = run.cfg
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


def evolve(run, records: list[dict]) -> None:
    """Every instruction passes on, followed (after all of them) by the surviving descendants of
    each in turn, which this stage creates."""
    import asyncio

    cfg: InstructConfig = run.cfg
    for r in records:
        run.kept(r["id"], r)
    if not cfg.evol_rounds:
        return
    progress = run.progress(len(records) * cfg.evol_rounds)
    families = run.run_async(lambda: asyncio.gather(*(evolve_one(run, r, progress) for r in records)))
    for family in families:
        for descendant in family:
            run.kept(descendant["id"], descendant)
