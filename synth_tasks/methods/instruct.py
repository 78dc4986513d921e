"""Nemotron-style instruction data: seed instructions in; scored, filtered instruction-response
pairs out, as SFT chat records and preference pairs (after the Nemotron-4 340B alignment recipe,
arXiv 2406.11704).

Stages (each ``(inputs, config) -> (output URL, stats)``; records carry their seed lineage):
    prepare        seed files -> the seed pool and Self-Instruct jobs, in shards
    self_instruct  jobs -> new instructions (Wang et al., 2023: 8 in-context examples, 6 seeds
                   + 2 machine-made; ROUGE-L novelty, length, blocklist and clean-start rules);
                   the shard's seeds pass through
    evolve         instructions -> themselves + their Evol-Instruct descendants (Xu et al., 2023:
                   in-depth and in-breadth rounds; failed evolutions are eliminated with a reason)
    respond        every instruction -> ``n_responses`` sampled responses
    judge          every response -> five HelpSteer2 scores and the weighted overall score
    screen         quality threshold, benchmark decontamination, safety
    select         (all shards) exact and MinHash near-duplicate instructions removed, then a
                   cluster-balanced sample and the diversity metrics
    export         SFT chat JSONL/Parquet + preference pairs, split by seed lineage, run summary

A Self-Instruct instruction starts its own lineage; an evolved one belongs to its parent's.
Heavy imports happen inside the stage functions: the DAG file imports this module at parse time.
"""

from __future__ import annotations

import logging
import random
import re
import time
from enum import StrEnum
from functools import lru_cache

from pydantic import BaseModel, Field, field_validator, model_validator

from synth_tasks.config import LLMParams, SamplingParams
from synth_tasks.quality.instructions import SELF_INSTRUCT_BLOCKLIST
from synth_tasks.quality.judge import ATTRIBUTES, DEFAULT_WEIGHTS

log = logging.getLogger(__name__)

DAG_ID = "instruct"
LLM_STAGES = 4  # self_instruct, evolve, respond, judge: each gets an even share of the token budget
EXAMPLES_PER_PROMPT, MACHINE_EXAMPLES = 8, 2


class EvolOperation(StrEnum):
    ADD_CONSTRAINTS = "add_constraints"
    DEEPENING = "deepening"
    CONCRETIZING = "concretizing"
    INCREASE_REASONING = "increase_reasoning"
    COMPLICATE_INPUT = "complicate_input"
    IN_BREADTH = "in_breadth"


class JudgeKind(StrEnum):
    LLM = "llm"
    REWARD_MODEL = "reward_model"


