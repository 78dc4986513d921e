"""``select``, over all shards at once: duplicates out, then a cluster-balanced sample."""

from __future__ import annotations

from synth_tasks.methods.instruct.config import InstructConfig
from synth_tasks.methods.instruct.records import best_response


def select(run, records: list[dict]) -> None:
    """Exact and MinHash near-duplicate instructions (the better-scored copy stays), then k-means
    over sentence embeddings and, with ``target_size``, a cluster-balanced sample that favours the
    best-scored in each cluster. The diversity metrics before and after sampling go to the run
    summary (``info.diversity``)."""
    from synth_tasks.quality import diversity
    from synth_tasks.quality.dedup import exact_duplicate_of, minhash_duplicate_of

    cfg: InstructConfig = run.cfg
    # best first, so the copy a duplicate group keeps is its best-scored one
    records = sorted(records, key=lambda r: (-best_response(r)["scores"]["overall"], r["id"]))
    texts = [r["instruction"] for r in records]
    exact = exact_duplicate_of(texts)
    near = minhash_duplicate_of(texts, threshold=cfg.near_duplicate_threshold, shingle_words=3)
    unique = []
    for r, ex, nd in zip(records, exact, near):
        reason = (f"exact_duplicate: of {records[ex]['id']}" if ex is not None else
                  f"near_duplicate: of {records[nd]['id']}" if nd is not None else None)
        if reason:
            run.filtered(r["id"], reason, instruction=r["instruction"])
        else:
            unique.append(r)

    embeddings = diversity.embed([r["instruction"] for r in unique])
    k = cfg.n_clusters or max(1, round(len(unique) ** 0.5))
    labels = diversity.kmeans_labels(embeddings, k, seed=cfg.seed) if unique else []
    before = diversity.diversity_report([r["instruction"] for r in unique], embeddings, labels)
    chosen = list(range(len(unique)))
    if cfg.target_size is not None and cfg.target_size < len(unique):
        scores = [best_response(r)["scores"]["overall"] for r in unique]
        chosen = diversity.cluster_balanced_sample(labels, cfg.target_size, seed=cfg.seed, scores=scores)
    chosen_set = set(chosen)
    selected = []
    for i, r in enumerate(unique):
        r = r | {"cluster": int(labels[i])}
        if i in chosen_set:
            run.kept(r["id"], r)
            selected.append(r)
        else:
            run.filtered(r["id"], f"diversity_sample: cluster {int(labels[i])} over its share of "
                         f"target_size={cfg.target_size}", instruction=r["instruction"])
    after = diversity.diversity_report([r["instruction"] for r in selected], embeddings[chosen],
                                       [labels[i] for i in chosen])
    run.info["diversity"] = {"clusters": int(k) if unique else 0, "before_sampling": before, "selected": after}
