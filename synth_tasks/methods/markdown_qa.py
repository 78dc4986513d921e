"""Markdown to QA: question-answer pairs with reasoning from a folder of markdown documents, rendered
at four chain-of-thought levels, for fine-tuning.

Stages (each ``(inputs, config) -> (output URL, stats)``):
    prepare   .md files     -> sections (split on headings; code blocks and tables whole)
    facts     sections      -> facts per section (LLM, structured; or heuristic) and the planned
                               QA jobs (types drawn by the configured weights)
    generate  jobs          -> QA pairs: question, answer, reasoning steps, evidence
    ground    pairs         -> pairs whose evidence is found in their section (fuzzy match)
    export    all shards    -> near-duplicate questions removed per document, every pair rendered at
                               the chosen CoT levels, train/validation grouped by source file

No-LLM mode uses heuristic facts and the factual-recall, true/false and fill-in-the-blank types
only; it is deterministic (same input, byte-identical output).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from synth_tasks.config import LLMParams, SamplingParams

log = logging.getLogger(__name__)

DAG_ID = "markdown_qa"


class QAType(StrEnum):
    FACTUAL_RECALL = "factual_recall"
    INFERENCE = "inference"
    MULTI_HOP = "multi_hop"
    APPLICATION = "application"
    COMPARATIVE = "comparative"
    CAUSE_EFFECT = "cause_effect"
    SUMMARIZATION = "summarization"
    HYPOTHETICAL = "hypothetical"
    CRITICAL_ANALYSIS = "critical_analysis"
    TECHNICAL_EXPLANATION = "technical_explanation"
    PROCESS_WORKFLOW = "process_workflow"
    TRUE_FALSE = "true_false"
    FILL_IN_BLANK = "fill_in_blank"
    AMBIGUITY_RESOLUTION = "ambiguity_resolution"


HEURISTIC_TYPES = (QAType.FACTUAL_RECALL, QAType.TRUE_FALSE, QAType.FILL_IN_BLANK)


class CoTLevel(StrEnum):
    NONE = "none"
    ONE_STEP = "one_step"
    TWO_STEP = "two_step"
    ALL_STEPS = "all_steps"


class MarkdownQAConfig(LLMParams):
    input_path: str = Field("include/sample_data/markdown_qa/docs",
                            description="Folder, file or glob of .md files; relative paths are under the "
                            "project root; {ds} is replaced by the run's data-interval date.")
    no_llm: bool = Field(False, description="Heuristic facts and fact-recall, true/false and "
                         "fill-in-the-blank pairs only: deterministic, needs no model.")
    section_max_tokens: int = Field(1000, ge=100, le=16000, description="Longer sections are cut by tokens.")
    section_min_tokens: int = Field(50, ge=0, le=2000, description="Shorter sections are merged forward.")
    pairs_per_section: int = Field(3, ge=1, le=50, description="QA pairs planned per section.")
    type_weights: dict[QAType, float] = Field(
        {t: 1.0 for t in QAType}, description="Relative weight of each QA type (0 turns a type off).")
    cot_levels: list[CoTLevel] = Field(list(CoTLevel), min_length=1,
                                       description="Chain-of-thought levels to render every pair at.")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int = Field(512, ge=16, le=16384, description="Max tokens per LLM answer.")
    grounding_threshold: float = Field(85.0, ge=0, le=100, description="Min fuzzy match (0-100) of the "
                                       "evidence in its section.")
    duplicate_threshold: float = Field(90.0, ge=0, le=100, description="Questions of one document at or "
                                       "above this similarity (0-100) are near-duplicates.")
    shard_size: int = Field(16, ge=1, description="Sections per mapped task.")
    train_ratio: float = Field(0.8, gt=0.0, le=1.0, description="Share of source files in train.")
    seed: int = Field(0, description="Seeds type sampling, generation and the split.")

    @model_validator(mode="after")
    def _some_type_is_on(self):
        usable = HEURISTIC_TYPES if self.no_llm else tuple(QAType)
        if not any(self.type_weights.get(t, 0) > 0 for t in usable):
            raise ValueError(f"type_weights: no QA type usable{' in no_llm mode' if self.no_llm else ''} has a "
                             f"weight > 0 (usable: {[str(t) for t in usable]})")
        if any(w < 0 for w in self.type_weights.values()):
            raise ValueError("type_weights: weights must be >= 0")
        return self

    def sampling(self, job_id: str) -> SamplingParams:
        return SamplingParams.seeded(self.seed, job_id, temperature=self.temperature, top_p=0.95,
                                     max_tokens=self.max_tokens)


class Facts(BaseModel):
    # minItems reaches the grammar of constrained decoders (llama.cpp), so a model cannot answer
    # with an empty list; a section with nothing to say still ends as no_facts in the ledger.
    facts: list[str] = Field(min_length=1, max_length=20)


class QAPair(BaseModel):
    # Non-empty by schema: constrained decoders then cannot emit an empty question or answer, and
    # other backends get a validation error and one repair attempt.
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    reasoning_steps: list[str] = Field(min_length=1, max_length=8)
    evidence: str


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def read_markdown(store, url: str) -> str:
    """The file's text; InputError naming the file when it is binary or not UTF-8."""
    from synth_tasks.inputs import InputError

    data = store.read_bytes(url)
    if b"\x00" in data[:8192]:
        raise InputError(f"{url}: binary file (NUL bytes), not markdown")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{url}: not UTF-8 (byte {exc.start})") from None


