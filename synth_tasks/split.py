"""Deterministic train/validation split grouped by source document: every record of one document
goes to the same side, so no document leaks from training into validation."""

from __future__ import annotations

import hashlib


def validation_bucket(group: str, seed: int) -> float:
    """A stable number in [0, 1) for a group; independent of record order and of other groups."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_group(records: list[dict], group_key: str, train_ratio: float, seed: int = 0
                   ) -> tuple[list[dict], list[dict]]:
    """Return (train, validation). With train_ratio < 1 and at least two groups, validation is never
    left empty: the group with the highest bucket goes there even if hashing sent none."""
    if not 0.0 < train_ratio <= 1.0:
        raise ValueError(f"train_ratio must be in (0, 1], got {train_ratio}")
    groups = sorted({str(r[group_key]) for r in records})
    buckets = {g: validation_bucket(g, seed) for g in groups}
    val_groups = {g for g in groups if buckets[g] >= train_ratio}
    if not val_groups and train_ratio < 1.0 and len(groups) >= 2:
        val_groups = {max(groups, key=buckets.__getitem__)}
    if len(val_groups) == len(groups) and len(groups) >= 2:
        val_groups.discard(min(groups, key=buckets.__getitem__))
    train = [r for r in records if str(r[group_key]) not in val_groups]
    validation = [r for r in records if str(r[group_key]) in val_groups]
    return train, validation
