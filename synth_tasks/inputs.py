"""Reading raw input records (JSONL, Parquet or a YAML list) with errors that name the file and the row.

A problem with one row fails that row (it is reported, not dropped); a problem with a whole file
(unreadable, empty, corrupt, missing column) fails that file's records as one entry and leaves the
other files alone. Only when nothing at all is readable does the stage itself fail."""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from synth_tasks.storage import Store

log = logging.getLogger(__name__)


class InputError(ValueError):
    """Input that cannot be used; the message names the file (and the row where there is one)."""


@dataclass(frozen=True)
class InputRecord:
    id: str
    text: str
    source: str  # file URL
    row: int  # 1-based line (JSONL) or item number (Parquet row, YAML list item)
    fields: dict = field(default_factory=dict)  # the requested extra columns the row has


@dataclass(frozen=True)
class BadInput:
    id: str
    error: str


def list_input_files(store: Store, pattern: str, in_folder: tuple[str, ...] = ("*.jsonl", "*.parquet"),
                     allowed_roots: tuple[str, ...] | None = None) -> list[str]:
    """A file, a folder (its files matching ``in_folder``) or a glob. Every file must be of a type
    ``in_folder`` names and, with ``allowed_roots``, lie inside one of them once symlinks and
    ``..`` are resolved; anything else fails, naming the path (and the allowed roots)."""
    if allowed_roots is not None:
        _check_inside(pattern, pattern, allowed_roots)
    if any(ch in pattern for ch in "*?["):
        files = store.glob(pattern)
    elif store.fs.isdir(store._path(pattern)):
        # file types match without regard to case (PAPER.PDF is a paper); "**/" reaches subfolders
        listing = store.list_files(pattern.rstrip("/"), recursive=any("**" in glob for glob in in_folder))
        files = list(dict.fromkeys(f for glob in in_folder for f in listing
                                   if _is_type(f, glob) and ("**" in glob or f.rsplit("/", 1)[0] == pattern.rstrip("/"))))
    else:
        files = [pattern] if store.exists(pattern) else []
    if not files:
        raise InputError(f"no input files match {pattern!r}")
    names = tuple(glob.rsplit("/", 1)[-1] for glob in in_folder)
    for url in files:
        if not any(_is_type(url, name) for name in names):
            raise InputError(f"{url}: not an input file of this method (expected {', '.join(names)})")
        if allowed_roots is not None:
            _check_inside(url, pattern, allowed_roots)
    return files


def _is_type(url: str, glob: str) -> bool:
    """Whether the file's name matches the name part of ``glob``, without regard to case."""
    return fnmatch.fnmatch(url.rsplit("/", 1)[-1].lower(), glob.rsplit("/", 1)[-1].lower())


def _resolved(url: str) -> str:
    """Local paths with symlinks and ``..`` resolved; other URLs with ``..`` segments refused."""
    if url.startswith("file://") or "://" not in url:
        path = url.removeprefix("file://")
        # the part before the first wildcard is a real folder to resolve
        head = re.split(r"[*?\[]", path, maxsplit=1)[0]
        return os.path.realpath(head) + ("/" if head.endswith("/") else "")
    if any(seg in (".", "..") for seg in url.split("://", 1)[1].split("/")):
        raise InputError(f"input {url!r}: '.' and '..' are not allowed in remote paths")
    return url


def _check_inside(url: str, asked: str, roots: tuple[str, ...]) -> None:
    target = _resolved(url)
    for root in roots:
        base = _resolved(root).rstrip("/")
        if target == base or target.startswith(base + "/"):
            return
    raise InputError(f"input {asked!r} ({target}) is outside the allowed input roots {list(roots)}: put it under "
                     "one of them, or add its folder to SYNTH_INPUT_ROOTS in the deployment")


def input_name(url: str, base: str | None) -> str:
    """What names a file in record ids: its path under the input ``base`` the run was given (a
    folder, or a glob's folder part), so ``day1/data.jsonl`` and ``day2/data.jsonl`` differ; its
    file name where ``base`` is the file itself or not given."""
    name = url.rsplit("/", 1)[-1]
    if base is None or url == base:
        return name
    head = re.split(r"[*?\[]", base, maxsplit=1)[0]
    folder = head.rsplit("/", 1)[0] if head != base else base.rstrip("/")
    return url[len(folder) + 1:] if url.startswith(folder + "/") else name


def read_inputs(store: Store, files: list[str], ledger, text_column: str, id_column: str | None = None,
                extra_columns: tuple[str, ...] = (), base: str | None = None) -> tuple[list[InputRecord], list[str]]:
    """The usable records of all ``files``, with unique ids. Everything else is recorded as failed
    in ``ledger`` (a stage's StageLedger), naming the file and row: an unusable file as one entry,
    a bad row, and a record whose id an earlier file already used. A row without an id is named by
    its file's path under ``base`` (the input the run was given) and its row. Returns (records, ids
    of the failed entries); the caller accounts for the records."""
    records: list[InputRecord] = []
    failed_ids: list[str] = []
    seen: set[str] = set()
    for url in files:
        try:
            good, bad = read_text_records(store, url, text_column, id_column, extra_columns,
                                          name=input_name(url, base))
        except InputError as exc:
            log.error("input file failed: %s", exc)
            failed_ids.append(url)
            ledger.failed(url, f"bad_file: {exc}")
            continue
        for b in bad:
            log.error("input row failed: %s", b.error)
            failed_ids.append(b.id)
            ledger.failed(b.id, b.error)
        for rec in good:
            if rec.id in seen:  # the reader checks ids within a file; this is across files
                rid = f"{url}#{rec.row}"
                error = f"duplicate_id: {url} row {rec.row}: id {rec.id!r} used in another file"
                log.error("input row failed: %s", error)
                failed_ids.append(rid)
                ledger.failed(rid, error)
                continue
            seen.add(rec.id)
            records.append(rec)
    return records, failed_ids


