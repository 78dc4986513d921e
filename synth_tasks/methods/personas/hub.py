"""The persona hub: every persona of a published run, in the data root beside the LLM cache and
outside any partition (``{root}/_hub/personas/part-{partition}.parquet``), so it outlives the
partitions' working folders and no run id can name it.

Only a run that publishes adds to the hub. ``dedup`` reads the hub as it is and writes this run's
new personas to a pending part in the partition's own ``hub_pending/`` folder (an artifact, cleared
when the partition runs again); the export, once every stage has succeeded, copies it to the
partition's hub part with one atomic write. A run that fails before its export leaves the hub as it
was, and a re-run of a partition replaces that partition's part and reads the hub without it, so it
deduplicates against everything else exactly as the first try did.

Dedup as in the paper: MinHash over words (128 permutations, estimated Jaccard >= 0.9), then
MiniLM cosine >= 0.9, each pass against the hub and the run's earlier personas. Embeddings are kept
in the hub parts, so a run embeds only its own personas."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np

HUB_DIR = ("_hub", "personas")
HUB_COLUMNS = ("id", "description", "domain", "expertise", "relation", "origin_text_id", "parent_id",
               "root_persona_id", "depth", "lineage", "created_partition", "created_date", "embedding")
# Columns without which a part cannot be deduplicated against or drawn from.
REQUIRED_COLUMNS = ("id", "description", "created_partition", "created_date")


class HubError(RuntimeError):
    """A hub part that cannot be used; the message names the file and what to do about it."""


def hub_dir(store) -> str:
    return store.join(*HUB_DIR)


def hub_part(store, partition: str) -> str:
    return f"{hub_dir(store)}/part-{partition}.parquet"


def pending_part(folder: str) -> str:
    """This run's new personas, waiting in the partition's ``hub_pending/`` folder for the export."""
    return f"{folder}/personas.parquet"


def read_hub_part(store, url: str) -> list[dict]:
    """One hub part's personas. A part that is not readable Parquet, or lacks a required column,
    raises HubError naming the file: skipping it would let this run take its personas in again as
    new ones and leave them out of pool=hub, a hub quietly no longer free of duplicates."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = store.read_bytes(url)  # a storage error (network, permissions) stays itself: a retry may fix it
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise HubError(f"hub part {url} is unreadable ({type(exc).__name__}: {exc}): restore it, re-run the "
                       f"partition it is named after (which rewrites it), or delete it (its personas then "
                       f"leave the hub)") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing and table.num_rows:  # a run that added no persona writes a part without columns
        raise HubError(f"hub part {url} lacks the columns {missing} (it has {table.column_names}): restore it, "
                       f"re-run the partition it is named after, or delete it")
    return table.to_pylist()


def read_hub(store, *, except_partition: str | None = None) -> list[dict]:
    """Every hub persona, oldest first (the part of ``except_partition`` left out). Raises HubError
    naming the first part that cannot be read."""
    skip = hub_part(store, except_partition) if except_partition else None
    parts = [u for u in store.glob(f"{hub_dir(store)}/part-*.parquet") if u != skip]
    rows = [r for url in parts for r in read_hub_part(store, url)]
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


def write_pending_part(store, folder: str, personas: list[dict]) -> str:
    """This run's new personas, in the hub's columns, to the pending part in ``folder`` (written even
    when empty: publishing it then empties this partition's part of an earlier run)."""
    return store.write_parquet(pending_part(folder), [{k: p.get(k) for k in HUB_COLUMNS} for p in personas])


def publish_pending_part(store, folder: str, partition: str) -> str:
    """The pending part in ``folder`` becomes ``partition``'s hub part (one atomic write, replacing
    the part of an earlier run of the partition). Returns the hub part's URL."""
    pending = pending_part(folder)
    if not store.exists(pending):
        raise HubError(f"the pending hub part {pending} that dedup writes is missing: run the partition again")
    return store.write_bytes(hub_part(store, partition), store.read_bytes(pending))


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
