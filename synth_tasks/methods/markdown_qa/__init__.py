"""Markdown to QA: question-answer pairs with reasoning from a folder of markdown documents, rendered
at four chain-of-thought levels, for fine-tuning.

Stages (declared in ``METHOD`` at the end):
    prepare   .md files     -> sections (split on headings; code blocks and tables whole)
    facts     sections      -> facts per section (LLM, structured; or heuristic) and the planned
                               QA jobs (types drawn by the configured weights)         (mapped, LLM)
    generate  jobs          -> QA pairs: question, answer, reasoning steps, quotes     (mapped, LLM)
    ground    pairs         -> pairs each of whose quotes is in their section (fuzzy match) (mapped)
    dedup     all pairs     -> near-duplicate questions removed per document            (one task)
    render    unique pairs  -> every pair at the chosen CoT levels                      (mapped)
    export    (core)        -> train/validation grouped by source file, the conversation files

No-LLM mode uses heuristic facts (``heuristics``) and the factual-recall, true/false and
fill-in-the-blank types only; it is deterministic (same input, byte-identical output).

Heavy imports happen inside the stage functions: the DAG file imports this module at parse time for
its declaration.
"""

from __future__ import annotations

import hashlib
import logging
import random
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from synth_tasks.config import LLMParams, MethodConfig, SamplingParams, override, param
from synth_tasks.method import Export, Method, Stage

log = logging.getLogger(__name__)


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
    input_path: str = override(
        MethodConfig, "input_path", "include/sample_data/markdown_qa/docs",
        "Folder, file or glob of .md documents, or an s3:// URL. Relative paths are under the project root "
        "(include/... is the shipped data). {ds} is replaced by the run's data-interval date.")
    shard_size: int = override(MethodConfig, "shard_size", 16)
    train_ratio: float = override(MethodConfig, "train_ratio", 0.8)
    no_llm: bool = param(False, "Heuristic facts and fact-recall, true/false and fill-in-the-blank pairs "
                         "only: deterministic, needs no model.", title="No LLM (heuristic mode)")
    section_max_tokens: int = param(1000, "Longer sections are cut by tokens, on block boundaries.",
                                    title="Max section tokens", ge=100, le=16000)
    section_min_tokens: int = param(50, "Shorter sections are merged forward.", title="Min section tokens",
                                    ge=0, le=2000)
    pairs_per_section: int = param(3, "QA pairs planned per section.", title="Pairs per section", ge=1, le=50)
    type_weights: dict[QAType, float] = param({t: 1.0 for t in QAType}, "Relative weight of each QA type "
                                              "(0 turns a type off).", title="QA type weights")
    cot_levels: list[CoTLevel] = param(list(CoTLevel), "Chain-of-thought levels to render every pair at.",
                                       title="CoT levels", min_length=1)
    temperature: float = param(0.7, "Sampling temperature.", section="Generation", title="Temperature",
                               ge=0.0, le=2.0)
    max_tokens: int = param(512, "Max tokens per LLM answer.", section="Generation", title="Max tokens",
                            ge=16, le=16384)
    grounding_threshold: float = param(85.0, "Min fuzzy match (0-100) of each quote in its section.",
                                       section="Quality", title="Grounding threshold", ge=0, le=100)
    min_quote_words: int = param(3, "Min words of each quote: a one- or two-word quote matches almost any "
                                 "section and grounds nothing.", section="Quality", title="Min quote words", ge=1)
    duplicate_threshold: float = param(90.0, "Questions of one document at or above this similarity (0-100) "
                                       "are near-duplicates.", section="Quality", title="Duplicate threshold",
                                       ge=0, le=100)

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


# Bounded strings: maxLength reaches the grammar of constrained decoders (llama.cpp), so a model that
# rambles is made to close its string instead of running into max_tokens mid-JSON (the quality model
# wrote a 900-character reasoning step and was cut off inside the next field).
Fact = Annotated[str, Field(max_length=400)]
Step = Annotated[str, Field(min_length=1, max_length=300)]
Quote = Annotated[str, Field(min_length=1, max_length=400)]


class Facts(BaseModel):
    # minItems reaches the grammar of constrained decoders (llama.cpp), so a model cannot answer
    # with an empty list; a section with nothing to say still ends as no_facts in the ledger.
    facts: list[Fact] = Field(min_length=1, max_length=20)


class QAPair(BaseModel):
    # Non-empty by schema: constrained decoders then cannot emit an empty question or answer, and
    # other backends get a validation error and one repair attempt.
    question: str = Field(min_length=1, max_length=400)
    answer: str = Field(min_length=1, max_length=800)
    reasoning_steps: list[Step] = Field(min_length=1, max_length=6)
    # Verbatim passages of the section, each its own item, so each can be checked: a model asked for
    # one "evidence" field wrapped its quotes in commentary, and the whole field matched nothing.
    quotes: list[Quote] = Field(min_length=1, max_length=4)


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------

