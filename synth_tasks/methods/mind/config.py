"""The Params of the mind DAG: the conversation styles with their two speakers, the dialogue format
and MindConfig."""

from __future__ import annotations

from enum import StrEnum

from synth_tasks.config import LLMParams, MethodConfig, SamplingParams, override, param


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
