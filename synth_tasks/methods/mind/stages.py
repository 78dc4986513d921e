"""The stage functions of mind (declared in ``METHOD``, ``__init__.py``): prepare plans one job per
context and style, generate asks the LLM for each conversation (free text or JSON turns), filter
keeps the conversations that pass and drops the others with their reason."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError, create_model

from synth_tasks.methods.mind.config import MAX_JSON_TURNS, MIN_JSON_TURNS, ROLES, DialogueFormat, MindConfig
from synth_tasks.methods.mind.dialogue import Turn, format_turns, parse_turns, strip_own_label, to_messages
from synth_tasks.prompts import load_prompt, render
from synth_tasks.quality.filters import (KEEP, MinTokens, OnTopic, PromptEcho, Repetition, drop, first_drop,
                                         topic_overlap)
from synth_tasks.text.chunking import chunk_text
from synth_tasks.text.tokens import count_tokens

if TYPE_CHECKING:  # the stage runner imports pyarrow: not at DAG parse time
    from synth_tasks.stage import StageRun

INCOMPLETE_JSON = "incomplete_json"  # finish reason of a JSON answer whose whole turns were kept


def turns_model(style: str):
    """The JSON answer of json_turns: turns whose speaker is one of the style's two roles."""
    speakers = Literal[ROLES[style]]  # type: ignore[valid-type]
    turn = create_model(f"{style.title().replace('_', '')}Turn", speaker=(speakers, ...),
                        text=(str, Field(min_length=1)), __base__=BaseModel)
    return create_model("DialogueTurns", turns=(list[turn], Field(min_length=MIN_JSON_TURNS,
                                                                  max_length=MAX_JSON_TURNS)))


def salvage_turns(raw: str, model) -> list | None:
    """The complete turns of a JSON answer cut off by max_tokens, each validated like a whole answer
    (a role of the style, non-empty text), or None when fewer than MIN_JSON_TURNS are whole. The
    text form keeps a dialogue cut off the same way (flagged ``truncated``); this is its JSON twin."""
    from synth_tasks.llm.client import repair_latex_escapes  # openai and pyarrow: not at DAG parse time

    raw = repair_latex_escapes(raw)
    turn_model = model.model_fields["turns"].annotation.__args__[0]
    start = raw.find("[", raw.find('"turns"') + 1 if '"turns"' in raw else 0)
    decoder, turns, pos = json.JSONDecoder(strict=False), [], start + 1
    while start >= 0 and pos < len(raw):
        while pos < len(raw) and raw[pos] in " \t\r\n,":
            pos += 1
        try:
            obj, pos = decoder.raw_decode(raw, pos)
            turns.append(turn_model.model_validate(obj))
        except (ValueError, ValidationError):
            break
    return turns[:MAX_JSON_TURNS] if len(turns) >= MIN_JSON_TURNS else None


def dialogue_format(cfg: MindConfig, endpoint) -> DialogueFormat:
    if cfg.dialogue_format != DialogueFormat.AUTO:
        return cfg.dialogue_format
    return DialogueFormat.JSON_TURNS if endpoint.structured_output == "json_object_schema" else DialogueFormat.TEXT


