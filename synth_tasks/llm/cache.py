"""Content-addressed cache of LLM responses in the staging store.

The key hashes everything that determines a response: the endpoint (its base URL, or the run's
``cache_namespace`` for endpoints deliberately treated as one), the model, the messages, the
sampling params including the seed, and the response format (for structured output that is the
JSON schema, docstrings included). So re-running a failed or killed task re-sends no request that
already completed, another server answering under the same model name never gets old answers,
and changing any input makes a new key instead of a stale hit. One object per response: a killed
task loses at most the requests in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

from synth_tasks.storage import Store


def cache_key(endpoint: str, model: str, messages: list[dict], sampling: dict, response_format: dict | None) -> str:
    payload = {"endpoint": endpoint, "model": model, "messages": messages, "sampling": sampling,
               "response_format": response_format}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    def __init__(self, store: Store, root_url: str):
        self.store, self.root = store, root_url.rstrip("/")

    def _url(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            if self.store.is_local:  # the hot path of every request: plain file IO, no fsspec layers
                with open(self.store._path(self._url(key)), "rb") as f:
                    return json.loads(f.read())
            return json.loads(self.store.read_bytes(self._url(key)))
        except FileNotFoundError:
            return None

    def put(self, key: str, value: dict) -> None:
        self.store.write_bytes(self._url(key), json.dumps(value, ensure_ascii=False).encode())

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