def prepare(run, files: list[str]) -> None:
    """Split every markdown file into sections by headings (code blocks and tables kept whole); a
    binary or non-UTF-8 file fails alone, an empty one is filtered."""
    from synth_tasks.inputs import InputError, read_text_file
    from synth_tasks.text.markdown import split_sections

    cfg: MarkdownQAConfig = run.cfg
    n_sections = 0
    for url in files:
        try:
            text = read_text_file(run.input_store, url, "markdown")
        except InputError as exc:
            log.error("input file failed: %s", exc)
            run.failed(url, f"bad_file: {exc}")
            continue
        if not text.strip():
            run.filtered(url, "empty_file: no text")
            continue
        name = url.rsplit("/", 1)[-1]
        doc_sections = split_sections(text, max_tokens=cfg.section_max_tokens, min_tokens=cfg.section_min_tokens,
                                      default_title=name.removesuffix(".md"))
        rows = [{"id": f"{url}#s{s.index:04d}", "source_file": url, "doc": name, "title": s.title,
                 "heading_path": list(s.path), "text": s.text, "n_tokens": s.n_tokens, "section_index": s.index}
                for s in doc_sections]
        # multi-hop questions pair a section with its neighbour in the same document
        for i, row in enumerate(rows):
            other = rows[i + 1] if i + 1 < len(rows) else (rows[i - 1] if i else None)
            row["neighbor_title"] = other["title"] if other else None
            row["neighbor_text"] = other["text"] if other else None
        run.kept(url, *rows)
        n_sections += len(rows)
    run.counts["sections"] = n_sections
    log.info("prepare: %d files -> %d sections", len(files), n_sections)


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


def facts_messages(section: dict) -> list[dict]:
    from synth_tasks.prompts import load_prompt, render

    return [{"role": "user", "content": render(load_prompt("markdown_qa/extract_facts"),
                                               title=section["title"], section=section["text"])}]


def facts(run, sections: list[dict]) -> None:
    """Extract the facts of every section (LLM, or heuristic in no-LLM mode) and plan its QA jobs,
    with types drawn by `type_weights`; a section without facts is filtered."""
    cfg: MarkdownQAConfig = run.cfg
    if cfg.no_llm:
        from synth_tasks.methods.markdown_qa.heuristics import heuristic_facts

        found = {s["id"]: heuristic_facts(s["text"]) for s in sections}
    else:
        answered = run.llm_calls(sections, lambda s: run.llm.chat(
            facts_messages(s), cfg.sampling(s["id"] + ":facts"), response_model=Facts))
        found = {s["id"]: [f.strip() for f in r.parsed.facts if f and f.strip()] for s, r in answered}

    for s in sections:
        if s["id"] not in found:
            continue  # its call failed: recorded by llm_calls
        section_facts = found[s["id"]]
        if not section_facts:
            run.filtered(s["id"], "no_facts: no facts found in the section")
            continue
        run.kept(s["id"], *(s | {"id": f"{s['id']}:q{k}:{kind}", "section_id": s["id"], "qa_type": str(kind),
                                 "facts": section_facts, "fact_index": k % len(section_facts)}
                            for k, kind in enumerate(plan_types(cfg, s["id"], s["neighbor_text"] is not None))))


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
            "quotes": [q.strip() for q in pair["quotes"] if q and q.strip()], "model": model}


def generate(run, jobs: list[dict]) -> None:
    """Write one QA pair per planned job: question, answer, reasoning steps and verbatim quotes (LLM,
    structured; or heuristic in no-LLM mode)."""
    cfg: MarkdownQAConfig = run.cfg
    if cfg.no_llm:
        from synth_tasks.methods.markdown_qa.heuristics import heuristic_pair

        for job in jobs:
            pair = heuristic_pair(job["qa_type"], job["facts"][job["fact_index"]], job["title"])
            if pair is None:
                run.filtered(job["id"], f"no_heuristic_pair: the fact gives no {job['qa_type']} question")
            else:
                run.kept(job["id"], _pair_record(job, pair, "heuristic"))
        return

    answered = run.llm_calls(jobs, lambda job: run.llm.chat(qa_messages(job), cfg.sampling(job["id"]),
                                                            response_model=QAPair))
    for job, result in answered:
        pair = result.parsed
        if not pair.question.strip() or not pair.answer.strip():  # whitespace passes min_length
            run.failed(job["id"], "invalid_structured_output: blank question or answer", raw=result.text)
        else:
            run.kept(job["id"], _pair_record(job, pair.model_dump(), result.model))


