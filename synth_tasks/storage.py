"""Staging storage on any fsspec filesystem (local files by default, S3 at scale).

One layout for every DAG::

    {root}/{dag_id}/{partition}/{stage}/part-{shard:05d}.parquet
    {root}/{dag_id}/{partition}/_ledger/{stage}/part-{shard:05d}.parquet
    {root}/{dag_id}/{partition}/_dropped/{stage}/part-{shard:05d}.parquet   (filtered records, for audit)
    {root}/{dag_id}/{partition}/_stats/{stage}/part-{shard:05d}.json      (what the summary adds up)
    {root}/{dag_id}/{partition}/_summary.json
    {root}/_cache/llm/...                      (LLM responses by content hash, shared by all runs: see llm/cache.py)

Writes are atomic: on a local filesystem through a temporary file and a rename, on object stores
because a PUT only becomes visible once complete. A re-run of a task rewrites its own shard only.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem


class Store:
    """A root URL plus the fsspec filesystem that serves it. Paths passed around are full URLs."""

    def __init__(self, root: str, fs: fsspec.AbstractFileSystem | None = None):
        if fs is None:
            fs, path = fsspec.core.url_to_fs(root)
        else:
            path = fs._strip_protocol(root)
        self.fs = fs
        self.root_path = path.rstrip("/")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.is_local = isinstance(fs, LocalFileSystem)
        self._made_dirs: set[str] = set()
        self.protocol = "file" if self.is_local else protocol
        self.root = self.url(self.root_path)

    # -- addressing ---------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.protocol}://{path}"

    def _path(self, url_or_path: str) -> str:
        # Local URLs this store made are "file://" + an absolute normalised path: slicing them is
        # what fsspec's _strip_protocol returns, at a tenth of its cost on the per-response path.
        if self.is_local and url_or_path.startswith("file:///") and "/." not in url_or_path \
                and not url_or_path.endswith("/"):
            return url_or_path[7:]
        return self.fs._strip_protocol(url_or_path)

    def join(self, *parts: str) -> str:
        return self.url("/".join([self.root_path, *[p.strip("/") for p in parts]]))

    # -- bytes ----------------------------------------------------------------------------------
    def write_bytes(self, url: str, data: bytes) -> str:
        path = self._path(url)
        parent = path.rsplit("/", 1)[0]
        if self.is_local:
            if parent not in self._made_dirs:  # one mkdir per folder, not per write
                os.makedirs(parent, exist_ok=True)
                self._made_dirs.add(parent)
            tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            try:
                fd = os.open(tmp, flags, 0o644)
            except FileNotFoundError:  # the folder was removed since (delete_tree, another process)
                os.makedirs(parent, exist_ok=True)
                fd = os.open(tmp, flags, 0o644)
            try:  # raw descriptor IO: no buffered file object per write (the response cache's hot path)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
        else:
            self.fs.pipe_file(path, data)
        return self.url(path)

    def read_bytes(self, url: str) -> bytes:
        return self.fs.cat_file(self._path(url))

    def exists(self, url: str) -> bool:
        return self.fs.exists(self._path(url))

    def glob(self, pattern: str) -> list[str]:
        return sorted(self.url(p) for p in self.fs.glob(self._path(pattern)))

    def delete_tree(self, url: str, *, inside: str) -> None:
        """Delete ``url`` and everything under it, which must lie strictly inside ``inside`` (no
        ``..`` or ``.`` segments, not ``inside`` itself): a bad name can never reach above it."""
        path, parent = self._path(url).rstrip("/"), self._path(inside).rstrip("/")
        if any(seg in (".", "..", "") for seg in path.split("/")[1:]) or not path.startswith(parent + "/"):
            raise ValueError(f"refusing to delete {url!r}: not strictly inside {inside!r}")
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def list_files(self, url: str, recursive: bool = False) -> list[str]:
        """The URLs of the files in folder ``url`` (none if it does not exist): directly in it, or
        with ``recursive`` in its subfolders too."""
        path = self._path(url)
        if not self.fs.exists(path):
            return []
        if recursive:
            # type: find on a folder left empty can answer the folder itself (SeaweedFS keeps it)
            return sorted(self.url(p) for p, info in self.fs.find(path, detail=True).items()
                          if info.get("type") == "file" and "/.tmp-" not in p)
        return sorted(self.url(p) for p in self.fs.ls(path, detail=False) if self.fs.isfile(p))

    # -- formats --------------------------------------------------------------------------------
    def write_json(self, url: str, obj: Any) -> str:
        return self.write_bytes(url, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True).encode())

    def read_json(self, url: str) -> Any:
        return json.loads(self.read_bytes(url))

    def write_jsonl(self, url: str, records: Iterable[dict]) -> str:
        body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
        return self.write_bytes(url, body.encode())

    def write_parquet(self, url: str, records: list[dict], schema: pa.Schema | None = None) -> str:
        table = pa.Table.from_pylist(records, schema=schema)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return self.write_bytes(url, buf.getvalue())

    def read_parquet(self, url: str) -> list[dict]:
        return pq.read_table(io.BytesIO(self.read_bytes(url))).to_pylist()


@dataclass(frozen=True)
class RunLayout:
    """Where one DAG run (one partition) keeps its artifacts."""

    store: Store
    dag_id: str
    partition: str

    def __post_init__(self) -> None:
        for name, value in (("dag_id", self.dag_id), ("partition", self.partition)):
            if not value or "/" in value or value.strip(".") == "" or value.startswith("."):
                raise ValueError(f"unsafe {name} {value!r}: must be one folder name, not '.', '..' or hidden")

    @property
    def base(self) -> str:
        return self.store.join(self.dag_id, self.partition)

    def part(self, stage: str, shard: int, ext: str = "parquet") -> str:
        return f"{self.base}/{stage}/part-{shard:05d}.{ext}"

    def ledger_part(self, stage: str, shard: int) -> str:
        return f"{self.base}/_ledger/{stage}/part-{shard:05d}.parquet"

    def stats_part(self, stage: str, shard: int) -> str:
        return f"{self.base}/_stats/{stage}/part-{shard:05d}.json"

    def stage_dir(self, stage: str) -> str:
        return f"{self.base}/{stage}"

    @property
    def summary(self) -> str:
        return f"{self.base}/_summary.json"

    @property
    def final_dir(self) -> str:
        return f"{self.base}/final"

    @property
    def staging_dir(self) -> str:
        """Where the export writes the new final files before they replace the published ones."""
        return f"{self.base}/_staging/final"

    # What a run writes besides its published final/ and _summary.json.
    WORKING = ("_ledger", "_dropped", "_stats", "_staging")

    def clear(self, folders: list[str]) -> None:
        """Remove these folders of the partition (stage folders, artifacts)."""
        for name in folders:
            self.store.delete_tree(f"{self.base}/{name}", inside=self.base)

    def clear_working(self, stages: list[str]) -> None:
        """Start the partition's work afresh: every stage folder and the bookkeeping folders. The
        published final/ and _summary.json stay until a new export replaces them."""
        self.clear([*stages, *self.WORKING])

    def publish(self) -> list[str]:
        """Replace the published final/ by the staged one, file by file (each write is atomic), then
        remove published files the new run did not write. Subfolders count (a curriculum's ordered
        shards, final/stage-01-.../part-*.parquet). Returns the published URLs."""
        def relative(url: str, folder: str) -> str:
            return self.store._path(url)[len(self.store._path(folder).rstrip("/")) + 1:]

        published, names = [], set()
        for url in self.store.list_files(self.staging_dir, recursive=True):
            name = relative(url, self.staging_dir)
            names.add(name)
            published.append(self.store.write_bytes(f"{self.final_dir}/{name}", self.store.read_bytes(url)))
        live = {"/".join(n.split("/")[:k]) for n in names for k in range(1, n.count("/") + 1)}  # folders kept
        for url in self.store.list_files(self.final_dir, recursive=True):
            name = relative(url, self.final_dir)
            if name in names:
                continue
            # a stale file goes with its outermost folder that no longer holds a published file, so
            # a re-run with fewer stages leaves no empty stage folder behind
            parts = name.split("/")
            gone = next(("/".join(parts[:k]) for k in range(1, len(parts)) if "/".join(parts[:k]) not in live), name)
            self.store.delete_tree(f"{self.final_dir}/{gone}", inside=self.final_dir)
        self.store.delete_tree(f"{self.base}/_staging", inside=self.base)
        return published

    @property
    def cache_root(self) -> str:
        return self.store.join("_cache", "llm")