class InstructConfig(LLMParams):
    input_path: str = Field(
        "include/sample_data/instruct/seeds.yaml",
        description="Seed instructions: a YAML list, JSONL or Parquet file, directory or glob. Relative "
        "paths are under the project root; {ds} is replaced by the run's data-interval date.")
    instruction_column: str = Field("instruction", description="Field holding the seed instruction.")
    id_column: str | None = Field("id", description="Field holding a stable seed id (optional).")
    domain_column: str = Field("domain", description="Field holding the seed's domain (optional; "
                               "seeds without one are 'general').")
    topics: list[str] = Field([], description="Extra domains Self-Instruct writes new instructions for.")
    max_seeds: int | None = Field(None, ge=1, description="Use only the first N seeds (smoke runs).")
    self_instruct_count: int = Field(24, ge=0, description="Self-Instruct attempts (new instructions asked "
                                     "for), spread evenly over the domains and topics.")
    rouge_threshold: float = Field(0.7, gt=0.0, le=1.0, description="Drop a new instruction whose ROUGE-L "
                                   "against the pool exceeds this (Self-Instruct: 0.7).")
    min_instruction_words: int = Field(4, ge=1, description="Drop new instructions with fewer words.")
    max_instruction_words: int = Field(150, ge=1, description="Drop new instructions with more words.")
    blocklist: list[str] = Field(list(SELF_INSTRUCT_BLOCKLIST), description="Drop new instructions "
                                 "with any of these words (tasks a text model cannot do).")
    evol_rounds: int = Field(2, ge=0, le=10, description="Evol-Instruct rounds per instruction.")
    evol_operations: list[EvolOperation] = Field(list(EvolOperation), min_length=1,
                                                 description="Operations each round picks one of at random.")
    n_responses: int = Field(2, ge=1, le=8, description="Responses per instruction (2+ for preference pairs).")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature for instructions.")
    response_temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature for responses.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling for everything generated.")
    max_instruction_tokens: int = Field(256, ge=16, le=4096, description="Max tokens of a new instruction.")
    max_response_tokens: int = Field(1024, ge=16, le=32768, description="Max tokens of a response.")
    judge: JudgeKind = Field(JudgeKind.LLM, description="'llm': an instruct model grades the five HelpSteer2 "
                             "attributes; 'reward_model': an OpenAI-compatible reward model's scores.")
    judge_conn_id: str | None = Field(None, description="Airflow connection of the judge (default: llm_conn_id).")
    judge_model: str | None = Field(None, description="Judge model name (default: the connection's).")
    judge_weights: dict[str, float] = Field(dict(DEFAULT_WEIGHTS), description="Weights of the attributes "
                                            "in the overall score (HelpSteer2: 0.3/0.3/0.2/0.1/0.1).")
    min_quality: float = Field(2.5, ge=0.0, le=4.0, description="Drop instructions whose best response's "
                               "overall score (0-4) is below this.")
    llm_safety: bool = Field(False, description="Also ask the judge model whether each pair is safe.")
    benchmarks: list[str] = Field(["gsm8k_test"], description="Benchmark test sets to decontaminate against "
                                  "(13-gram overlap).")
    near_duplicate_threshold: float = Field(0.7, gt=0.0, le=1.0, description="MinHash Jaccard (word "
                                            "3-grams) at which an instruction is a near-duplicate.")
    target_size: int | None = Field(None, ge=1, description="Cluster-balanced sample of this many "
                                    "instructions (default: keep all; metrics are reported either way).")
    n_clusters: int | None = Field(None, ge=1, description="k-means clusters (default: sqrt of the count).")
    preference_margin: float = Field(0.5, ge=0.0, le=4.0, description="Minimum overall-score gap between "
                                     "chosen and rejected responses of a preference pair.")
    shard_size: int = Field(64, ge=1, description="Records per mapped task.")
    train_ratio: float = Field(0.9, gt=0.0, le=1.0, description="Share of seed lineages in train.")
    seed: int = Field(0, description="Seeds sampling, example choice and the split; part of every cache key.")

    @field_validator("judge_weights")
    @classmethod
    def _known_attributes(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(ATTRIBUTES))
        if unknown:
            raise ValueError(f"unknown attributes {unknown}; known: {list(ATTRIBUTES)}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weights must be >= 0 and sum to more than 0")
        return weights

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, names: list[str]) -> list[str]:
        from synth_tasks.quality.decontamination import BENCHMARKS

        unknown = sorted(set(names) - set(BENCHMARKS))
        if unknown:
            raise ValueError(f"unknown benchmarks {unknown}; known: {sorted(BENCHMARKS)}")
        return names

    @model_validator(mode="after")
    def _word_limits(self):
        if self.min_instruction_words > self.max_instruction_words:
            raise ValueError("min_instruction_words must not exceed max_instruction_words")
        return self

    def judge_connection(self) -> tuple[str, str | None]:
        """(connection id, model) of the judge, which the safety judge shares: its own when set,
        else the generator's."""
        return self.judge_conn_id or self.llm_conn_id, self.judge_model or self.model

    def sampling(self, key: str, kind: str) -> SamplingParams:
        if kind == "response":
            return SamplingParams.seeded(self.seed, key, temperature=self.response_temperature, top_p=self.top_p,
                                         max_tokens=self.max_response_tokens)
        return SamplingParams.seeded(self.seed, key, temperature=self.temperature, top_p=self.top_p,
                                     max_tokens=self.max_instruction_tokens)


# --------------------------------------------------------------------------------------------
# records and prompts
# --------------------------------------------------------------------------------------------
def instruction_record(rid: str, text: str, *, domain: str, origin: str, root_id: str, parent_id: str | None = None,
                       depth: int = 0, evol_ops: list[str] | None = None, source_file: str | None = None,
                       source_row: int | None = None) -> dict:
    """The one shape an instruction has between stages (every record has every key: Parquet
    takes its columns from the first row)."""
    return {"id": rid, "instruction": text, "domain": domain, "origin": origin, "root_id": root_id,
            "parent_id": parent_id, "depth": depth, "evol_ops": evol_ops or [], "source_file": source_file,
            "source_row": source_row}


def _messages(prompt_name: str, **values: str) -> list[dict]:
    from synth_tasks.prompts import load_prompt, render

    return [{"role": "user", "content": render(load_prompt(f"instruct/{prompt_name}"), **values)}]


