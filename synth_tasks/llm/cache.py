"""Content-addressed cache of LLM responses in the staging store.

The key hashes everything that determines a response: the endpoint (its base URL, or the run's
``cache_namespace`` for endpoints deliberately treated as one), the model, the messages, the
sampling params including the seed, and the response format (for structured output that is the
JSON schema, docstrings included). So re-running a failed or killed task re-sends no request that
already completed, another server answering under the same model name never gets old answers,
and changing any input makes a new key instead of a stale hit.

Where the answers live depends on the store. On an object store: one object per answer under
``{root}/{key[:2]}/{key}.json``, PUT as it arrives (a PUT is atomic). On a local filesystem: one
SQLite database, ``{root}/responses.sqlite`` in WAL mode, one row per answer committed as it
arrives. A file per answer cost 150-300 us of CPU to create on ext4 here (a fifth of a whole
request's client-side cost), a row ~11 us. Either way a killed task loses at most the requests in
flight. SQLite needs the local root on a local disk (or a volume that containers on one host
share); workers on several hosts share an ``s3://`` root instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import threading

from synth_tasks.storage import Store


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

    def _url(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}.json"

    def _connection(self) -> sqlite3.Connection:
        # Opened on first use, in the process that uses it (never inherited across a fork).
        if self._db is None:
            os.makedirs(os.path.dirname(self._db_path), exist_ok=True)
            # Autocommit: each answer is its own transaction. A write waits up to a minute for
            # another task's (they take microseconds).
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
        with self._lock:
            self._connection().execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, data))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # Remote filesystem calls (s3fs) block for a network round trip, so they run off the event
    # loop; local ones take microseconds, less than the hop to a thread would.
    async def aget(self, key: str) -> dict | None:
        if self.store.is_local:
            return self.get(key)
        return await asyncio.to_thread(self.get, key)

    async def aput(self, key: str, value: dict) -> None:
        if self.store.is_local:
            self.put(key, value)
        else:
            await asyncio.to_thread(self.put, key, value)

