"""The mix file: domains, each with a target sample count and its sources, and reading those sources.

A source is a file, folder or glob of JSONL, Parquet or JSON (a list of objects), local or
``s3://``, or another DAG's published train output (``dag: instruct``: the ``final/train.jsonl`` of
its newest accounted-for partition that has records; validation stays out of a training mix). Path
sources are read only from inside the allowed input roots, DAG outputs only from inside the staging
root. Fields are named per source, with dotted paths into nested values (``messages.0.content``)."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from synth_tasks.config import ConfigError, StrictModel, parse_config
from synth_tasks.prompts import include_dir

if TYPE_CHECKING:
    from synth_tasks.environment import Environment
    from synth_tasks.storage import Store

log = logging.getLogger(__name__)

SOURCE_FILES = ("*.jsonl", "*.parquet", "*.json")
DAG_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


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

    @field_validator("dag")
    @classmethod
    def _dag_id(cls, dag: str | None) -> str | None:
        # a DAG id, one folder under the staging root (RunLayout's rule): never a path, since
        # "../secret/x" read another folder's train.jsonl
        if dag is not None and (not dag or dag.startswith(".") or any(c not in DAG_ID_CHARS for c in dag)):
            raise ValueError(f"dag {dag!r} is not a DAG id (letters, digits, '_', '.', '-', not first '.'; "
                             "not a path)")
        return dag

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


@dataclass
class SourceData:
    """What one source gave: its files' rows, and for a ``dag:`` source the run it was read from
    and the newer runs passed over (empty), with why."""

    files: list[tuple[str, list[tuple[int, dict | Exception]]]]  # (file URL, numbered rows)
    dag_run: str | None = None
    skipped_runs: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return sum(len(rows) for _, rows in self.files)

    def describe(self) -> dict:
        """The summary's line for this source (info.sources)."""
        info: dict = {"files": len(self.files), "rows": self.n_rows}
        if self.dag_run is not None:
            info["dag_run"] = self.dag_run
        if self.skipped_runs:
            info["skipped_runs"] = self.skipped_runs
        return info


def _inside_staging_root(staging_store: Store, pattern: str, file_type: str) -> list[str]:
    """The files ``pattern`` names, every one inside the staging root once symlinks and ``..`` are
    resolved (the input policy's check, with the root DAGs publish under as the one allowed root);
    InputError otherwise."""
    from synth_tasks.inputs import InputError, list_input_files

    try:
        return list_input_files(staging_store, pattern, in_folder=(file_type,), allowed_roots=(staging_store.root,))
    except InputError as exc:
        raise InputError(f"a DAG source reads only what DAGs publish under the staging root {staging_store.root}: "
                         f"{exc}") from None


def dag_output(staging_store: Store, dag_id: str) -> SourceData:
    """The rows of ``final/train.jsonl`` of the DAG's newest published partition (newest summary:
    it is written last) that has any, read only from inside the staging root; newer accounted-for
    runs without records are passed over and named. InputError naming the DAG, or its runs, when
    none has records."""
    from synth_tasks.inputs import InputError

    pattern = staging_store.join(dag_id, "*", "_summary.json")
    if not staging_store.glob(pattern):
        raise InputError(f"DAG {dag_id!r} has no published output under {staging_store.join(dag_id)}")
    published = []
    for url in _inside_staging_root(staging_store, pattern, "_summary.json"):
        if staging_store.read_json(url).get("accounted_for"):
            published.append((staging_store.fs.modified(staging_store._path(url)).timestamp(), url))
    if not published:
        raise InputError(f"DAG {dag_id!r} has no accounted-for run under {staging_store.join(dag_id)}")
    skipped: list[str] = []
    for _, summary_url in sorted(published, reverse=True):
        run_dir = summary_url.rsplit("/", 1)[0]
        train = f"{run_dir}/final/train.jsonl"
        if not staging_store.exists(train):
            skipped.append(f"{run_dir}: no final/train.jsonl")
            continue
        _inside_staging_root(staging_store, train, "*.jsonl")
        rows = read_rows(staging_store, train)
        if not rows:
            skipped.append(f"{run_dir}: empty (0 records)")
            continue
        return SourceData([(train, rows)], dag_run=run_dir, skipped_runs=skipped)
    raise InputError(f"DAG {dag_id!r}: no accounted-for run has train records: {'; '.join(skipped)}")


def read_source(source: Source, mix_url: str, env: Environment, staging_store: Store) -> SourceData:
    """Every row of one source: another DAG's train output (``dag_output``), or the files its path
    names, read through the store of the path's own filesystem (``env.input_store``) and only from
    inside the allowed input roots (``env.allowed_input_roots``). InputError when a file cannot be
    listed or read, or when the source has no rows at all (a misspelt glob, an empty file)."""
    from synth_tasks.inputs import InputError, list_input_files

    if source.dag is not None:
        return dag_output(staging_store, source.dag)
    url = resolve_path(source.path, mix_url)
    files = list_input_files(env.input_store(url), url, in_folder=SOURCE_FILES, allowed_roots=env.allowed_input_roots)
    data = SourceData([(f, read_rows(env.input_store(f), f)) for f in files])
    if data.n_rows == 0:
        raise InputError(f"{url}: no rows in its {len(files)} file(s)")
    return data


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