def prepare(layout, cfg: MarkdownQAConfig, input_pattern: str) -> dict:
    """Split every markdown file into sections and write them in shards. A re-run starts afresh."""
    from synth_tasks.inputs import InputError, list_input_files
    from synth_tasks.ledger import LEDGER_SCHEMA, StageLedger
    from synth_tasks.stage import write_shards
    from synth_tasks.text.markdown import split_sections

    started = time.monotonic()
    layout.store.delete_tree(layout.base)
    ledger = StageLedger("prepare", 0)
    files = list_input_files(layout.store, input_pattern, in_folder=("**/*.md",))
    sections: list[dict] = []
    for url in files:
        try:
            text = read_markdown(layout.store, url)
        except InputError as exc:
            log.error("input file failed: %s", exc)
            ledger.failed(url, f"bad_file: {exc}")
            continue
        if not text.strip():
            ledger.filtered(url, "empty_file: no text")
            continue
        name = url.rsplit("/", 1)[-1]
        doc_sections = split_sections(text, max_tokens=cfg.section_max_tokens, min_tokens=cfg.section_min_tokens,
                                      default_title=name.removesuffix(".md"))
        ledger.kept(url)
        for s in doc_sections:
            sections.append({"id": f"{url}#s{s.index:04d}", "source_file": url, "doc": name, "title": s.title,
                             "heading_path": list(s.path), "text": s.text, "n_tokens": s.n_tokens,
                             "section_index": s.index})
        # multi-hop questions pair a section with its neighbour in the same document
        doc_rows = sections[len(sections) - len(doc_sections):]
        for i, row in enumerate(doc_rows):
            other = doc_rows[i + 1] if i + 1 < len(doc_rows) else (doc_rows[i - 1] if i else None)
            row["neighbor_title"] = other["title"] if other else None
            row["neighbor_text"] = other["text"] if other else None
    ledger.check_complete(files)
    layout.store.write_parquet(layout.ledger_part("prepare", 0), ledger.rows, LEDGER_SCHEMA)
    if not sections:
        problems = [r["error"] or r["reason"] for r in ledger.rows][:5]
        raise InputError(f"no usable markdown in {input_pattern!r}: {problems}")
    shards = write_shards(layout, "sections", sections, cfg.shard_size)
    stats = ledger.stats() | {"produced": len(sections), "seconds": round(time.monotonic() - started, 3),
                              "started_at": time.time()}
    log.info("prepare: %d files -> %d sections in %d shards", len(files), len(sections), len(shards))
    return {"shards": shards, "stats": stats}