# --------------------------------------------------------------------------------------------
# ground
# --------------------------------------------------------------------------------------------
def ground(run, pairs: list[dict]) -> None:
    """Keep the pairs each of whose quotes is found in their section (or, for multi-hop, its
    neighbour); the others are filtered as ungrounded (or short_quote, no_evidence)."""
    from synth_tasks.quality.grounding import Grounded, quotes_score

    check = Grounded(run.cfg.grounding_threshold, min_words=run.cfg.min_quote_words)
    for p in pairs:
        source = p["section_text"] + ("\n\n" + p["neighbor_text"] if p["neighbor_text"] else "")
        quotes = list(p["quotes"])
        verdict = check(quotes, source)
        if not verdict.keep:
            run.filtered(p["id"], verdict.reason, question=p["question"], quotes=quotes)
        else:
            run.kept(p["id"], p | {"grounding_score": quotes_score(quotes, source)})


# --------------------------------------------------------------------------------------------
# dedup (one task over all shards: duplicates are looked for within a whole document)
# --------------------------------------------------------------------------------------------
def dedup(run, pairs: list[dict]) -> None:
    """Drop near-duplicate questions within each source document, across all shards; the first of
    a group (by id) is kept."""
    from synth_tasks.quality.dedup import near_duplicate_of

    by_doc: dict[str, list[dict]] = {}
    for p in sorted(pairs, key=lambda p: p["id"]):
        by_doc.setdefault(p["source_file"], []).append(p)
    for doc_pairs in by_doc.values():
        for p, dup in zip(doc_pairs, near_duplicate_of([p["question"] for p in doc_pairs],
                                                       run.cfg.duplicate_threshold)):
            if dup is None:
                run.kept(p["id"], p)
            else:
                run.filtered(p["id"], f"near_duplicate_question: of {doc_pairs[dup]['id']}", question=p["question"])


# --------------------------------------------------------------------------------------------
# render
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


def render_pairs(run, pairs: list[dict]) -> None:
    """Render every pair as a user/assistant conversation at each chosen chain-of-thought level (none,
    one step, two steps, all steps): one record per pair and level."""
    for p in pairs:
        steps = list(p["reasoning_steps"])
        run.kept(p["id"], *({
            "id": f"{p['id']}:{level}", "messages": [{"role": "user", "content": p["question"]},
                                                      {"role": "assistant",
                                                       "content": render_assistant(p["answer"], steps, level)}],
            "qa_type": p["qa_type"], "cot_level": str(level), "source_file": p["source_file"],
            "doc": p["doc"], "section_id": p["section_id"], "section_title": p["section_title"],
            "question": p["question"], "answer": p["answer"], "reasoning_steps": steps,
            "quotes": list(p["quotes"]), "grounding_score": p["grounding_score"], "model": p["model"]}
            for level in run.cfg.cot_levels))


# --------------------------------------------------------------------------------------------
# export: the conversation files beside the core's JSONL and Parquet
# --------------------------------------------------------------------------------------------
def conversations_json(conversations: list[list[dict]]) -> bytes:
    import json

    return (json.dumps(conversations, ensure_ascii=False, indent=2) + "\n").encode()


def write_conversations(ctx, train: list[dict], validation: list[dict]) -> dict[str, str]:
    """``{train,validation}-synthetic-data-{run timestamp}.json``: JSON lists of [user, assistant]."""
    return {f"{name}_conversations": ctx.store.write_bytes(
                f"{ctx.final_dir}/{name}-synthetic-data-{ctx.run_timestamp}.json",
                conversations_json([r["messages"] for r in rows]))
            for name, rows in (("train", train), ("validation", validation))}


METHOD = Method(
    dag_id="markdown_qa",
    config=MarkdownQAConfig,
    input_files=("**/*.md",),
    stages=(
        Stage("prepare", prepare, mapped=False),
        Stage("facts", facts, llm="llm_conn_id"),
        Stage("generate", generate, llm="llm_conn_id"),
        Stage("ground", ground),
        Stage("dedup", dedup, mapped=False),
        Stage("render", render_pairs),
    ),
    export=Export(group_key="source_file", extra_files=write_conversations, text_field="messages",
                  license=("mit", "apache-2.0"), task_categories=("question-answering", "text-generation"),
                  input_source="the shipped sample, three chapters of *The Rust Programming Language*, MIT / "
                  "Apache-2.0 (include/sample_data/markdown_qa/ATTRIBUTION.md)."),
    tags=("qa", "fine-tuning"),
)