def build_messages(style: str, context: str) -> list[dict]:
    return [{"role": "user", "content": render(load_prompt(f"mind/{style}"), context=context)}]


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def prepare(run: StageRun[MindConfig], files: list[str]) -> None:
    """Read the partition's input files, chunk every text and plan one job per context and style."""
    cfg = run.cfg
    records = run.read_inputs(files, cfg.text_column, cfg.id_column)
    n_chunks = 0
    for rec in records:
        if cfg.max_chunks is not None and n_chunks >= cfg.max_chunks:
            run.filtered(rec.id, f"over_max_chunks: max_chunks={cfg.max_chunks} reached")
            continue
        chunks = chunk_text(rec.text, cfg.chunk_tokens, min_tokens=cfg.chunk_tokens // 4)
        if not chunks:
            run.filtered(rec.id, "empty_text: no text after stripping whitespace")
            continue
        if cfg.max_chunks is not None:
            chunks = chunks[: cfg.max_chunks - n_chunks]
        n_chunks += len(chunks)
        run.kept(rec.id, *({"id": f"{rec.id}:c{ch.index}:{style}", "source_id": rec.id,
                            "chunk_id": f"{rec.id}:c{ch.index}", "style": str(style), "context": ch.text,
                            "context_tokens": ch.n_tokens, "source_file": rec.source, "source_row": rec.row}
                           for ch in chunks for style in cfg.styles))
    run.counts["contexts"] = n_chunks


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------
def generate(run: StageRun[MindConfig], jobs: list[dict]) -> None:
    """Send every job of one shard to the LLM, as free text or as JSON turns (``dialogue_format``);
    failures are recorded with their error and raw answer."""
    from synth_tasks.llm.client import LLMError  # openai and pyarrow: not at DAG parse time

    cfg = run.cfg
    form = dialogue_format(cfg, run.endpoint)
    models = {style: turns_model(style) for style in cfg.styles} if form == DialogueFormat.JSON_TURNS else {}

    def rendered(turns) -> str:
        return format_turns([Turn(t.speaker, strip_own_label(t.speaker, " ".join(t.text.split()))) for t in turns])

    def answer(text: str, result) -> dict:
        return {"raw_text": text, "model": result.model, "finish_reason": result.finish_reason,
                "cached": result.cached, "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens}

    async def ask(job: dict) -> dict:
        messages, sampling = build_messages(job["style"], job["context"]), cfg.sampling(job["id"])
        if form == DialogueFormat.TEXT:
            result = await run.llm.chat(messages, sampling)
            return answer(result.text, result)
        model = models[job["style"]]
        try:
            # A cut-off answer with enough whole turns is kept as it is; only one without is re-asked.
            result = await run.llm.chat(messages, sampling, response_model=model,
                                        repair_cut_off=lambda text: salvage_turns(text, model) is None)
            return answer(rendered(result.parsed.turns), result)
        except LLMError as exc:  # JSON cut off (max_tokens): keep its whole turns, as the text form would
            turns = salvage_turns(exc.raw or "", model) if exc.kind == "invalid_structured_output" else None
            if turns is None:
                raise
            run.counts["json_turns_salvaged"] += 1
            return answer(rendered(turns), exc.result) | {"finish_reason": INCOMPLETE_JSON}

    for job, generated in run.llm_calls(jobs, ask):
        run.kept(job["id"], job | generated | {"dialogue_format": str(form)})
    run.info["dialogue_format"] = str(form)


# --------------------------------------------------------------------------------------------
# filter
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeakerTurns:
    """A MIND conversation needs turns by at least two speakers."""

    min_turns: int = 2
    min_speakers: int = 2
    name: str = "missing_speaker_turns"

    def __call__(self, text: str, prompt: str = ""):
        turns = parse_turns(text)
        speakers = {t.speaker for t in turns}
        if len(turns) < self.min_turns or len(speakers) < self.min_speakers:
            return drop(f"{self.name}: {len(turns)} turns by {len(speakers)} speakers")
        return KEEP


def conversation_filters(cfg: MindConfig) -> list:
    return [MinTokens(cfg.min_conversation_tokens), SpeakerTurns(), Repetition(), PromptEcho()]


def filter_conversations(run: StageRun[MindConfig], rows: list[dict]) -> None:
    """Turn raw outputs into MIND records; drop short, degenerate and off-topic ones with their
    reason (off_topic: the conversation uses too few of its context's key terms)."""
    filters = conversation_filters(run.cfg)
    on_topic = OnTopic(run.cfg.min_topic_overlap)
    for row in rows:
        prompt = build_messages(row["style"], row["context"])[0]["content"]
        verdict = first_drop(filters, row["raw_text"], prompt)
        if verdict.keep:
            verdict = on_topic(row["raw_text"], row["context"])
        if not verdict.keep:
            run.filtered(row["id"], verdict.reason, text=row["raw_text"])
            continue
        turns = parse_turns(row["raw_text"])
        text = format_turns(turns)
        run.kept(row["id"], {
            "id": row["id"], "text": text, "style": row["style"], "source_id": row["source_id"],
            "chunk_id": row["chunk_id"], "model": row["model"], "messages": to_messages(turns),
            "n_tokens": count_tokens(text), "n_turns": len(turns),
            "topic_overlap": round(topic_overlap(text, row["context"]), 3),
            "truncated": row["finish_reason"] in ("length", INCOMPLETE_JSON), "source_file": row["source_file"],
        })


# --------------------------------------------------------------------------------------------
# the shard plan: seconds of work per record of a shard (Stage(cost=...) in METHOD)
# --------------------------------------------------------------------------------------------
# filter parses a conversation, counts its tokens and matches it against its context: 0.42 ms a
# record over 20,006 short (two-turn) answers of the instant endpoint (bench/bench_dag.py, 2 cores
# at load 6); 1 ms leaves room for full-length conversations. Undeclared it counted as
# DEFAULT_TEXT_SECONDS (10 ms), which outweighed generate itself against a fast endpoint and cut
# 20,006 jobs into 9 tasks a stage instead of 3.
FILTER_SECONDS = 0.001