def self_instruct_messages(examples: list[str], domain: str) -> list[dict]:
    numbered = "\n".join(f"{i}. {' '.join(text.split())}" for i, text in enumerate(examples, start=1))
    return _messages("self_instruct", examples=numbered, domain=domain)


def evol_messages(operation: str, instruction: str) -> list[dict]:
    if operation == EvolOperation.IN_BREADTH:
        return _messages("evol_in_breadth", instruction=instruction)
    return _messages("evol_in_depth", method=evol_methods()[operation], instruction=instruction)


@lru_cache(maxsize=1)
def evol_methods() -> dict[str, str]:
    """The in-depth method sentences, read once (like the prompts: load_prompt caches too)."""
    import yaml

    from synth_tasks.prompts import include_dir

    methods = yaml.safe_load((include_dir() / "prompts" / "instruct" / "evol_methods.yaml").read_text("utf-8"))
    missing = {str(op) for op in EvolOperation} - {str(EvolOperation.IN_BREADTH)} - set(methods)
    if missing:
        raise KeyError(f"evol_methods.yaml lacks {sorted(missing)}")
    return methods


def response_messages(instruction: str) -> list[dict]:
    return [{"role": "user", "content": instruction}]


_LABEL = re.compile(r"^(?:\*\*)?(?:(?:new\s+)?(?:task|instruction|question|prompt)\s*\d*\s*[:.)-]|\d+\s*[:.)])\s*(?:\*\*)?\s*",
                    re.IGNORECASE)
_NEXT_ITEM = re.compile(r"^\s*(?:task\s*)?\d+\s*[:.)]", re.IGNORECASE)
_QUOTES = ('"', "'", "\u201c", "\u201d")


def parse_instruction(text: str) -> str:
    """The instruction in a model's reply: its first paragraph, up to a following numbered item,
    without a leading "Task 9:"/"9." label or wrapping quotes."""
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    lines: list[str] = []
    for i, line in enumerate(paragraph.splitlines()):
        if i and _NEXT_ITEM.match(line):
            break
        lines.append(line.strip())
    out = _LABEL.sub("", " ".join(lines).strip(), count=1).strip()
    if len(out) >= 2 and out[0] in _QUOTES and out[-1] in _QUOTES:
        out = out[1:-1].strip()
    return out


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def prepare(layout, cfg: InstructConfig, input_pattern: str) -> dict:
    """Read the seed files, write the seed pool and, in shards, the seeds with the Self-Instruct
    jobs (each with its 8 example seeds and target domain). A re-run starts the partition afresh."""
    from synth_tasks.inputs import InputError, list_input_files, read_inputs
    from synth_tasks.ledger import LEDGER_SCHEMA, StageLedger
    from synth_tasks.stage import write_shards

    started = time.monotonic()
    layout.store.delete_tree(layout.base)
    ledger = StageLedger("prepare", 0)
    files = list_input_files(layout.store, input_pattern, in_folder=("*.yaml", "*.yml", "*.jsonl", "*.parquet"))
    records, input_ids = read_inputs(layout.store, files, ledger, cfg.instruction_column, cfg.id_column,
                                     extra_columns=(cfg.domain_column,))
    seeds: list[dict] = []
    for rec in records:
        input_ids.append(rec.id)
        if not rec.text.strip():
            ledger.filtered(rec.id, "empty_instruction: no text")
            continue
        if cfg.max_seeds is not None and len(seeds) >= cfg.max_seeds:
            ledger.filtered(rec.id, f"over_max_seeds: max_seeds={cfg.max_seeds} reached")
            continue
        ledger.kept(rec.id)
        domain = str(rec.fields.get(cfg.domain_column, "general")).strip() or "general"
        seeds.append(instruction_record(rec.id, rec.text.strip(), domain=domain, origin="seed", root_id=rec.id,
                                        source_file=rec.source, source_row=rec.row))
    ledger.check_complete(input_ids)
    layout.store.write_parquet(layout.ledger_part("prepare", 0), ledger.rows, LEDGER_SCHEMA)
    if not seeds:
        problems = [r["error"] or r["reason"] for r in ledger.rows][:5]
        raise InputError(f"no usable seed instructions in {input_pattern!r}: {problems}")
    layout.store.write_parquet(layout.part("seeds", 0), seeds)

    jobs = plan_self_instruct(cfg, seeds)
    # seeds and jobs share the shards, so self_instruct passes every seed on exactly once
    rows = [{"kind": "seed", "seed": s, "job": None} for s in seeds] + [{"kind": "job", "seed": None, "job": j}
                                                                         for j in jobs]
    random.Random(f"{cfg.seed}:shards").shuffle(rows)
    shards = write_shards(layout, "self_instruct_jobs", rows, cfg.shard_size)
    stats = ledger.stats() | {"produced": len(rows), "seeds": len(seeds), "jobs": len(jobs),
                              "seconds": round(time.monotonic() - started, 3), "started_at": time.time()}
    log.info("prepare: %d seeds, %d Self-Instruct jobs in %d shards", len(seeds), len(jobs), len(shards))
    return {"shards": shards, "stats": stats}


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
    from synth_tasks.quality.instructions import CleanStart, KeywordBlocklist, WordCount

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


