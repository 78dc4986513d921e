"""Quality-layer benchmark (results in bench/results/quality.json): how the shared filters scale.

1. Self-Instruct novelty: ms per candidate checked against a pool of N instructions, with the
   rapidfuzz ROUGE-L used in the pipeline and with the reference rouge-score package (on a smaller
   pool, where it is tolerable), and whether the two take the same keep/drop decisions.
2. Dedup: exact + MinHash near-duplicate passes over all texts (texts/s).
3. Diversity: sentence embeddings (sentences/s, CPU), k-means + cluster-balanced sampling.

Texts: GSM8K train+test questions from ../shared/corpora/gsm8k (8,792) when present, else the
1,319 test questions shipped in include/benchmarks. Run: .venv/bin/python bench/bench_quality.py
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, provenance, shown, stale, write_result  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "gsm8k"
# What the numbers depend on: a change to any of these makes quality.json stale (--check).
MEASURED = ["bench/bench_quality.py", "bench/_common.py", "synth_tasks/methods/instruct/filters.py",
            "synth_tasks/quality/dedup.py", "synth_tasks/quality/diversity.py"]


def load_texts() -> tuple[list[str], str]:
    files = [CORPUS / "train.jsonl", CORPUS / "test.jsonl"]
    if not all(f.is_file() for f in files):
        files = [ROOT / "include" / "benchmarks" / "gsm8k_test.jsonl"]
    texts = [json.loads(line)["question"] for f in files for line in f.read_text("utf-8").splitlines()]
    return texts, ", ".join(str(f.relative_to(ROOT.parent)) for f in files)


def bench_novelty(texts: list[str]) -> dict:
    from rouge_score import rouge_scorer

    from synth_tasks.methods.instruct.filters import RougeNovelty, rouge_l

    rng = random.Random(0)
    candidates = rng.sample(texts, 100)
    pool_texts = [t for t in texts if t not in set(candidates)]
    out = {}
    for n in (1000, len(pool_texts)):
        novelty = RougeNovelty(0.7)
        for i, t in enumerate(pool_texts[:n]):
            novelty.add(str(i), t)
        start = time.perf_counter()
        fast = [novelty(c).keep for c in candidates]
        out[f"rapidfuzz_ms_per_candidate_pool_{n}"] = round(1000 * (time.perf_counter() - start) / len(candidates), 3)
    # the reference implementation, pool of 1000, 20 candidates
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = pool_texts[:1000]
    start = time.perf_counter()
    reference = [max(scorer.score(p, c)["rougeL"].fmeasure for p in pool) <= 0.7 for c in candidates[:20]]
    ref_ms = 1000 * (time.perf_counter() - start) / 20
    novelty = RougeNovelty(0.7)
    for i, t in enumerate(pool):
        novelty.add(str(i), t)
    agree = [novelty(c).keep for c in candidates[:20]] == reference
    pairs = [(rng.choice(pool), c) for c in candidates[:200]]
    max_diff = max(abs(rouge_l(a, b) - scorer.score(a, b)["rougeL"].fmeasure) for a, b in pairs)
    out |= {"rouge_score_ms_per_candidate_pool_1000": round(ref_ms, 1),
            "speedup_pool_1000": round(ref_ms / out["rapidfuzz_ms_per_candidate_pool_1000"], 1),
            "same_decisions_as_rouge_score": agree, "max_abs_score_difference_200_pairs": max_diff,
            "candidates_kept_pool_full": sum(fast)}
    return out


def bench_dedup(texts: list[str]) -> dict:
    from synth_tasks.quality.dedup import exact_duplicate_of, minhash_duplicate_of

    start = time.perf_counter()
    exact = exact_duplicate_of(texts)
    t_exact = time.perf_counter() - start
    start = time.perf_counter()
    near = minhash_duplicate_of(texts, threshold=0.7, shingle_words=3)
    t_near = time.perf_counter() - start
    return {"texts": len(texts), "exact_texts_per_s": round(len(texts) / t_exact),
            "minhash_texts_per_s": round(len(texts) / t_near),
            "exact_duplicates": sum(x is not None for x in exact), "near_duplicates": sum(x is not None for x in near)}


def bench_diversity(texts: list[str]) -> dict:
    from synth_tasks.quality import diversity

    sample = texts[:2000]
    diversity.embed(sample[:16])  # load the model outside the timing
    start = time.perf_counter()
    emb = diversity.embed(sample)
    t_embed = time.perf_counter() - start
    start = time.perf_counter()
    k = round(len(sample) ** 0.5)
    labels = diversity.kmeans_labels(emb, k)
    chosen = diversity.cluster_balanced_sample(labels, 500)
    t_cluster = time.perf_counter() - start
    before = diversity.diversity_report(sample, emb, labels)
    after = diversity.diversity_report([sample[i] for i in chosen], emb[chosen], [labels[i] for i in chosen])
    return {"sentences": len(sample), "embed_sentences_per_s": round(len(sample) / t_embed),
            "kmeans_k": k, "kmeans_and_sample_500_s": round(t_cluster, 2),
            "topic_entropy_before": before["topic_entropy"]["normalized"],
            "topic_entropy_after_balanced_500": after["topic_entropy"]["normalized"]}


def main() -> int:
    if "--check" in sys.argv[1:]:
        problem = stale("quality.json")
        print(problem or "bench/results/quality.json describes the code here")
        return 1 if problem else 0
    prov = provenance(MEASURED)
    texts, source = load_texts()
    result = {"benchmark": "quality", "provenance": prov, "texts": source,
              "novelty": bench_novelty(texts), "dedup": bench_dedup(texts), "diversity": bench_diversity(texts)}
    out = write_result("quality.json", result)
    print(json.dumps(result, indent=2))
    print(f"written to {shown(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