# --------------------------------------------------------------------------------------------
# facts + plan
# --------------------------------------------------------------------------------------------
def plan_types(cfg: MarkdownQAConfig, section_id: str, has_neighbor: bool) -> list[QAType]:
    """``pairs_per_section`` QA types drawn by weight (deterministic per section), distinct while
    there are enough usable types."""
    usable = HEURISTIC_TYPES if cfg.no_llm else tuple(QAType)
    weights = {t: cfg.type_weights.get(t, 0.0) for t in usable}
    if not has_neighbor:
        weights[QAType.MULTI_HOP] = 0.0
    pool = {t: w for t, w in weights.items() if w > 0}
    rng = random.Random(_stable_int(f"{cfg.seed}:{section_id}:types"))
    chosen: list[QAType] = []
    while len(chosen) < cfg.pairs_per_section and pool:
        kind = rng.choices(list(pool), weights=list(pool.values()))[0]
        chosen.append(kind)
        if len(pool) > 1:  # the last usable type may repeat; each repeat uses another fact
            pool.pop(kind)
    return chosen


def _facts_messages(section: dict) -> list[dict]:
    from synth_tasks.prompts import load_prompt, render

    return [{"role": "user", "content": render(load_prompt("markdown_qa/extract_facts"),
                                               title=section["title"], section=section["text"])}]


def facts(layout, cfg: MarkdownQAConfig, shard: int, sections_url: str, endpoint, n_shards: int) -> dict:
    """Facts for every section of a shard, then the QA jobs planned for it."""
    from synth_tasks.ledger import StageLedger
    from synth_tasks.llm.client import LLMClient
    from synth_tasks.progress import Progress
    from synth_tasks.stage import finish_stage, run_llm_calls
    from synth_tasks.text.facts import heuristic_facts

    started = time.monotonic()
    sections = layout.store.read_parquet(sections_url)
    ledger = StageLedger("facts", shard)
    client = None
    if cfg.no_llm:
        found = {s["id"]: heuristic_facts(s["text"]) for s in sections}
    else:
        client = LLMClient.for_stage(cfg, endpoint, layout, n_shards)
        answered = run_llm_calls(
            client, sections,
            lambda s: client.chat(_facts_messages(s), cfg.sampling(s["id"] + ":facts"), response_model=Facts),
            ledger, Progress(f"facts shard {shard}", len(sections), log))
        found = {s["id"]: [f.strip() for f in r.parsed.facts if f and f.strip()] for s, r in answered}

    jobs: list[dict] = []
    for s in sections:
        if s["id"] not in found:
            continue  # failed above
        section_facts = found[s["id"]]
        if not section_facts:
            ledger.filtered(s["id"], "no_facts: no facts found in the section")
            continue
        ledger.kept(s["id"])
        for k, kind in enumerate(plan_types(cfg, s["id"], s["neighbor_text"] is not None)):
            jobs.append(s | {"id": f"{s['id']}:q{k}:{kind}", "section_id": s["id"], "qa_type": str(kind),
                             "facts": section_facts, "fact_index": k % len(section_facts)})
    extra = {"usage": client.usage.as_dict(), "model": endpoint.model} if client else {"model": "heuristic"}
    return finish_stage(layout, ledger, [s["id"] for s in sections], jobs, started=started, extra_stats=extra)


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------
def qa_messages(job: dict) -> list[dict]:
    from synth_tasks.prompts import load_prompt, render

    values = {"title": job["title"], "section": job["text"],
              "facts": "\n".join(f"- {f}" for f in job["facts"])}
    if job["qa_type"] == QAType.MULTI_HOP:
        values |= {"other_title": job["neighbor_title"], "other_section": job["neighbor_text"]}
    return [{"role": "user", "content": render(load_prompt(f"markdown_qa/{job['qa_type']}"), **values)}]