def self_instruct(layout, cfg: InstructConfig, shard: int, jobs_url: str, endpoint, n_shards: int) -> dict:
    """Ask for new instructions in waves of ``concurrency``; each answer is parsed and checked
    against the shape rules and the pool (all seeds + what this shard accepted so far), and the
    accepted ones become the machine examples of the next wave."""
    from synth_tasks.ledger import StageLedger
    from synth_tasks.llm.client import LLMClient
    from synth_tasks.progress import Progress
    from synth_tasks.quality.filters import first_drop
    from synth_tasks.quality.instructions import RougeNovelty
    from synth_tasks.stage import finish_stage, run_llm_calls

    started = time.monotonic()
    rows = layout.store.read_parquet(jobs_url)
    novelty = RougeNovelty(cfg.rouge_threshold)
    for s in layout.store.read_parquet(layout.part("seeds", 0)):
        novelty.add(s["id"], s["instruction"])
    shape_rules = instruction_filters(cfg)
    ledger = StageLedger("self_instruct", shard)
    outputs = [r["seed"] for r in rows if r["kind"] == "seed"]
    for s in outputs:
        ledger.kept(s["id"])
    jobs = [r["job"] for r in rows if r["kind"] == "job"]
    client = LLMClient.for_stage(cfg, endpoint, layout, n_shards * LLM_STAGES)
    progress = Progress(f"self_instruct shard {shard}", len(jobs), log)
    machine: list[str] = []
    dropped: list[dict] = []
    for start in range(0, len(jobs), cfg.concurrency):
        wave = jobs[start : start + cfg.concurrency]
        prompts = {job["id"]: self_instruct_messages(with_machine_examples(job, machine), job["domain"])
                   for job in wave}
        answered = run_llm_calls(client, wave, lambda job: client.chat(prompts[job["id"]],
                                                                       cfg.sampling(job["id"], "instruction")),
                                 ledger, progress)
        for job, result in answered:
            text = parse_instruction(result.text)
            verdict = first_drop([*shape_rules, novelty], text)
            if not verdict.keep:
                ledger.filtered(job["id"], verdict.reason)
                dropped.append({"id": job["id"], "reason": verdict.reason, "text": text, "raw": result.text})
                continue
            ledger.kept(job["id"])
            novelty.add(job["id"], text)
            machine.append(text)
            outputs.append(instruction_record(job["id"], text, domain=job["domain"], origin="self_instruct",
                                              root_id=job["id"]))
    input_ids = [r["seed"]["id"] if r["kind"] == "seed" else r["job"]["id"] for r in rows]
    return finish_stage(layout, ledger, input_ids, outputs, started=started, dropped=dropped,
                        extra_stats={"usage": client.usage.as_dict(), "model": endpoint.model,
                                     "n_shards": n_shards})


# --------------------------------------------------------------------------------------------
# evolve
# --------------------------------------------------------------------------------------------
class EqualityJudgement(BaseModel):
    equal: bool


async def elimination_verdict(client, cfg: InstructConfig, candidate_id: str, parent_text: str, raw: str,
                              text: str):
    """Evol-Instruct's elimination rules for one evolved instruction, cheapest first: template
    leakage, nothing left, no information gain over the parent (the model compares the two), and
    a response that is a short apology or only punctuation and stop words."""
    from synth_tasks.quality.filters import drop, first_drop
    from synth_tasks.quality.instructions import ApologyResponse, ContentlessResponse, TemplateLeak

    leak = TemplateLeak()(raw)
    if not leak.keep:
        return leak
    if not text:
        return drop("empty_instruction: nothing left after parsing")
    same = await client.chat(_messages("equality_check", first=parent_text, second=text),
                             SamplingParams(temperature=0.0, max_tokens=16), response_model=EqualityJudgement)
    if same.parsed.equal:
        return drop("no_information_gain: the model judged it equal to its parent")
    # The respond stage asks the very same request for response 0, so it comes from the cache there.
    answer = await client.chat(response_messages(text), cfg.sampling(f"{candidate_id}#r0", "response"))
    return first_drop([ApologyResponse(), ContentlessResponse()], answer.text, text)


