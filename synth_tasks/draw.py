"""Deterministic draws: the same key gives the same draw in every process and every run (Python's
own ``hash`` of a string changes between processes)."""

from __future__ import annotations

import hashlib
import random
from typing import Hashable, TypeVar

T = TypeVar("T", bound=Hashable)


def stable_int(key: str, n_bytes: int = 4) -> int:
    """An integer from the sha256 of ``key``: a seed that does not change between processes."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:n_bytes], "big")


def distinct_by_weight(weights: dict[T, float], n: int, key: str) -> list[T]:
    """``n`` items drawn by weight (zero-weight items never), each at most once while more than one
    is left; the last one left may repeat. Seeded by ``key``."""
    pool = {item: w for item, w in weights.items() if w > 0}
    rng = random.Random(stable_int(key))
    chosen: list[T] = []
    while len(chosen) < n and pool:
        item = rng.choices(list(pool), weights=list(pool.values()))[0]
        chosen.append(item)
        if len(pool) > 1:
            pool.pop(item)
    return chosen
