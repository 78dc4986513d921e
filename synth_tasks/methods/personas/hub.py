"""The persona hub: every persona kept so far, in the data root beside the LLM cache and outside any
partition (``{root}/_hub/personas/part-{partition}.parquet``), so it outlives the partitions'
working folders and no run id can name it. Each run writes one part, named after its partition,
with one atomic write: a re-run of a day replaces that day's part and nothing else, and reads the
hub without it, so it deduplicates against everything before it exactly as the first try did.

Dedup as in the paper: MinHash over words (128 permutations, estimated Jaccard >= 0.9), then
MiniLM cosine >= 0.9, each pass against the hub and the run's earlier personas. Embeddings are kept
in the hub parts, so a run embeds only its own personas."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

HUB_DIR = ("_hub", "personas")
HUB_COLUMNS = ("id", "description", "domain", "expertise", "relation", "origin_text_id", "parent_id",
               "root_persona_id", "depth", "lineage", "created_partition", "created_date", "embedding")


def hub_dir(store) -> str:
    return store.join(*HUB_DIR)


def hub_part(store, partition: str) -> str:
    return f"{hub_dir(store)}/part-{partition}.parquet"


def read_hub(store, *, except_partition: str | None = None) -> list[dict]:
    """Every hub persona, oldest part first (the part of ``except_partition`` left out)."""
    skip = hub_part(store, except_partition) if except_partition else None
    parts = [u for u in store.glob(f"{hub_dir(store)}/part-*.parquet") if u != skip]
    rows = [r for url in parts for r in store.read_parquet(url)]
    return sorted(rows, key=lambda r: (r["created_date"], r["created_partition"], r["id"]))


def trends_url(store, day: str) -> str:
    """The term shares of one day's fetched material (trending topics compare days)."""
    return f"{store.join(*HUB_DIR[:1], 'trends')}/{day}.json"


def earlier_trends(store, day: str, window: int) -> list[dict]:
    """The term shares of up to ``window`` days before ``day`` (not after it: a backfill of an
    earlier day compares with the days before that one)."""
    folder = store.join(*HUB_DIR[:1], "trends")
    days = sorted(u for u in store.glob(f"{folder}/*.json") if u.rsplit("/", 1)[1][:-5] < day)
    return [store.read_json(u) for u in days[-window:]]


def write_hub_part(store, partition: str, personas: list[dict]) -> str:
    return store.write_parquet(hub_part(store, partition), [{k: p.get(k) for k in HUB_COLUMNS} for p in personas])


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def created_date(partition: str, today: str) -> str:
    """A scheduled run's partition is its day; a manual run's persona is dated the day it ran."""
    return partition if _DATE.match(partition) else today


def in_range(persona: dict, date_from: str | None, date_to: str | None) -> bool:
    day = persona["created_date"]
    return (date_from is None or day >= date_from) and (date_to is None or day <= date_to)


@dataclass(frozen=True)
class Duplicate:
    of: str  # the id of the persona it duplicates (hub or this run)
    by: str  # "minhash" or "embedding"
    score: float


def minhash_duplicates(hub_texts: list[str], hub_ids: list[str], texts: list[str], ids: list[str],
                       threshold: float) -> list[Duplicate | None]:
    """For each new text, the hub or earlier new persona whose MinHash Jaccard over words reaches
    ``threshold`` (the shared quality layer's LSH, 128 permutations, word 1-grams)."""
    from synth_tasks.quality.dedup import minhash_duplicate_of

    found = minhash_duplicate_of(hub_texts + texts, threshold=threshold, num_perm=128, shingle_words=1)
    all_ids = hub_ids + ids
    return [None if j is None else Duplicate(all_ids[j], "minhash", threshold) for j in found[len(hub_texts):]]


def embedding_duplicates(hub_vectors: np.ndarray, hub_ids: list[str], vectors: np.ndarray, ids: list[str],
                         threshold: float) -> list[Duplicate | None]:
    """For each new (unit) vector, the hub or earlier kept new persona with the highest cosine,
    when that reaches ``threshold``. The hub is compared in one matrix product."""
    hub_best = np.full(len(vectors), -1.0)
    hub_arg = np.zeros(len(vectors), dtype=int)
    if len(hub_vectors) and len(vectors):
        sims = vectors @ hub_vectors.T
        hub_arg, hub_best = sims.argmax(axis=1), sims.max(axis=1)
    kept: list[int] = []  # indices of new vectors kept so far
    result: list[Duplicate | None] = []
    for i, (vec, pid) in enumerate(zip(vectors, ids)):
        best, of = float(hub_best[i]), (hub_ids[int(hub_arg[i])] if len(hub_vectors) else None)
        if kept:
            new_sims = vectors[kept] @ vec
            j = int(np.argmax(new_sims))
            if new_sims[j] > best:
                best, of = float(new_sims[j]), ids[kept[j]]
        if of is not None and best >= threshold:
            result.append(Duplicate(of, "embedding", round(best, 4)))
        else:
            kept.append(i)
            result.append(None)
    return result