async def evolve_one(client, cfg: InstructConfig, record: dict, ledger, progress, dropped: list[dict]) -> list[dict]:
    """``evol_rounds`` rounds on one instruction, each rewriting the current one by a randomly
    picked operation. An eliminated or failed round leaves the parent in place for the next round
    (as in WizardLM). Returns the surviving descendants; every candidate is in the ledger."""
    from synth_tasks.llm.client import LLMError

    rng = random.Random(f"{cfg.seed}:{record['id']}:evol")
    survivors: list[dict] = []
    parent = record
    for round_no in range(1, cfg.evol_rounds + 1):
        operation = rng.choice(cfg.evol_operations)
        cid = f"{record['id']}~e{round_no}"
        ledger.created(cid)
        try:
            rewritten = await client.chat(evol_messages(operation, parent["instruction"]),
                                          cfg.sampling(cid, "instruction"))
            text = parse_instruction(rewritten.text)
            verdict = await elimination_verdict(client, cfg, cid, parent["instruction"], rewritten.text, text)
        except LLMError as exc:
            ledger.failed(cid, str(exc), raw=exc.raw)
            progress.update(error=True)
            continue
        progress.update(tokens=0 if rewritten.cached else rewritten.completion_tokens)
        if not verdict.keep:
            ledger.filtered(cid, verdict.reason)
            dropped.append({"id": cid, "reason": verdict.reason, "operation": str(operation),
                            "parent_id": parent["id"], "text": text, "raw": rewritten.text})
            continue
        ledger.kept(cid)
        origin = "evol_in_breadth" if operation == EvolOperation.IN_BREADTH else "evol_in_depth"
        parent = instruction_record(cid, text, domain=parent["domain"], origin=origin, root_id=record["root_id"],
                                    parent_id=parent["id"], depth=parent["depth"] + 1,
                                    evol_ops=[*parent["evol_ops"], str(operation)])
        survivors.append(parent)
    return survivors


def _upstream(result: dict) -> tuple[int, str, int]:
    """(shard, output URL, number of shards) of the mapped task before."""
    return result["stats"]["shard"], result["output"], result["stats"]["n_shards"]


def evolve(layout, cfg: InstructConfig, upstream: dict, endpoint) -> dict:
    """Every instruction passes on, followed by its surviving descendants (created here)."""
    import asyncio

    from synth_tasks.ledger import StageLedger
    from synth_tasks.llm.client import LLMClient
    from synth_tasks.progress import Progress
    from synth_tasks.stage import finish_stage

    started = time.monotonic()
    shard, url, n_shards = _upstream(upstream)
    records = layout.store.read_parquet(url)
    ledger = StageLedger("evolve", shard)
    for r in records:
        ledger.kept(r["id"])
    client = LLMClient.for_stage(cfg, endpoint, layout, n_shards * LLM_STAGES)
    progress = Progress(f"evolve shard {shard}", len(records) * cfg.evol_rounds, log)
    dropped: list[dict] = []

    async def run_all():
        try:
            return await asyncio.gather(*(evolve_one(client, cfg, r, ledger, progress, dropped) for r in records))
        finally:
            await client.aclose()

    descendants = asyncio.run(run_all()) if cfg.evol_rounds else []
    outputs = records + [d for family in descendants for d in family]
    input_ids = [r["id"] for r in records] + [f"{r['id']}~e{k}" for r in records for k in range(1, cfg.evol_rounds + 1)]
    return finish_stage(layout, ledger, input_ids, outputs, started=started, dropped=dropped,
                        extra_stats={"usage": client.usage.as_dict(), "model": endpoint.model, "n_shards": n_shards})


# --------------------------------------------------------------------------------------------
# respond and judge: per-response calls, per-instruction accounting
# --------------------------------------------------------------------------------------------
def _fan_out_failures(call_ledger, stage: str) -> dict[str, list[dict]]:
    """Failed per-response calls (ids "{record}#r{k}"), grouped by record."""
    failures: dict[str, list[dict]] = {}
    for row in call_ledger.rows:
        if row["outcome"] == "failed":
            record_id, index = row["record_id"].rsplit("#r", 1)
            failures.setdefault(record_id, []).append(
                {"stage": stage, "index": int(index), "error": row["error"], "raw": row["raw_response"]})
    return failures


