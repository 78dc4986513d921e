"""Selection within a domain: cached embeddings, clustering (the seed's community detection or
k-means), sampling each cluster in proportion to its size, and the few-shot neighbours."""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections import defaultdict

import numpy as np

log = logging.getLogger(__name__)

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
UNASSIGNED = -1  # community detection leaves items in no community: they form one cluster of their own


# -- embeddings, cached by text hash in the staging store -------------------------------------
def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class EmbeddingCache:
    """Unit embeddings by SHA-256 of the text under ``{data root}/_cache/embeddings/{model}/``, in
    256 Parquet files by the hash's first two hex digits, so every DAG and re-run on the same
    root reuses them. Two runs adding to one file at the same moment can lose one run's additions
    (last write wins): a cache miss later, never a wrong vector."""

    def __init__(self, store, model: str = EMBEDDING_MODEL):
        self.store, self.model = store, model
        self.computed = 0  # texts embedded by this object (not served from the cache)

    def _file(self, prefix: str) -> str:
        return self.store.join("_cache", "embeddings", self.model, f"{prefix}.parquet")

    def embed(self, texts: list[str], embed_fn=None) -> np.ndarray:
        if embed_fn is None:
            from synth_tasks.quality.diversity import embed as embed_fn
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        hashes = [text_hash(t) for t in texts]
        by_prefix: dict[str, dict[str, np.ndarray]] = {}
        for prefix in sorted({h[:2] for h in hashes}):
            url = self._file(prefix)
            rows = self.store.read_parquet(url) if self.store.exists(url) else []
            by_prefix[prefix] = {r["hash"]: np.asarray(r["vector"], dtype=np.float32) for r in rows}
        missing = sorted({h: t for h, t in zip(hashes, texts) if h not in by_prefix[h[:2]]}.items())
        if missing:
            vectors = embed_fn([t for _, t in missing])
            self.computed += len(missing)
            touched = set()
            for (h, _), v in zip(missing, vectors):
                by_prefix[h[:2]][h] = np.asarray(v, dtype=np.float32)
                touched.add(h[:2])
            for prefix in sorted(touched):
                self.store.write_parquet(self._file(prefix), [{"hash": h, "vector": v.tolist()}
                                                              for h, v in sorted(by_prefix[prefix].items())])
        return np.stack([by_prefix[h[:2]][h] for h in hashes])


# -- clustering ---------------------------------------------------------------------------------
def community_labels(embeddings: np.ndarray, threshold: float, min_size: int) -> np.ndarray:
    """sentence-transformers' community detection (the seed's clustering): items with at least
    ``min_size`` neighbours above cosine ``threshold`` form communities; the rest get UNASSIGNED.
    Quadratic in the number of items."""
    from sentence_transformers.util import community_detection

    labels = np.full(len(embeddings), UNASSIGNED, dtype=np.int64)
    if len(embeddings) == 0:
        return labels
    communities = community_detection(embeddings, threshold=threshold, min_community_size=min(min_size, len(embeddings)),
                                      batch_size=1024)
    for c, members in enumerate(communities):
        labels[list(members)] = c
    return labels


def kmeans_labels(embeddings: np.ndarray, k: int, seed: int, minibatch_above: int) -> np.ndarray:
    """k-means (the quality layer's), MiniBatchKMeans above ``minibatch_above`` items."""
    if len(embeddings) <= minibatch_above:
        from synth_tasks.quality.diversity import kmeans_labels as full_kmeans

        return np.asarray(full_kmeans(embeddings, k, seed=seed))
    from sklearn.cluster import MiniBatchKMeans

    k = max(1, min(k, len(embeddings)))
    return MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3).fit_predict(embeddings)