def _pair_record(job: dict, pair: dict, model: str) -> dict:
    return {"id": job["id"], "source_file": job["source_file"], "doc": job["doc"], "section_id": job["section_id"],
            "section_title": job["title"], "section_text": job["text"],
            "neighbor_text": job["neighbor_text"] if job["qa_type"] == QAType.MULTI_HOP else None,
            "qa_type": job["qa_type"], "question": pair["question"].strip(), "answer": pair["answer"].strip(),
            "reasoning_steps": [s.strip() for s in pair["reasoning_steps"] if s and s.strip()],
            "evidence": pair["evidence"].strip(), "model": model}


def generate(layout, cfg: MarkdownQAConfig, shard: int, jobs_url: str, endpoint, n_shards: int) -> dict:
    """One QA pair per planned job."""
    from synth_tasks.ledger import StageLedger
    from synth_tasks.llm.client import LLMClient
    from synth_tasks.progress import Progress
    from synth_tasks.stage import finish_stage, run_llm_calls
    from synth_tasks.text.facts import heuristic_pair

    started = time.monotonic()
    jobs = layout.store.read_parquet(jobs_url)
    ledger = StageLedger("generate", shard)
    outputs: list[dict] = []
    if cfg.no_llm:
        for job in jobs:
            pair = heuristic_pair(job["qa_type"], job["facts"][job["fact_index"]], job["title"])
            if pair is None:
                ledger.filtered(job["id"], f"no_heuristic_pair: the fact gives no {job['qa_type']} question")
                continue
            ledger.kept(job["id"])
            outputs.append(_pair_record(job, pair, "heuristic"))
        return finish_stage(layout, ledger, [j["id"] for j in jobs], outputs, started=started)

    client = LLMClient.for_stage(cfg, endpoint, layout, n_shards)
    answered = run_llm_calls(
        client, jobs, lambda job: client.chat(qa_messages(job), cfg.sampling(job["id"]), response_model=QAPair),
        ledger, Progress(f"generate shard {shard}", len(jobs), log))
    for job, result in answered:
        pair = result.parsed
        if not pair.question.strip() or not pair.answer.strip():  # whitespace passes min_length
            ledger.failed(job["id"], "invalid_structured_output: blank question or answer", raw=result.text)
            continue
        ledger.kept(job["id"])
        outputs.append(_pair_record(job, pair.model_dump(), result.model))
    return finish_stage(layout, ledger, [j["id"] for j in jobs], outputs, started=started,
                        extra_stats={"usage": client.usage.as_dict(), "model": endpoint.model})


# --------------------------------------------------------------------------------------------
# ground
# --------------------------------------------------------------------------------------------
def ground(layout, cfg: MarkdownQAConfig, shard: int, pairs_url: str) -> dict:
    """Keep pairs whose evidence is found in their section (or, for multi-hop, its neighbour)."""
    from synth_tasks.ledger import StageLedger
    from synth_tasks.quality.grounding import Grounded, evidence_score
    from synth_tasks.stage import finish_stage

    started = time.monotonic()
    pairs = layout.store.read_parquet(pairs_url)
    check = Grounded(cfg.grounding_threshold)
    ledger = StageLedger("ground", shard)
    kept, dropped = [], []
    for p in pairs:
        source = p["section_text"] + ("\n\n" + p["neighbor_text"] if p["neighbor_text"] else "")
        verdict = check(p["evidence"], source)
        if not verdict.keep:
            ledger.filtered(p["id"], verdict.reason)
            dropped.append({"id": p["id"], "reason": verdict.reason, "question": p["question"],
                            "evidence": p["evidence"]})
            continue
        ledger.kept(p["id"])
        kept.append(p | {"grounding_score": evidence_score(p["evidence"], source)})
    return finish_stage(layout, ledger, [p["id"] for p in pairs], kept, started=started, dropped=dropped)


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------
_CONNECTIVES = ("First,", "Next,", "Then,", "After that,")