def _settle(ledger, record: dict, responses: list[dict], failures: list[dict], outputs: list[dict], what: str) -> None:
    """An instruction with at least one usable response goes on (its failed ones listed in
    ``response_failures``); one with none fails with the first error and raw text."""
    record = record | {"responses": responses, "response_failures": [*record.get("response_failures", []), *failures]}
    if responses:
        ledger.kept(record["id"])
        outputs.append(record)
        return
    first = failures[0] if failures else {"error": "no responses", "raw": None}
    ledger.failed(record["id"], f"no_{what}: every response failed; first: {first['error']}", raw=first["raw"])


def respond(layout, cfg: InstructConfig, upstream: dict, endpoint) -> dict:
    """``n_responses`` sampled responses per instruction."""
    from synth_tasks.ledger import StageLedger
    from synth_tasks.llm.client import LLMClient
    from synth_tasks.progress import Progress
    from synth_tasks.stage import finish_stage, run_llm_calls

    started = time.monotonic()
    shard, url, n_shards = _upstream(upstream)
    records = layout.store.read_parquet(url)
    calls = [{"id": f"{r['id']}#r{k}", "instruction": r["instruction"]} for r in records
             for k in range(cfg.n_responses)]
    client = LLMClient.for_stage(cfg, endpoint, layout, n_shards * LLM_STAGES)
    call_ledger = StageLedger("respond_calls", shard)
    answered = run_llm_calls(client, calls, lambda c: client.chat(response_messages(c["instruction"]),
                                                                  cfg.sampling(c["id"], "response")),
                             call_ledger, Progress(f"respond shard {shard}", len(calls), log))
    by_record: dict[str, list[dict]] = {}
    failures = _fan_out_failures(call_ledger, "respond")
    for call, result in answered:
        record_id, index = call["id"].rsplit("#r", 1)
        if not result.text.strip():
            failures.setdefault(record_id, []).append(
                {"stage": "respond", "index": int(index), "error": "empty_response: the model returned no text",
                 "raw": result.text})
            continue
        by_record.setdefault(record_id, []).append(
            {"index": int(index), "text": result.text.strip(), "model": result.model,
             "finish_reason": result.finish_reason, "completion_tokens": result.completion_tokens})
    ledger = StageLedger("respond", shard)
    outputs: list[dict] = []
    for r in records:
        _settle(ledger, r, by_record.get(r["id"], []), failures.get(r["id"], []), outputs, "response")
    n_failed = sum(map(len, failures.values()))
    return finish_stage(layout, ledger, [r["id"] for r in records], outputs, started=started,
                        extra_stats={"usage": client.usage.as_dict(), "model": endpoint.model, "n_shards": n_shards,
                                     "counts": {"responses": len(calls) - n_failed, "response_failures": n_failed}})


def make_judge(cfg: InstructConfig, client):
    from synth_tasks.quality.judge import LLMJudge, RewardModelJudge

    if cfg.judge == JudgeKind.REWARD_MODEL:
        return RewardModelJudge(client, weights=cfg.judge_weights)
    return LLMJudge(client, weights=cfg.judge_weights)


def judge(layout, cfg: InstructConfig, upstream: dict, endpoint) -> dict:
    """Scores on every response. A response whose judgement is malformed or out of range leaves
    the instruction's responses, listed with the raw judgement; an instruction left with no scored
    response fails with it."""
    from synth_tasks.ledger import StageLedger
    from synth_tasks.llm.client import LLMClient
    from synth_tasks.progress import Progress
    from synth_tasks.stage import finish_stage, run_llm_calls

    started = time.monotonic()
    shard, url, n_shards = _upstream(upstream)
    records = layout.store.read_parquet(url)
    calls = [{"id": f"{r['id']}#r{resp['index']}", "instruction": r["instruction"], "response": resp}
             for r in records for resp in r["responses"]]
    client = LLMClient.for_stage(cfg, endpoint, layout, n_shards * LLM_STAGES)
    scorer = make_judge(cfg, client)
    call_ledger = StageLedger("judge_calls", shard)
    answered = run_llm_calls(client, calls, lambda c: scorer.score(c["instruction"], c["response"]["text"]),
                             call_ledger, Progress(f"judge shard {shard}", len(calls), log))
    scored: dict[str, list[dict]] = {}
    for call, scores in answered:
        scored.setdefault(call["id"].rsplit("#r", 1)[0], []).append(call["response"] | {"scores": scores})
    failures = _fan_out_failures(call_ledger, "judge")
    ledger = StageLedger("judge", shard)
    outputs: list[dict] = []
    for r in records:
        _settle(ledger, r, sorted(scored.get(r["id"], []), key=lambda x: x["index"]), failures.get(r["id"], []),
                outputs, "judgement")
    dropped = [{"id": rid, **f} for rid, fs in failures.items() for f in fs]
    n_failed = len(dropped)
    return finish_stage(layout, ledger, [r["id"] for r in records], outputs, started=started, dropped=dropped,
                        extra_stats={"usage": client.usage.as_dict(), "model": endpoint.model, "n_shards": n_shards,
                                     "judge": str(cfg.judge),
                                     "counts": {"judged": len(calls) - n_failed, "judge_failures": n_failed}})


