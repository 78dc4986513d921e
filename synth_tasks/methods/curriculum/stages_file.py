"""The stages file (``include/configs/curriculum/stages.yaml``): the curriculum as data. Stages are
listed in the order a learner meets them; each names its prompts, its difficulty band, its word
list and how many items to make. A stage's vocabulary is the common list plus every stage's list up
to and including its own (what a learner at that stage has met)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import yaml
from pydantic import Field, field_validator, model_validator

from synth_tasks.config import StrictModel, parse_config
from synth_tasks.inputs import jsonl_rows


class EvalType(StrEnum):
    SHORT_ANSWER = "short_answer"
    MULTIPLE_CHOICE = "multiple_choice"


def _beside_the_stages_file(path: str) -> str:
    """Word lists are read relative to the stages file, inside its folder: no absolute path, URL or
    ``..`` (a stages file must not copy another file's words into the run)."""
    if path.startswith(("/", "\\")) or "://" in path or ".." in path.replace("\\", "/").split("/"):
        raise ValueError(f"{path!r}: word lists are named relative to the stages file, inside its folder")
    return path


class StageSpec(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=1)
    theme: str | None = Field(None, min_length=1)  # what its stories are about, one sentence (default: the title)
    templates: list[str] = Field(min_length=1)
    eval_templates: dict[EvalType, str] = Field(min_length=1)
    grade: tuple[float | None, float | None]
    max_oov: float | None = Field(None, ge=0.0, le=1.0)
    vocabulary: str
    vocabulary_level: str = Field(min_length=1)
    items: int = Field(ge=0)
    eval_items: int = Field(0, ge=0)
    structure: str | None = Field(None, pattern="^(arithmetic|code)$")  # documents which structural measure matters

    @field_validator("vocabulary")
    @classmethod
    def _relative(cls, path: str) -> str:
        return _beside_the_stages_file(path)

    @model_validator(mode="after")
    def _band(self):
        lo, hi = self.grade
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(f"grade band [{lo}, {hi}) is empty")
        return self


class StagesFile(StrictModel):
    common_vocabulary: str | None = None
    # stories a reader filed under their stage's theme (JSON Lines of {"stage", "text"}): the theme
    # measure compares a story with each stage's theme sentence and the centre of its examples
    theme_examples: str | None = None
    features: list[str] = Field(min_length=1)
    stages: list[StageSpec] = Field(min_length=1)

    @field_validator("common_vocabulary", "theme_examples")
    @classmethod
    def _relative(cls, path: str | None) -> str | None:
        return None if path is None else _beside_the_stages_file(path)

    @model_validator(mode="after")
    def _unique(self):
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique: {names}")
        return self


def parse_stages(text: str) -> StagesFile:
    """The stages file's YAML, validated (ConfigError naming each bad field)."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("the stages file must be a YAML mapping with 'features' and 'stages'")
    return parse_config(StagesFile, data)  # type: ignore[return-value]


def parse_word_list(text: str) -> list[str]:
    """Words of a list file: whitespace-separated, lower-cased, ``#`` starts a comment."""
    words: list[str] = []
    for line in text.splitlines():
        words += [w.lower() for w in line.split("#", 1)[0].split() if re.fullmatch(r"[A-Za-z'-]+", w)]
    return list(dict.fromkeys(words))


def parse_theme_examples(text: str, path: str, stage_names: list[str]) -> dict[str, list[str]]:
    """The theme examples file: one JSON object a line with the ``stage`` it is an example of and
    its ``text``; blank lines are skipped. A bad line fails, naming the file and the line."""
    examples: dict[str, list[str]] = {name: [] for name in stage_names}
    for number, row, problem in jsonl_rows(path, text.encode("utf-8")):
        if problem is not None:
            raise ValueError(f"{path} line {number}: {problem}")
        if row.get("stage") not in examples:
            raise ValueError(f"{path} line {number}: 'stage' must name a stage of the file: {stage_names}")
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            raise ValueError(f"{path} line {number}: 'text' must be a story")
        examples[row["stage"]].append(row["text"])
    return examples


def slug(index: int, spec: StageSpec) -> str:
    """The stage's folder name in final/: ``stage-01-basic-perception``."""
    return f"stage-{index + 1:02d}-{spec.name}"


@dataclass(frozen=True)
class Curriculum:
    """The parsed stages with their word lists resolved: ``own_words[i]`` the stage's own list,
    ``vocabularies[i]`` everything a learner at stage i knows, ``word_stage`` the 1-based stage
    whose list introduces each word (common words are not in it), ``theme_examples[i]`` the
    stage's example stories (none without a theme examples file)."""

    spec: StagesFile
    own_words: tuple[tuple[str, ...], ...]
    vocabularies: tuple[frozenset[str], ...]
    theme_examples: tuple[tuple[str, ...], ...] = ()

    @property
    def stages(self) -> list[StageSpec]:
        return self.spec.stages

    @property
    def word_stage(self) -> dict[str, int]:
        introduced: dict[str, int] = {}
        for i, own in enumerate(self.own_words):
            for w in own:
                introduced.setdefault(w, i + 1)
        return introduced

    def index(self, name: str) -> int:
        return next(i for i, s in enumerate(self.stages) if s.name == name)


def build_curriculum(spec: StagesFile, read_text) -> Curriculum:
    """``read_text(relative path)`` reads a file beside the stages file (word lists, theme examples)."""
    common = set(parse_word_list(read_text(spec.common_vocabulary))) if spec.common_vocabulary else set()
    own, vocabularies, known = [], [], set(common)
    for s in spec.stages:
        words = parse_word_list(read_text(s.vocabulary))
        if not words:
            raise ValueError(f"stage {s.name!r}: word list {s.vocabulary} has no words")
        own.append(tuple(words))
        known |= set(words)
        vocabularies.append(frozenset(known))
    examples = ()
    if spec.theme_examples:
        names = [s.name for s in spec.stages]
        by_stage = parse_theme_examples(read_text(spec.theme_examples), spec.theme_examples, names)
        examples = tuple(tuple(by_stage[name]) for name in names)
    return Curriculum(spec, tuple(own), tuple(vocabularies), examples)