def render_assistant(answer: str, steps: list[str], level: CoTLevel) -> str:
    """The assistant turn at a CoT level: that many reasoning steps lead in, then the answer."""
    n = {CoTLevel.NONE: 0, CoTLevel.ONE_STEP: 1, CoTLevel.TWO_STEP: 2, CoTLevel.ALL_STEPS: len(steps)}[level]
    chosen = steps[:n]
    if not chosen:
        return answer
    lines = []
    for i, step in enumerate(chosen):
        connective = "Finally," if i == len(chosen) - 1 and i >= 2 else _CONNECTIVES[min(i, len(_CONNECTIVES) - 1)]
        lowered = step[0].lower() + step[1:] if len(step) > 1 and step[1].islower() else step
        lines.append(f"{connective} {lowered}")
    return " ".join(lines) + f"\n\n{answer}"


def export(layout, cfg: MarkdownQAConfig, grounded_urls: list[str], stage_results: list[dict], run_info: dict
           ) -> dict:
    """Drop near-duplicate questions per document, render CoT levels, split by source file and write
    the conversation files and the metadata tables."""
    from synth_tasks.export import write_split_and_summary
    from synth_tasks.ledger import LEDGER_SCHEMA, StageLedger
    from synth_tasks.quality.dedup import near_duplicate_of

    started = time.monotonic()
    pairs = sorted((p for url in grounded_urls for p in layout.store.read_parquet(url)), key=lambda p: p["id"])
    dedup = StageLedger("dedup", 0)
    unique: list[dict] = []
    by_doc: dict[str, list[dict]] = {}
    for p in pairs:
        by_doc.setdefault(p["source_file"], []).append(p)
    for doc_pairs in by_doc.values():
        for p, dup in zip(doc_pairs, near_duplicate_of([p["question"] for p in doc_pairs], cfg.duplicate_threshold)):
            if dup is None:
                dedup.kept(p["id"])
                unique.append(p)
            else:
                dedup.filtered(p["id"], f"near_duplicate_question: of {doc_pairs[dup]['id']}")
    dedup.check_complete([p["id"] for p in pairs])
    layout.store.write_parquet(layout.ledger_part("dedup", 0), dedup.rows, LEDGER_SCHEMA)
    dedup_stats = dedup.stats() | {"produced": len(unique), "seconds": round(time.monotonic() - started, 3)}

    render = StageLedger("render", 0)
    records = []
    for p in unique:
        render.kept(p["id"])
        for level in cfg.cot_levels:
            assistant = render_assistant(p["answer"], list(p["reasoning_steps"]), level)
            records.append({
                "id": f"{p['id']}:{level}", "messages": [{"role": "user", "content": p["question"]},
                                                          {"role": "assistant", "content": assistant}],
                "qa_type": p["qa_type"], "cot_level": str(level), "source_file": p["source_file"],
                "doc": p["doc"], "section_id": p["section_id"], "section_title": p["section_title"],
                "question": p["question"], "answer": p["answer"], "reasoning_steps": list(p["reasoning_steps"]),
                "evidence": p["evidence"], "grounding_score": p["grounding_score"], "model": p["model"]})
    layout.store.write_parquet(layout.ledger_part("render", 0), render.rows, LEDGER_SCHEMA)
    render_stats = render.stats() | {"produced": len(records)}

    stamp = run_info["run_timestamp"]

    def write_conversations(store, final, train, validation) -> dict:
        return {f"{name}_conversations": store.write_bytes(
                    f"{final}/{name}-synthetic-data-{stamp}.json",
                    _conversations_json([r["messages"] for r in rows]))
                for name, rows in (("train", train), ("validation", validation))}

    return write_split_and_summary(
        layout, records, group_key="source_file", train_ratio=cfg.train_ratio, seed=cfg.seed,
        stage_results=[*stage_results, {"stats": dedup_stats}, {"stats": render_stats}],
        stage_order=["prepare", "facts", "generate", "ground", "dedup", "render"],
        run_info=run_info | {"config": cfg.model_dump(mode="json")}, write_extra=write_conversations)


def _conversations_json(conversations: list[list[dict]]) -> bytes:
    import json

    return (json.dumps(conversations, ensure_ascii=False, indent=2) + "\n").encode()