def best_response(record: dict) -> dict:
    """The highest-scoring response (the lowest index among equals)."""
    return max(record["responses"], key=lambda r: (r["scores"]["overall"], -r["index"]))


# --------------------------------------------------------------------------------------------
# screen (per shard) and select (all shards)
# --------------------------------------------------------------------------------------------
def screen(layout, cfg: InstructConfig, upstream: dict, endpoint=None) -> dict:
    """Per-record filters, cheapest first: benchmark overlap and keyword safety (instruction and
    every response), quality threshold on the best response, then the optional LLM safety judge
    (instruction and best response)."""
    from synth_tasks.ledger import StageLedger
    from synth_tasks.quality.decontamination import Decontaminator
    from synth_tasks.quality.filters import KEEP, drop, first_drop
    from synth_tasks.quality.safety import KeywordSafety
    from synth_tasks.stage import finish_stage

    started = time.monotonic()
    shard, url, n_shards = _upstream(upstream)
    records = layout.store.read_parquet(url)
    text_filters = ([Decontaminator(tuple(cfg.benchmarks))] if cfg.benchmarks else []) + [KeywordSafety()]
    ledger = StageLedger("screen", shard)
    passed, dropped = [], []
    for r in records:
        best = best_response(r)
        # every text that can reach an output (a rejected response too), each on its own
        texts = [r["instruction"], *(x["text"] for x in r["responses"])]
        verdict = next((v for v in (first_drop(text_filters, t) for t in texts) if not v.keep), KEEP)
        if verdict.keep and best["scores"]["overall"] < cfg.min_quality:
            verdict = drop(f"low_quality: best overall {best['scores']['overall']:.2f} < {cfg.min_quality}")
        if not verdict.keep:
            ledger.filtered(r["id"], verdict.reason)
            dropped.append({"id": r["id"], "reason": verdict.reason, "instruction": r["instruction"]})
            continue
        passed.append(r)
    usage = {}
    if cfg.llm_safety and passed:
        passed, usage = _llm_safety(layout, cfg, shard, n_shards, passed, endpoint, ledger, dropped)
    for r in passed:
        ledger.kept(r["id"])
    return finish_stage(layout, ledger, [r["id"] for r in records], passed, started=started, dropped=dropped,
                        extra_stats={"usage": usage, "n_shards": n_shards})


def _llm_safety(layout, cfg, shard, n_shards, records, endpoint, ledger, dropped) -> tuple[list[dict], dict]:
    from synth_tasks.llm.client import LLMClient
    from synth_tasks.progress import Progress
    from synth_tasks.quality.safety import LLMSafetyJudge
    from synth_tasks.stage import run_llm_calls

    client = LLMClient.for_stage(cfg, endpoint, layout, n_shards * LLM_STAGES)
    safety = LLMSafetyJudge(client)
    answered = run_llm_calls(
        client, records, lambda r: safety(f"User: {r['instruction']}\n\nAssistant: {best_response(r)['text']}"),
        ledger, Progress(f"safety shard {shard}", len(records), log))
    safe = []
    for r, verdict in answered:
        if verdict.keep:
            safe.append(r)
        else:
            ledger.filtered(r["id"], verdict.reason)
            dropped.append({"id": r["id"], "reason": verdict.reason, "instruction": r["instruction"]})
    return safe, client.usage.as_dict()


