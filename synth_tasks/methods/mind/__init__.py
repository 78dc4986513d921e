"""MIND: math informed synthetic dialogues (Akter et al., 2024, arXiv 2410.12881).

Raw math text is cut into ~500-token contexts; each context is rewritten by the LLM into a
multi-turn conversation in one of seven styles, with the instruction to add nothing that is not in
the context. Short and degenerate conversations are dropped with their reason.

Stages (each ``(inputs, config) -> (output URL, stats)``):
    prepare   input files -> generation jobs (one per context x style), in shards
    generate  jobs shard  -> raw model outputs
    filter    outputs     -> MIND conversations (kept) and dropped ones with reasons
    export    all shards  -> train/validation JSONL + Parquet, grouped by source document, and
                             the run summary

Heavy imports (pyarrow, openai) happen inside the stage functions: the DAG file imports this
module at parse time for its config.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum

from pydantic import Field

from synth_tasks.config import LLMParams, SamplingParams

log = logging.getLogger(__name__)

DAG_ID = "mind"


class Style(StrEnum):
    TWO_STUDENTS = "two_students"
    TEACHER_STUDENT = "teacher_student"
    TWO_PROFESSORS = "two_professors"
    DEBATE = "debate"
    PROBLEM_SOLVING = "problem_solving"
    LAYMAN_KNOWALL = "layman_knowall"
    INTERVIEW = "interview"


class MindConfig(LLMParams):
    input_path: str = Field(
        "include/sample_data/mind/prob140_sample.jsonl",
        description="JSONL/Parquet file, directory or glob of raw math text. Relative paths are under "
        "the project root; {ds} is replaced by the run's data-interval date.")
    text_column: str = Field("text", description="Column holding the raw text.")
    id_column: str | None = Field("id", description="Column holding a stable document id (optional).")
    chunk_tokens: int = Field(500, ge=50, le=8192, description="Context size in tokens (the paper's 500).")
    styles: list[Style] = Field(list(Style), min_length=1, description="Conversation styles to generate.")
    max_chunks: int | None = Field(None, ge=1, description="Use only the first N contexts (smoke runs).")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="Sampling temperature (paper: 1.0).")
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="Nucleus sampling (paper: 0.9).")
    max_tokens: int = Field(1024, ge=16, le=32768, description="Max tokens per conversation.")
    min_conversation_tokens: int = Field(50, ge=0, description="Drop conversations shorter than this.")
    shard_size: int = Field(64, ge=1, description="Generation jobs per mapped task.")
    train_ratio: float = Field(0.9, gt=0.0, le=1.0, description="Share of source documents in train.")
    seed: int = Field(0, description="Seeds sampling and the split; part of every cache key.")

    def sampling(self, job_id: str) -> SamplingParams:
        return SamplingParams.seeded(self.seed, job_id, temperature=self.temperature, top_p=self.top_p,
                                     max_tokens=self.max_tokens)


def build_messages(style: str, context: str) -> list[dict]:
    from synth_tasks.prompts import load_prompt, render

    return [{"role": "user", "content": render(load_prompt(f"mind/{style}"), context=context)}]


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def prepare(layout, cfg: MindConfig, input_pattern: str) -> dict:
    """Read the partition's inputs, chunk them and write generation jobs in shards.

    Returns {"shards": [job shard URLs], "stats": ...}. A re-run starts the partition afresh."""
    from synth_tasks.inputs import InputError, list_input_files, read_inputs
    from synth_tasks.ledger import LEDGER_SCHEMA, StageLedger
    from synth_tasks.stage import write_shards
    from synth_tasks.text.chunking import chunk_text

    started = time.monotonic()
    layout.store.delete_tree(layout.base)
    ledger = StageLedger("prepare", 0)
    jobs: list[dict] = []
    n_chunks = 0
    records, input_ids = read_inputs(layout.store, list_input_files(layout.store, input_pattern), ledger,
                                     cfg.text_column, cfg.id_column)
    for rec in records:
        input_ids.append(rec.id)
        if cfg.max_chunks is not None and n_chunks >= cfg.max_chunks:
            ledger.filtered(rec.id, f"over_max_chunks: max_chunks={cfg.max_chunks} reached")
            continue
        chunks = chunk_text(rec.text, cfg.chunk_tokens, min_tokens=cfg.chunk_tokens // 4)
        if not chunks:
            ledger.filtered(rec.id, "empty_text: no text after stripping whitespace")
            continue
        if cfg.max_chunks is not None:
            chunks = chunks[: cfg.max_chunks - n_chunks]
        n_chunks += len(chunks)
        ledger.kept(rec.id)
        for ch in chunks:
            chunk_id = f"{rec.id}:c{ch.index}"
            for style in cfg.styles:
                jobs.append({"id": f"{chunk_id}:{style}", "source_id": rec.id, "chunk_id": chunk_id,
                             "style": str(style), "context": ch.text, "context_tokens": ch.n_tokens,
                             "source_file": rec.source, "source_row": rec.row})
    ledger.check_complete(input_ids)
    layout.store.write_parquet(layout.ledger_part("prepare", 0), ledger.rows, LEDGER_SCHEMA)
    if not jobs:
        problems = [r["error"] or r["reason"] for r in ledger.rows][:5]
        raise InputError(f"no usable input records in {input_pattern!r}: {problems}")
    shards = write_shards(layout, "jobs", jobs, cfg.shard_size)
    stats = ledger.stats() | {"produced": len(jobs), "chunks": n_chunks,
                              "seconds": round(time.monotonic() - started, 3), "started_at": time.time()}
    log.info("prepare: %d input records -> %d contexts -> %d jobs in %d shards",
             len(input_ids), n_chunks, len(jobs), len(shards))
    return {"shards": shards, "stats": stats}


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------
def generate(layout, cfg: MindConfig, shard: int, jobs_url: str, endpoint, n_shards: int) -> dict:
    """Send every job of one shard to the LLM; failures are recorded with their error."""
    from synth_tasks.ledger import StageLedger
    from synth_tasks.llm.client import LLMClient
    from synth_tasks.progress import Progress
    from synth_tasks.stage import finish_stage, run_llm_calls

    started = time.monotonic()
    jobs = layout.store.read_parquet(jobs_url)
    client = LLMClient.for_stage(cfg, endpoint, layout, n_shards)
    ledger = StageLedger("generate", shard)
    answered = run_llm_calls(
        client, jobs, lambda job: client.chat(build_messages(job["style"], job["context"]), cfg.sampling(job["id"])),
        ledger, Progress(f"generate shard {shard}", len(jobs), log))
    outputs = []
    for job, result in answered:
        ledger.kept(job["id"])
        outputs.append(job | {"raw_text": result.text, "model": result.model, "finish_reason": result.finish_reason,
                              "cached": result.cached, "prompt_tokens": result.prompt_tokens,
                              "completion_tokens": result.completion_tokens})
    return finish_stage(layout, ledger, [j["id"] for j in jobs], outputs, started=started,
                        extra_stats={"usage": client.usage.as_dict(), "model": endpoint.model})


# --------------------------------------------------------------------------------------------
# filter
# --------------------------------------------------------------------------------------------
def conversation_filters(cfg: MindConfig) -> list:
    from synth_tasks.quality.filters import MinTokens, PromptEcho, Repetition, SpeakerTurns

    return [MinTokens(cfg.min_conversation_tokens), SpeakerTurns(), Repetition(), PromptEcho()]


def filter_shard(layout, cfg: MindConfig, shard: int, generations_url: str) -> dict:
    """Turn raw outputs into MIND records; drop short and degenerate ones with their reason."""
    from synth_tasks.ledger import StageLedger
    from synth_tasks.quality.filters import first_drop
    from synth_tasks.stage import finish_stage
    from synth_tasks.text.dialogue import format_turns, parse_turns, to_messages
    from synth_tasks.text.tokens import count_tokens

    started = time.monotonic()
    rows = layout.store.read_parquet(generations_url)
    filters = conversation_filters(cfg)
    ledger = StageLedger("filter", shard)
    kept, dropped = [], []
    for row in rows:
        prompt = build_messages(row["style"], row["context"])[0]["content"]
        verdict = first_drop(filters, row["raw_text"], prompt)
        if not verdict.keep:
            ledger.filtered(row["id"], verdict.reason)
            dropped.append({"id": row["id"], "reason": verdict.reason, "text": row["raw_text"]})
            continue
        turns = parse_turns(row["raw_text"])
        text = format_turns(turns)
        ledger.kept(row["id"])
        kept.append({
            "id": row["id"], "text": text, "style": row["style"], "source_id": row["source_id"],
            "chunk_id": row["chunk_id"], "model": row["model"], "messages": to_messages(turns),
            "n_tokens": count_tokens(text), "n_turns": len(turns),
            "truncated": row["finish_reason"] == "length", "source_file": row["source_file"],
        })
    return finish_stage(layout, ledger, [r["id"] for r in rows], kept, started=started, dropped=dropped)


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------
def export(layout, cfg: MindConfig, conversation_urls: list[str], stage_results: list[dict],
           run_info: dict) -> dict:
    """Grouped train/validation split of every kept conversation, and the run summary."""
    from synth_tasks.export import write_split_and_summary

    records = [r for url in conversation_urls for r in layout.store.read_parquet(url)]
    return write_split_and_summary(
        layout, records, group_key="source_id", train_ratio=cfg.train_ratio, seed=cfg.seed,
        stage_results=stage_results, stage_order=["prepare", "generate", "filter"],
        run_info=run_info | {"config": cfg.model_dump(mode="json")})
