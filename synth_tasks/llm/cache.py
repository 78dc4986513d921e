"""Content-addressed cache of LLM responses in the staging store.

The key hashes everything that determines a response: the endpoint (its base URL, or the run's
``cache_namespace`` for endpoints deliberately treated as one), the model, the messages, the
sampling params including the seed, and the response format (for structured output that is the
JSON schema, docstrings included). So re-running a failed or killed task re-sends no request that
already completed, another server answering under the same model name never gets old answers,
and changing any input makes a new key instead of a stale hit.

Where the answers live depends on the store. On an object store: one object per answer under
``{root}/{key[:2]}/{key}.json``, PUT as it arrives (a PUT is atomic). On a local filesystem: one
SQLite database, ``{root}/responses.sqlite`` in WAL mode, each answer committed before the
request that asked for it goes on. A file per answer cost 150-300 us of CPU to create on ext4 here
(a fifth of a whole request's client-side cost), a row 35-65 us (a third of it in the 8 lock and
6 write calls of its transactions). So the event loop's lookups and writes are served per pass of
the loop: the answers that arrive together are committed in one transaction, and the lookups made
together in one SELECT, while each caller still waits for its own commit or row. Either way a
killed task loses at most the requests in flight, and another task sees an answer as soon as its
request returns. SQLite needs the local root on a local disk (or a volume that containers on one
host share); workers on several hosts share an ``s3://`` root instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import threading
from typing import Callable

from synth_tasks.storage import Store

SQLITE_MAX_VARIABLES = 500  # keys per SELECT ... IN (...), well under SQLite's limit


def cache_key(endpoint: str, model: str, messages: list[dict], sampling: dict, response_format: dict | None) -> str:
    payload = {"endpoint": endpoint, "model": model, "messages": messages, "sampling": sampling,
               "response_format": response_format}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    def __init__(self, store: Store, root_url: str):
        self.store, self.root = store, root_url.rstrip("/")
        self._db_path = f"{store._path(self.root)}/responses.sqlite" if store.is_local else None
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, used from the event loop or a thread
        self._gets: _PerLoopPass | None = None  # made in the event loop that uses them
        self._puts: _PerLoopPass | None = None

    def _url(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}.json"

    def _connection(self) -> sqlite3.Connection:
        # Opened on first use, in the process that uses it (never inherited across a fork).
        if self._db is None:
            os.makedirs(os.path.dirname(self._db_path), exist_ok=True)
            # Autocommit: each statement is its own transaction unless _put_rows opens one. A
            # write waits up to a minute for another task's (they take microseconds).
            db = sqlite3.connect(self._db_path, timeout=60, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # A committed row survives the process being killed (it is in the OS's page cache);
            # only a power loss could lose the last answers, and those are re-requested.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
            self._db = db
        return self._db

    def get(self, key: str) -> dict | None:
        if self._db_path is None:
            try:
                return json.loads(self.store.read_bytes(self._url(key)))
            except FileNotFoundError:
                return None
        with self._lock:
            row = self._connection().execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: dict) -> None:
        data = json.dumps(value, ensure_ascii=False).encode()
        if self._db_path is None:
            self.store.write_bytes(self._url(key), data)
            return
        self._put_rows([(key, data)])

    def _get_rows(self, keys: list[str]) -> list[dict | None]:
        """The values of ``keys`` (None where absent), read in one SELECT per 500 keys."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, bytes] = {}
        with self._lock:
            db = self._connection()
            for i in range(0, len(unique), SQLITE_MAX_VARIABLES):
                chunk = unique[i : i + SQLITE_MAX_VARIABLES]
                found.update(db.execute(f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(chunk))})",
                                        chunk).fetchall())
        return [None if k not in found else json.loads(found[k]) for k in keys]

    def _put_rows(self, rows: list[tuple[str, bytes]]) -> list[None]:
        """``rows`` (key, JSON bytes) committed in one transaction."""
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return [None] * len(rows)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # Remote filesystem calls (s3fs) block for a network round trip, so they run off the event
    # loop. Local ones are served together once per pass of the loop (see the module docstring).
    async def aget(self, key: str) -> dict | None:
        if self._db_path is None:
            return await asyncio.to_thread(self.get, key)
        if self._gets is None:
            self._gets = _PerLoopPass(self._get_rows)
        return await self._gets.submit(key)

    async def aput(self, key: str, value: dict) -> None:
        if self._db_path is None:
            await asyncio.to_thread(self.put, key, value)
            return
        if self._puts is None:
            self._puts = _PerLoopPass(self._put_rows)
        await self._puts.submit((key, json.dumps(value, ensure_ascii=False).encode()))


class _PerLoopPass:
    """Calls made during one pass of the event loop, served together by one ``serve(items)`` (a
    result per item, in order) at the start of the next pass. Each caller waits for its own
    result, so when an awaited write returns it is committed, as if it had been served alone."""

    def __init__(self, serve: Callable[[list], list]):
        self._serve = serve
        self._pending: list[tuple[object, asyncio.Future]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, item) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (the next stage call): nothing of the old one is pending
            self._loop, self._pending = loop, []
        future = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((item, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            results = self._serve([item for item, _ in pending])
        except Exception as exc:  # noqa: BLE001 - every waiting caller gets the error
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(pending, results):
            if not future.done():  # a caller cancelled meanwhile: its write is made all the same
                future.set_result(result)