def read_text_file(store: Store, url: str, kind: str = "text") -> str:
    """A whole text file (markdown, plain text) as UTF-8; InputError naming the file when it is
    binary or not UTF-8 (``kind`` says what it should have been)."""
    data = store.read_bytes(url)
    if b"\x00" in data[:8192]:
        raise InputError(f"{url}: binary file (NUL bytes), not {kind}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{url}: not UTF-8 (byte {exc.start})") from None


def _row_id(name: str, row: int, raw_id) -> str:
    return f"{name}#{row}" if raw_id is None or raw_id == "" else str(raw_id)


def read_text_records(store: Store, url: str, text_column: str, id_column: str | None = None,
                      extra_columns: tuple[str, ...] = (), name: str | None = None
                      ) -> tuple[list[InputRecord], list[BadInput]]:
    """Read one JSONL, Parquet or YAML file; raise InputError for a whole-file problem. Of
    ``extra_columns``, those a row has are passed on in ``InputRecord.fields``. ``name``: what
    names the file in the ids of rows without one (default: its file name)."""
    name = name or url.rsplit("/", 1)[-1]
    try:
        data = store.read_bytes(url)
    except OSError as exc:
        raise InputError(f"{url}: cannot read: {exc}") from exc
    if not data.strip():
        raise InputError(f"{url}: file is empty")
    suffix = url.lower()
    if suffix.endswith(".parquet"):
        rows = _parquet_rows(url, data, text_column, id_column)
    elif suffix.endswith((".jsonl", ".json")):
        rows = jsonl_rows(url, data)
    elif suffix.endswith((".yaml", ".yml")):
        rows = _yaml_rows(url, data)
    else:
        raise InputError(f"{url}: unsupported input format (expected .jsonl, .parquet or .yaml)")

    good: list[InputRecord] = []
    bad: list[BadInput] = []
    seen: set[str] = set()
    missing_column_rows = 0
    for row, obj, err in rows:
        if err is not None:
            bad.append(BadInput(f"{name}#{row}", f"bad_row: {url} row {row}: {err}"))
            continue
        rid = _row_id(name, row, obj.get(id_column) if id_column else None)
        if rid in seen:
            bad.append(BadInput(f"{name}#{row}", f"duplicate_id: {url} row {row}: id {rid!r} seen before"))
            continue
        seen.add(rid)
        if text_column not in obj:
            missing_column_rows += 1
            bad.append(BadInput(rid, f"missing_column: {url} row {row}: no column {text_column!r}"))
            continue
        text = obj[text_column]
        if not isinstance(text, str):
            bad.append(BadInput(rid, f"bad_type: {url} row {row}: {text_column!r} is {type(text).__name__}, not text"))
            continue
        fields = {c: obj[c] for c in extra_columns if obj.get(c) is not None}
        good.append(InputRecord(id=rid, text=text, source=url, row=row, fields=fields))
    if rows and missing_column_rows == len(rows):
        raise InputError(f"{url}: no column {text_column!r} in any row")
    return good, bad


def _parquet_rows(url: str, data: bytes, text_column: str, id_column: str | None):
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{url}: not a readable Parquet file: {exc}") from exc
    for col in filter(None, (text_column, id_column)):
        if col not in table.column_names:
            raise InputError(f"{url}: no column {col!r} (columns: {table.column_names})")
    return [(i + 1, obj, None) for i, obj in enumerate(table.to_pylist())]


def jsonl_rows(url: str, data: bytes) -> list[tuple[int, dict | None, str | None]]:
    """A JSON Lines file's rows: (line number, the object, None), or (line number, None, what is
    wrong with the line); blank lines are skipped."""
    rows = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            rows.append((lineno, None, f"not UTF-8 at byte {exc.start}"))
            continue
        except json.JSONDecodeError as exc:
            rows.append((lineno, None, f"invalid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(obj, dict):
            rows.append((lineno, None, f"expected a JSON object, got {type(obj).__name__}"))
            continue
        rows.append((lineno, obj, None))
    return rows


def _yaml_rows(url: str, data: bytes):
    try:
        items = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{url}: not UTF-8 at byte {exc.start}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{url}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(items, list):
        raise InputError(f"{url}: expected a YAML list of records, got {type(items).__name__}")
    return [(i, obj, None) if isinstance(obj, dict) else (i, None, f"expected a mapping, got {type(obj).__name__}")
            for i, obj in enumerate(items, start=1)]
