"""MIND: math informed synthetic dialogues (Akter et al., 2024, arXiv 2410.12881).

Raw math text is cut into ~500-token contexts; each context is rewritten by the LLM into a
multi-turn conversation in one of seven styles, with the instruction to add nothing that is not in
the context. Short and degenerate conversations are dropped with their reason.

Stages (declared in ``METHOD`` at the end):
    prepare   input files -> generation jobs (one per context x style)
    generate  jobs        -> raw model outputs                          (mapped, LLM)
    filter    outputs     -> MIND conversations, or dropped with reasons (mapped)
    export    (core)      -> train/validation grouped by source document, and the run summary

Heavy imports (pyarrow, openai) happen inside the stage functions: the DAG file imports this
module at parse time for its declaration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from synth_tasks.config import LLMParams, MethodConfig, SamplingParams, override, param
from synth_tasks.method import Export, Method, Stage

log = logging.getLogger(__name__)


class Style(StrEnum):
    TWO_STUDENTS = "two_students"
    TEACHER_STUDENT = "teacher_student"
    TWO_PROFESSORS = "two_professors"
    DEBATE = "debate"
    PROBLEM_SOLVING = "problem_solving"
    LAYMAN_KNOWALL = "layman_knowall"
    INTERVIEW = "interview"


# The two speakers each style's prompt names ("Write every turn ... as "Teacher: ..." or "Student: ...").
ROLES: dict[str, tuple[str, str]] = {
    Style.TWO_STUDENTS: ("Student 1", "Student 2"),
    Style.TEACHER_STUDENT: ("Teacher", "Student"),
    Style.TWO_PROFESSORS: ("Professor A", "Professor B"),
    Style.DEBATE: ("Student 1", "Student 2"),
    Style.PROBLEM_SOLVING: ("Person A", "Person B"),
    Style.LAYMAN_KNOWALL: ("Layman", "Knowall"),
    Style.INTERVIEW: ("Interviewer", "Expert"),
}
MIN_JSON_TURNS, MAX_JSON_TURNS = 4, 16
INCOMPLETE_JSON = "incomplete_json"  # finish reason of a JSON answer whose whole turns were kept


class DialogueFormat(StrEnum):
    AUTO = "auto"  # json_turns on the embedded llama.cpp server, text elsewhere
    TEXT = "text"  # the paper's free text, parsed for "Speaker: ..." turns
    JSON_TURNS = "json_turns"  # a JSON list of turns whose speaker is one of the style's two roles


class MindConfig(LLMParams):
    input_path: str = override(
        MethodConfig, "input_path", "include/sample_data/mind/prob140_sample.jsonl",
        "JSONL/Parquet file, folder or glob of raw math text, or an s3:// URL. Relative paths are under the "
        "project root (include/... is the shipped data). {ds} is replaced by the run's data-interval date.")
    text_column: str = param("text", "Column holding the raw math text.", section="Input", title="Text column")
    max_chunks: int | None = param(None, "Use only the first N contexts (smoke runs).", section="Input",
                                   title="Max contexts", ge=1)
    styles: list[Style] = param(list(Style), "Conversation styles to generate, one conversation per context "
                                "and style.", title="Styles", min_length=1)
    chunk_tokens: int = param(500, "Context size in tokens (the paper's 500).", title="Context tokens",
                              ge=50, le=8192)
    dialogue_format: DialogueFormat = param(
        DialogueFormat.AUTO, "How the model writes the dialogue: 'text' (free text parsed for 'Speaker: ...' "
        f"turns, as in the paper) or 'json_turns' (JSON turns, at least {MIN_JSON_TURNS}, whose speaker must be "
        "one of the style's two roles, rendered back to 'Speaker: text'). 'auto': json_turns on the embedded "
        "llama.cpp server (a small model rarely keeps to the text form), text elsewhere. The filters are the "
        "same for both.", title="Dialogue format")
    temperature: float = param(1.0, "Sampling temperature (paper: 1.0).", section="Generation",
                               title="Temperature", ge=0.0, le=2.0)
    top_p: float = param(0.9, "Nucleus sampling (paper: 0.9).", section="Generation", title="Top p", gt=0.0, le=1.0)
    max_tokens: int = param(1024, "Max tokens per conversation.", section="Generation", title="Max tokens",
                            ge=16, le=32768)
    min_conversation_tokens: int = param(50, "Drop conversations shorter than this.", section="Quality",
                                         title="Min conversation tokens", ge=0)
    min_topic_overlap: float = param(
        0.3, "Drop conversations (off_topic) that use less than this share of their context's 20 most "
        "frequent content terms; 0 turns the check off.", section="Quality", title="Min topic overlap",
        ge=0.0, le=1.0)

    def sampling(self, job_id: str) -> SamplingParams:
        return SamplingParams.seeded(self.seed, job_id, temperature=self.temperature, top_p=self.top_p,
                                     max_tokens=self.max_tokens)


def turns_model(style: str):
    """The JSON answer of json_turns: turns whose speaker is one of the style's two roles."""
    from typing import Literal

    from pydantic import BaseModel, Field, create_model

    speakers = Literal[ROLES[style]]  # type: ignore[valid-type]
    turn = create_model(f"{style.title().replace('_', '')}Turn", speaker=(speakers, ...),
                        text=(str, Field(min_length=1)), __base__=BaseModel)
    return create_model("DialogueTurns", turns=(list[turn], Field(min_length=MIN_JSON_TURNS,
                                                                  max_length=MAX_JSON_TURNS)))


