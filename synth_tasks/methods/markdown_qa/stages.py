"""The stage functions of markdown_qa (declared in ``METHOD``, ``__init__.py``), the structured answers
they ask the LLM for, and the export's conversation files."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from synth_tasks.draw import distinct_by_weight
from synth_tasks.method import llm_seconds
from synth_tasks.methods.markdown_qa.config import HEURISTIC_TYPES, CoTLevel, MarkdownQAConfig, QAType
from synth_tasks.methods.markdown_qa.heuristics import heuristic_facts, heuristic_pair
from synth_tasks.prompts import load_prompt, render
from synth_tasks.text.markdown import split_sections

if TYPE_CHECKING:  # the stage runner and the export import pyarrow: not at DAG parse time
    from synth_tasks.export import ExportContext
    from synth_tasks.stage import StageRun

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------

def prepare(run: StageRun[MarkdownQAConfig], files: list[str]) -> None:
    """Split every markdown file into sections by headings (code blocks and tables kept whole); a
    binary or non-UTF-8 file fails alone, an empty one is filtered."""
    from synth_tasks.inputs import InputError, read_text_file  # pyarrow and fsspec: not at DAG parse time

    cfg = run.cfg
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
    # the last usable type may repeat; each repeat uses another fact
    return distinct_by_weight(weights, cfg.pairs_per_section, f"{cfg.seed}:{section_id}:types")


def facts_messages(section: dict) -> list[dict]:
    return [{"role": "user", "content": render(load_prompt("markdown_qa/extract_facts"),
                                               title=section["title"], section=section["text"])}]


def facts(run: StageRun[MarkdownQAConfig], sections: list[dict]) -> None:
    """Extract the facts of every section (LLM, or heuristic in no-LLM mode) and plan its QA jobs,
    with types drawn by `type_weights`; a section without facts is filtered."""
    cfg = run.cfg
    if cfg.no_llm:
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


def generate(run: StageRun[MarkdownQAConfig], jobs: list[dict]) -> None:
    """Write one QA pair per planned job: question, answer, reasoning steps and verbatim quotes (LLM,
    structured; or heuristic in no-LLM mode)."""
    cfg = run.cfg
    if cfg.no_llm:
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
def ground(run: StageRun[MarkdownQAConfig], pairs: list[dict]) -> None:
    """Keep the pairs each of whose quotes is found in their section (or, for multi-hop, its
    neighbour); the others are filtered as ungrounded (or short_quote, no_evidence)."""
    from synth_tasks.quality.grounding import Grounded, quotes_score  # rapidfuzz: not at DAG parse time

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
def dedup(run: StageRun[MarkdownQAConfig], pairs: list[dict]) -> None:
    """Drop near-duplicate questions within each source document, across all shards; the first of
    a group (by id) is kept."""
    from synth_tasks.quality.dedup import near_duplicate_of  # rapidfuzz and datasketch: not at DAG parse time

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


def render_pairs(run: StageRun[MarkdownQAConfig], pairs: list[dict]) -> None:
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
    return (json.dumps(conversations, ensure_ascii=False, indent=2) + "\n").encode()


def write_conversations(ctx: ExportContext, train: list[dict], validation: list[dict]) -> dict[str, str]:
    """``{train,validation}-synthetic-data-{run timestamp}.json``: JSON lists of [user, assistant]."""
    return {f"{name}_conversations": ctx.store.write_bytes(
                f"{ctx.final_dir}/{name}-synthetic-data-{ctx.run_timestamp}.json",
                conversations_json([r["messages"] for r in rows]))
            for name, rows in (("train", train), ("validation", validation))}


# --------------------------------------------------------------------------------------------
# the shard plan: seconds of work per record of a shard (Stage(cost=...) in METHOD)
# --------------------------------------------------------------------------------------------
# Seconds of work per record of a shard, for the shard plan. The text figures are no-LLM runs of
# the shipped docs repeated to 320 documents (1,120 sections, 3,360 pairs, 13,356 conversations) on
# 2 loaded cores, per section for the stages over prepare's shards and per pair for render.
FACTS_HEURISTIC_SECONDS = 0.0003
GENERATE_HEURISTIC_SECONDS = 0.0002
GROUND_SECONDS_PER_PAIR = 0.00016
RENDER_SECONDS_PER_LEVEL = 0.000015


def facts_cost(cfg: MarkdownQAConfig) -> float:
    return FACTS_HEURISTIC_SECONDS if cfg.no_llm else llm_seconds(cfg, requests=1)


def generate_cost(cfg: MarkdownQAConfig) -> float:
    return GENERATE_HEURISTIC_SECONDS if cfg.no_llm else llm_seconds(cfg, requests=cfg.pairs_per_section)


def ground_cost(cfg: MarkdownQAConfig) -> float:
    return GROUND_SECONDS_PER_PAIR * cfg.pairs_per_section


def render_cost(cfg: MarkdownQAConfig) -> float:
    return RENDER_SECONDS_PER_LEVEL * len(cfg.cot_levels)
