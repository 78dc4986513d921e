"""The mix file: domains, each with a target sample count and its sources, and reading those sources.

A source is a file, folder or glob of JSONL, Parquet or JSON (a list of objects), local or
``s3://``, or another DAG's published train output (``dag: instruct``: its latest partition's
``final/train.jsonl``; validation stays out of a training mix). Fields are named per source, with
dotted paths into nested values (``messages.0.content``)."""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import Field, model_validator

from synth_tasks.config import ConfigError, StrictModel, parse_config
from synth_tasks.prompts import include_dir

if TYPE_CHECKING:
    from synth_tasks.environment import Environment
    from synth_tasks.storage import Store

log = logging.getLogger(__name__)

SOURCE_FILES = ("*.jsonl", "*.parquet", "*.json")


class SourceFilter(StrictModel):
    equals: dict[str, Any] = Field(default_factory=dict,
                                   description="field -> allowed value (or list of allowed values)")
    min_chars: int = Field(0, ge=0, description="minimum characters of the question")
    max_chars: int | None = Field(None, ge=1, description="maximum characters of the question")


class Source(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    path: str | None = None
    dag: str | None = Field(None, description="another DAG whose latest final/train.jsonl is the source")
    format: Literal["qa", "oasst_trees"] = "qa"
    question: str = "question"
    answer: str = "answer"
    id: str | None = Field(None, description="field holding a stable id (default: source and row)")
    score: str | None = Field(None, description="field holding a quality score (higher is better)")
    filter: SourceFilter = Field(default_factory=SourceFilter)
    licence: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_location(self):
        if (self.path is None) == (self.dag is None):
            raise ValueError(f"source {self.name!r}: give exactly one of path and dag")
        if self.dag is not None and self.question == "question" and self.answer == "answer":
            # another DAG's records are chat messages: the user turn and the assistant turn
            object.__setattr__(self, "question", "messages.0.content")
            object.__setattr__(self, "answer", "messages.1.content")
        return self


class Domain(StrictModel):
    target: int = Field(ge=1, description="items to sample from this domain")
    template: str | None = Field(None, description="prompt template include/prompts/data_selection/{template}.txt "
                                 "(and {template}_example.txt for the few-shot examples); none: the question is "
                                 "the prompt (conversations: the rendered conversation)")
    fewshot_k: int | None = Field(None, ge=0, le=16, description="few-shot examples per prompt (default: the Param)")
    sources: list[Source] = Field(min_length=1)


class Mix(StrictModel):
    domains: dict[str, Domain] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_sources(self):
        for name, domain in self.domains.items():
            names = [s.name for s in domain.sources]
            if len(set(names)) != len(names):
                raise ValueError(f"domain {name!r}: source names must be unique: {names}")
        return self


def parse_mix(text: str, where: str) -> Mix:
    """The mix file's domains; InputError naming the file and the bad fields otherwise."""
    from synth_tasks.inputs import InputError

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: a mix file is a mapping with 'domains'")
    try:
        return parse_config(Mix, data)
    except ConfigError as exc:
        raise InputError(f"{where}: {exc}") from None


def field_value(row: Any, path: str) -> Any:
    """``row[a][b]...`` for the dotted ``path`` ``a.b``; list items by number; None where missing."""
    value = row
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is None:
            return None
    return value


def filter_reason(source: Source, row: dict, question: str) -> str | None:
    """Why the source's filter drops this row, or None."""
    f = source.filter
    for field, wanted in f.equals.items():
        allowed = wanted if isinstance(wanted, list) else [wanted]
        value = field_value(row, field)
        if value not in allowed:
            return f"source_filter: {field}={value!r} not in {allowed!r}"
    if len(question) < f.min_chars:
        return f"source_filter: question has {len(question)} characters < min_chars {f.min_chars}"
    if f.max_chars is not None and len(question) > f.max_chars:
        return f"source_filter: question has {len(question)} characters > max_chars {f.max_chars}"
    return None


# -- locating and reading -----------------------------------------------------------------------
def resolve_path(path: str, mix_url: str) -> str:
    """A source path as a URL: ``include/...`` is the shipped data, other relative paths are
    relative to the mix file's folder."""
    if "://" in path:
        return path
    if path.startswith("include/"):
        return f"file://{include_dir() / path.removeprefix('include/')}"
    if path.startswith("/"):
        return f"file://{path}"
    return f"{mix_url.rsplit('/', 1)[0]}/{path}"


def latest_dag_output(staging_store, dag_id: str) -> str:
    """``final/train.jsonl`` of the DAG's most recently published partition (summary written last)."""
    from synth_tasks.inputs import InputError

    summaries = staging_store.glob(staging_store.join(dag_id, "*", "_summary.json"))
    published = []
    for url in summaries:
        summary = staging_store.read_json(url)
        if summary.get("accounted_for"):
            published.append((staging_store.fs.modified(staging_store._path(url)).timestamp(), url))
    if not published:
        raise InputError(f"DAG {dag_id!r} has no published output under {staging_store.join(dag_id)}")
    latest = max(published)[1]
    return latest.rsplit("/", 1)[0] + "/final/train.jsonl"


def source_files(source: Source, mix_url: str, env: Environment, staging_store: Store) -> list[str]:
    """The files of one source: another DAG's latest train output, or what its path names, read
    through the store of the path's own filesystem (``env.input_store``) and only from inside the
    allowed input roots (``env.allowed_input_roots``)."""
    from synth_tasks.inputs import list_input_files

    if source.dag is not None:
        return [latest_dag_output(staging_store, source.dag)]
    url = resolve_path(source.path, mix_url)
    return list_input_files(env.input_store(url), url, in_folder=SOURCE_FILES, allowed_roots=env.allowed_input_roots)


def read_rows(store: Store, url: str) -> list[tuple[int, dict | Exception]]:
    """(row number, row) of one JSONL, Parquet or JSON file read through ``store`` (the store of
    the file's own filesystem), numbered from 1 (a JSONL file's line number, blank lines skipped
    but counted); a bad row is an exception in its place. A whole-file problem raises InputError
    naming the file."""
    from synth_tasks.inputs import InputError

    try:
        data = store.read_bytes(url)
    except OSError as exc:
        raise InputError(f"{url}: unreadable: {exc}") from None
    name = url.rsplit("/", 1)[-1]
    if name.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            return list(enumerate(pq.read_table(io.BytesIO(data)).to_pylist(), start=1))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            raise InputError(f"{url}: not Parquet: {exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{url}: not UTF-8 (byte {exc.start})") from None
    if name.lower().endswith(".json"):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{url}: not JSON: {exc}") from None
        if not isinstance(rows, list):
            raise InputError(f"{url}: a JSON source is a list of objects")
        return [(n, r if isinstance(r, dict) else ValueError(f"item is {type(r).__name__}, not an object"))
                for n, r in enumerate(rows, start=1)]
    numbered: list[tuple[int, dict | Exception]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            numbered.append((n, row if isinstance(row, dict) else ValueError(f"line is {type(row).__name__}, not an object")))
        except json.JSONDecodeError as exc:
            numbered.append((n, ValueError(f"invalid JSON: {exc}")))
    return numbered