def salvage_turns(raw: str, model) -> list | None:
    """The complete turns of a JSON answer cut off by max_tokens, each validated like a whole answer
    (a role of the style, non-empty text), or None when fewer than MIN_JSON_TURNS are whole. The
    text form keeps a dialogue cut off the same way (flagged ``truncated``); this is its JSON twin."""
    import json

    from pydantic import ValidationError

    from synth_tasks.llm.client import repair_latex_escapes

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
    from synth_tasks.prompts import load_prompt, render

    return [{"role": "user", "content": render(load_prompt(f"mind/{style}"), context=context)}]


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def prepare(run, files: list[str]) -> None:
    """Read the partition's input files, chunk every text and plan one job per context and style."""
    from synth_tasks.inputs import read_inputs
    from synth_tasks.text.chunking import chunk_text

    cfg: MindConfig = run.cfg
    records, _ = read_inputs(run.input_store, files, run.ledger, cfg.text_column, cfg.id_column)
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
def generate(run, jobs: list[dict]) -> None:
    """Send every job of one shard to the LLM, as free text or as JSON turns (``dialogue_format``);
    failures are recorded with their error and raw answer."""
    from synth_tasks.llm.client import LLMError
    from synth_tasks.methods.mind.dialogue import Turn, format_turns, strip_own_label

    cfg: MindConfig = run.cfg
    form = dialogue_format(cfg, run.llm.endpoint)
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
        from synth_tasks.quality.filters import KEEP, drop
        from synth_tasks.methods.mind.dialogue import parse_turns

        turns = parse_turns(text)
        speakers = {t.speaker for t in turns}
        if len(turns) < self.min_turns or len(speakers) < self.min_speakers:
            return drop(f"{self.name}: {len(turns)} turns by {len(speakers)} speakers")
        return KEEP


def conversation_filters(cfg: MindConfig) -> list:
    from synth_tasks.quality.filters import MinTokens, PromptEcho, Repetition

    return [MinTokens(cfg.min_conversation_tokens), SpeakerTurns(), Repetition(), PromptEcho()]


def filter_conversations(run, rows: list[dict]) -> None:
    """Turn raw outputs into MIND records; drop short, degenerate and off-topic ones with their
    reason (off_topic: the conversation uses too few of its context's key terms)."""
    from synth_tasks.quality.filters import OnTopic, first_drop, topic_overlap
    from synth_tasks.methods.mind.dialogue import format_turns, parse_turns, to_messages
    from synth_tasks.text.tokens import count_tokens

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


METHOD = Method(
    dag_id="mind",
    config=MindConfig,
    input_files=("*.jsonl", "*.parquet"),
    stages=(
        Stage("prepare", prepare, mapped=False),
        Stage("generate", generate, llm="llm_conn_id"),
        Stage("filter", filter_conversations),
    ),
    export=Export(group_key="source_id", text_field="text", license="cc-by-nc-nd-4.0",
                  task_categories=("text-generation",),
                  input_source="the shipped sample, four sections of *Probability for Data Science* (Prob 140, "
                  "Adhikari and Pitman), CC BY-NC-ND 4.0 (include/sample_data/mind/ATTRIBUTION.md)."),
    tags=("math", "pretraining"),
)