def select(layout, cfg: InstructConfig, screened_urls: list[str]) -> dict:
    """Across all shards: exact and MinHash near-duplicate instructions (the better-scored copy
    stays), then k-means over sentence embeddings and, with ``target_size``, a cluster-balanced
    sample that favours the best-scored in each cluster. Diversity metrics before and after."""
    from synth_tasks.ledger import StageLedger
    from synth_tasks.quality import diversity
    from synth_tasks.quality.dedup import exact_duplicate_of, minhash_duplicate_of
    from synth_tasks.stage import finish_stage

    started = time.monotonic()
    records = [r for url in screened_urls for r in layout.store.read_parquet(url)]
    # best first, so the copy a duplicate group keeps is its best-scored one
    records.sort(key=lambda r: (-best_response(r)["scores"]["overall"], r["id"]))
    texts = [r["instruction"] for r in records]
    exact = exact_duplicate_of(texts)
    near = minhash_duplicate_of(texts, threshold=cfg.near_duplicate_threshold, shingle_words=3)
    ledger = StageLedger("select", 0)
    unique, dropped = [], []
    for r, ex, nd in zip(records, exact, near):
        reason = (f"exact_duplicate: of {records[ex]['id']}" if ex is not None else
                  f"near_duplicate: of {records[nd]['id']}" if nd is not None else None)
        if reason:
            ledger.filtered(r["id"], reason)
            dropped.append({"id": r["id"], "reason": reason, "instruction": r["instruction"]})
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
            ledger.kept(r["id"])
            selected.append(r)
        else:
            reason = f"diversity_sample: cluster {int(labels[i])} over its share of target_size={cfg.target_size}"
            ledger.filtered(r["id"], reason)
            dropped.append({"id": r["id"], "reason": reason, "instruction": r["instruction"]})
    after = diversity.diversity_report([r["instruction"] for r in selected], embeddings[chosen],
                                       [labels[i] for i in chosen])
    return finish_stage(layout, ledger, [r["id"] for r in records], selected, started=started, dropped=dropped,
                        extra_stats={"diversity": {"clusters": int(k) if unique else 0, "before_sampling": before,
                                                   "selected": after}})


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------
def sft_record(r: dict) -> dict:
    best = best_response(r)
    return {"id": r["id"], "messages": [{"role": "user", "content": r["instruction"]},
                                        {"role": "assistant", "content": best["text"]}],
            "instruction": r["instruction"], "response": best["text"], "scores": best["scores"],
            "overall": best["scores"]["overall"], "domain": r["domain"], "origin": r["origin"],
            "root_id": r["root_id"], "parent_id": r["parent_id"], "depth": r["depth"], "evol_ops": r["evol_ops"],
            "cluster": r["cluster"], "n_responses": len(r["responses"]), "model": best["model"]}


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


def export(layout, cfg: InstructConfig, selected_url: str, stage_results: list[dict], run_info: dict) -> dict:
    """SFT chat records and preference pairs, split by seed lineage (an instruction, its evolved
    descendants and their preference pairs all land on the same side), and the run summary."""
    from synth_tasks.export import write_split_and_summary
    from synth_tasks.split import split_by_group

    records = layout.store.read_parquet(selected_url)
    sft = [sft_record(r) for r in records]
    pairs = [p for r in records if (p := preference_pair(r, cfg.preference_margin)) is not None]
    _, validation = split_by_group(sft, "root_id", cfg.train_ratio, cfg.seed)
    validation_lineages = {r["root_id"] for r in validation}
    pairs_train = [p for p in pairs if p["root_id"] not in validation_lineages]
    pairs_validation = [p for p in pairs if p["root_id"] in validation_lineages]

    def write_preferences(store, final, train, validation):
        return {"train_preferences_jsonl": store.write_jsonl(f"{final}/train_preferences.jsonl", pairs_train),
                "validation_preferences_jsonl": store.write_jsonl(f"{final}/validation_preferences.jsonl",
                                                                  pairs_validation),
                "train_preferences_parquet": store.write_parquet(f"{final}/train_preferences.parquet", pairs_train),
                "validation_preferences_parquet": store.write_parquet(f"{final}/validation_preferences.parquet",
                                                                      pairs_validation)}

    select_stats = next((s["stats"] for s in stage_results if s["stats"]["stage"] == "select"), {})
    return write_split_and_summary(
        layout, sft, group_key="root_id", train_ratio=cfg.train_ratio, seed=cfg.seed,
        stage_results=stage_results,
        stage_order=["prepare", "self_instruct", "evolve", "respond", "judge", "screen", "select"],
        run_info=run_info | {"config": cfg.model_dump(mode="json"), "diversity": select_stats.get("diversity"),
                             "preference_pairs": {"train": len(pairs_train), "validation": len(pairs_validation)}},
        write_extra=write_preferences)
