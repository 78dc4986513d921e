"""Where a run lives, without Airflow: the data root, the partition a run writes, the input a
pattern names, and the stores that read and write them.

The Airflow glue reads these facts from a task's context (run type, run id, data interval) and the
deployment's connections; ``run_method`` and the tools make them from plain arguments. A stage
reaches them through ``run.env``.

Partitions: a scheduled or backfill run writes the partition of its data interval (``2026-03-04``),
so a backfill redoes exactly that day. Any other run (manual, asset-triggered) writes
``run-<its run id, encoded>``: the prefix keeps those apart from the dated partitions whatever the
run id says, and the encoding is one-to-one, so two run ids never share a partition.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from synth_tasks.config import ConfigError
from synth_tasks.prompts import include_dir

if TYPE_CHECKING:  # fsspec and pyarrow: not when a DAG file is parsed
    from synth_tasks.storage import RunLayout, Store

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Run types whose partition is their data interval's day.
DATED_RUN_TYPES = ("scheduled", "backfill")
RUN_PREFIX = "run-"
_SAFE = re.compile(r"[A-Za-z0-9_.-]")
_MAX_ENCODED = 150  # a partition is one path component (255 bytes on most filesystems)

# (root URL, Airflow connection id or None) -> an fsspec filesystem holding that connection's
# credentials. The glue passes Airflow's; without it, fsspec's own (credentials from the environment).
FilesystemFor = Callable[[str, "str | None"], object]


def data_root() -> str:
    """Staging root: $SYNTH_DATA_ROOT (e.g. s3://bucket/prefix), else ./data in the project."""
    return os.environ.get("SYNTH_DATA_ROOT", f"file://{PROJECT_ROOT / 'data'}")


def run_partition(run_id: str) -> str:
    """The partition of a run that is not dated (manual, asset-triggered): ``run-`` and the run id
    with every character outside ``[A-Za-z0-9_.-]`` written ``~XX`` (its UTF-8 bytes in hex), so the
    name is safe for a path and differs for every run id. A very long id keeps its first characters
    and a hash after ``~~``, which no encoded id contains."""
    encoded = "".join(ch if _SAFE.fullmatch(ch) else "".join(f"~{b:02X}" for b in ch.encode()) for ch in run_id)
    if len(encoded) > _MAX_ENCODED:
        encoded = f"{encoded[:_MAX_ENCODED]}~~{hashlib.sha256(run_id.encode()).hexdigest()[:16]}"
    return RUN_PREFIX + encoded


def partition_for(run_type: str, run_id: str, interval_start: datetime | None) -> str:
    """Scheduled runs and backfills write their data interval's day; other runs their own partition."""
    if run_type.lower() in DATED_RUN_TYPES and interval_start is not None:
        return interval_start.strftime("%Y-%m-%d")
    return run_partition(run_id)


def input_root(url: str) -> str:
    """The root of the filesystem an input URL lives on: ``file:///`` or ``s3://bucket``."""
    if url.startswith("file://") or "://" not in url:
        return "file:///"
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def allowed_input_roots(data_root: str) -> tuple[str, ...]:
    """Where inputs may come from: the shipped include/ data, ``{data root}/inputs/`` and the
    folders or URL prefixes the deployment lists in $SYNTH_INPUT_ROOTS (comma-separated)."""
    listed = [r.strip() for r in os.environ.get("SYNTH_INPUT_ROOTS", "").split(",") if r.strip()]
    return (str(include_dir()), f"{data_root.rstrip('/')}/inputs", *listed)


def store_for(root: str, conn_id: str | None = None, filesystem: FilesystemFor | None = None) -> Store:
    """A store on ``root``. Local roots use fsspec directly; remote ones take their filesystem from
    ``filesystem`` (the deployment's connections) where given, so credentials never pass through
    code or logs."""
    from synth_tasks.storage import Store

    if root.startswith("file://") or "://" not in root or filesystem is None:
        return Store(root)
    return Store(root, fs=filesystem(root, conn_id))


def resolve_input(pattern: str, day: str | None) -> str:
    """``pattern`` as a URL: ``{ds}`` filled with ``day`` (YYYY-MM-DD); a relative path starting with
    ``include/`` is the shipped data (package data, so it works from a wheel too); other relative
    paths are under the project root."""
    if "{ds}" in pattern:
        if day is None:
            raise ConfigError(f"input {pattern!r} uses {{ds}} but this run has no data interval")
        pattern = pattern.replace("{ds}", day)
    if pattern.startswith("include/"):
        pattern = str(include_dir() / pattern.removeprefix("include/"))
    elif "://" not in pattern and not pattern.startswith("/"):
        pattern = str(PROJECT_ROOT / pattern)
    return pattern if "://" in pattern else f"file://{pattern}"


@dataclass(frozen=True)
class Environment:
    """One run's place: its partition and day, the staging root, and how stores are made.

    ``day``: the data interval's date (YYYY-MM-DD) that fills ``{ds}``, or None for a run without
    one. Connection ids: ``storage_conn_id`` for the staging root, ``input_conn_id`` for inputs on
    another filesystem (default: the staging one)."""

    partition: str
    day: str | None = None
    data_root: str = ""
    storage_conn_id: str | None = None
    input_conn_id: str | None = None
    filesystem: FilesystemFor | None = None

    @classmethod
    def from_os(cls, partition: str, day: str | None = None, filesystem: FilesystemFor | None = None) -> Environment:
        """The deployment's environment: $SYNTH_DATA_ROOT, $SYNTH_STORAGE_CONN_ID, $SYNTH_INPUT_CONN_ID."""
        storage = os.environ.get("SYNTH_STORAGE_CONN_ID")
        return cls(partition=partition, day=day, data_root=data_root(), storage_conn_id=storage,
                   input_conn_id=os.environ.get("SYNTH_INPUT_CONN_ID") or storage, filesystem=filesystem)

    @property
    def staging_store(self) -> Store:
        return store_for(self.data_root or data_root(), self.storage_conn_id, self.filesystem)

    def layout(self, dag_id: str) -> RunLayout:
        from synth_tasks.storage import RunLayout

        return RunLayout(self.staging_store, dag_id, self.partition)

    def resolve_input(self, pattern: str) -> str:
        return resolve_input(pattern, self.day)

    def input_store(self, url: str) -> Store:
        """The store of an input URL's own filesystem (local inputs with S3 staging, or the other
        way round)."""
        return store_for(input_root(url), self.input_conn_id, self.filesystem)

    @property
    def allowed_input_roots(self) -> tuple[str, ...]:
        return allowed_input_roots(self.data_root or data_root())