def cluster(embeddings: np.ndarray, cfg) -> tuple[np.ndarray, dict]:
    """Labels and how they were made: community detection up to ``community_max_items`` items (it
    is quadratic), k-means above that or when asked for."""
    n = len(embeddings)
    mode = cfg.clustering
    note = None
    if mode == "community" and n > cfg.community_max_items:
        note = (f"community detection refused for {n} items > community_max_items {cfg.community_max_items} "
                "(quadratic): k-means instead")
        log.warning(note)
        mode = "kmeans"
    started = time.monotonic()
    if n == 0:
        labels = np.zeros(0, dtype=np.int64)
    elif mode == "community":
        labels = community_labels(embeddings, cfg.community_threshold, cfg.community_min_size)
    else:
        k = cfg.n_clusters or max(1, round(math.sqrt(n)))
        labels = kmeans_labels(embeddings, k, cfg.seed, cfg.minibatch_above)
    info = {"mode": mode, "seconds": round(time.monotonic() - started, 3)}
    if mode == "kmeans" and n:
        info["algorithm"] = "MiniBatchKMeans" if n > cfg.minibatch_above else "KMeans"
    if note:
        info["note"] = note
    return labels, info


# -- proportional sampling ----------------------------------------------------------------------
def proportional_quotas(sizes: dict[int, int], target: int) -> dict[int, int]:
    """Items to take from each cluster: ``floor(size * target / total)``, at least one, never more
    than the cluster has; the slots flooring leaves free go to the largest remainders (then the
    larger cluster, then the lower id), so the quotas add up to ``target``. When the at-least-one
    rule pushes the sum over ``target``, the largest quotas give one back each in turn, never below
    one; with more clusters than ``target`` only the largest clusters get one. With ``target`` at or
    above the total, every item."""
    total = sum(sizes.values())
    if target >= total:
        return dict(sizes)
    if len(sizes) > target:
        keep = sorted(sizes, key=lambda c: (-sizes[c], c))[:target]
        return {c: (1 if c in keep else 0) for c in sizes}
    quotas = {c: min(s, max(1, s * target // total)) for c, s in sizes.items()}
    by_remainder = sorted(sizes, key=lambda c: (-((sizes[c] * target) % total), -sizes[c], c))
    while sum(quotas.values()) < target:
        c = next(c for c in by_remainder if quotas[c] < sizes[c])
        quotas[c] += 1
        by_remainder.remove(c)
        by_remainder.append(c)
    while sum(quotas.values()) > target:
        c = min((c for c in quotas if quotas[c] > 1), key=lambda c: (-quotas[c], c))
        quotas[c] -= 1
    return quotas


def proportional_sample(labels, target: int, seed: int, scores=None) -> list[int]:
    """Indices of the sample: each cluster's quota, best ``scores`` first within a cluster where
    they exist (a seeded shuffle orders ties and the unscored)."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        members[int(label)].append(i)
    quotas = proportional_quotas({c: len(m) for c, m in members.items()}, target)
    rng = random.Random(seed)
    chosen: list[int] = []
    for c in sorted(members):
        idx = list(members[c])
        rng.shuffle(idx)
        if scores is not None:
            idx.sort(key=lambda i: -(scores[i] if scores[i] is not None else -math.inf))
        chosen += idx[: quotas[c]]
    return sorted(chosen)


# -- few-shot neighbours ------------------------------------------------------------------------
def nearest_examples(embeddings: np.ndarray, queries: list[int], allowed: np.ndarray, k: int) -> dict[int, list[int]]:
    """For each query index, the ``k`` most similar items (cosine; embeddings are unit length) among
    ``allowed`` (a boolean mask), never the query itself."""
    if k == 0 or not queries:
        return {q: [] for q in queries}
    candidates = np.flatnonzero(allowed)
    out: dict[int, list[int]] = {}
    for start in range(0, len(queries), 512):
        block = queries[start : start + 512]
        sims = embeddings[block] @ embeddings[candidates].T
        for row, q in enumerate(block):
            s = sims[row].copy()
            s[candidates == q] = -np.inf  # never the item itself
            top = np.argsort(-s, kind="stable")[: k + 1]
            out[q] = [int(candidates[j]) for j in top if np.isfinite(s[j])][:k]
    return out
