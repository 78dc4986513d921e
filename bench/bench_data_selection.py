"""data_selection on the full GSM8K train set (results in bench/results/data_selection.json).

The whole method (``run_method``: read, decontaminate, dedup, embed, cluster, sample, few-shot,
tokenize, export) on the 7,473 train questions of ../shared/corpora/gsm8k, one domain with a
target of 2,000, twice on one fresh data root: k-means first (the embedding cache is cold, so its
embedding time is the real one), then community detection (embeddings from the cache). Then, on
the same embeddings, MiniBatchKMeans and the time community detection takes, for the
``community_max_items`` limit. Before all that, decontamination's false positives: every GSM8K
train item checked against GSM8K test with the arithmetic left in the n-grams (as before issue #25)
and cut out (now), the items each flags, and how many verbatim test items each can still detect.
Run: .venv/bin/python bench/bench_data_selection.py (--check: is the results file stale?)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, provenance, shown, stale, write_result  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "gsm8k"
RESULT = "data_selection.json"
TARGET = 2000
MEASURED = ["bench/bench_data_selection.py", "bench/_common.py", "synth_tasks/methods/data_selection/*.py",
            "synth_tasks/quality/diversity.py", "synth_tasks/quality/dedup.py", "synth_tasks/quality/decontamination.py"]


def decontamination_figures() -> dict:
    """GSM8K train (question + answer, as the screen stage checks it) against GSM8K test: items
    flagged with the arithmetic left in the 13-grams and cut out, each flagged item with its n-gram
    (to read by eye), and the test items that copied verbatim would no longer be caught."""
    from synth_tasks.quality.decontamination import Decontaminator

    train = [json.loads(line) for line in (CORPUS / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (CORPUS / "test.jsonl").read_text().splitlines()]
    report: dict = {"train_items": len(train), "test_items": len(test)}
    for name, strip in (("arithmetic_kept", False), ("arithmetic_cut", True)):
        check = Decontaminator(("gsm8k_test",), strip_arithmetic=strip)
        started = time.monotonic()
        flagged = {}
        for row, item in enumerate(train, start=1):
            verdict = check(item["question"] + "\n" + item["answer"])
            if not verdict.keep:
                flagged[row] = verdict.reason
        report[name] = {"flagged": len(flagged), "flagged_rate": round(len(flagged) / len(train), 5),
                        "seconds": round(time.monotonic() - started, 2),
                        "test_questions_not_caught_verbatim": sum(check(t["question"]).keep for t in test),
                        "test_answers_not_caught_verbatim": sum(check(t["answer"]).keep for t in test),
                        "flagged_train_lines": {str(row): reason for row, reason in flagged.items()}}
    return report


def run_mode(tmp: Path, store, mode: str) -> dict:
    from synth_tasks.methods import data_selection as ds
    from synth_tasks.pipeline import run_method
    from synth_tasks.storage import RunLayout

    cfg = ds.DataSelectionConfig(clustering=mode)
    started = time.monotonic()
    results = run_method(ds.METHOD, cfg, RunLayout(store, "data_selection", mode), f"file://{tmp}/mix.yaml")
    wall = time.monotonic() - started
    summary = store.read_json(results["export"]["summary"])
    assert summary["accounted_for"], summary["problems"]
    math = summary["info"]["selection"]["math"]
    sizes = sorted(math["cluster_sizes"].values(), reverse=True)
    return {"wall_seconds": round(wall, 1), "stages": {k: {f: v[f] for f in ("input", "kept", "filtered", "failed")}
                                                       | {"reasons": v["filter_reasons"], "seconds": v["seconds"],
                                                          "shards": v["shards"]}
                                                       for k, v in summary["stages"].items()},
            "dedup": summary["info"]["dedup"], "embedding": math["embedding"], "clustering": math["clustering"],
            "items": math["items"], "too_long": math["too_long"], "eligible": math["eligible"],
            "length_check": math["length_check"], "under_target": summary["info"]["under_target"],
            "sources": summary["info"]["sources"],
            "clusters": math["clusters"], "largest_clusters": sizes[:5],
            "unassigned": math["cluster_sizes"].get("-1", 0), "selected": math["selected"],
            "exported": summary["counts"], "diversity_before": math["diversity_before"],
            "diversity_selected": math["diversity_selected"], "tokenized": summary["info"]["tokenized"]["counts"]}


def main() -> None:
    if "--check" in sys.argv:
        print(stale(RESULT) or f"{RESULT} is current")
        return
    if not (CORPUS / "train.jsonl").is_file() or not (CORPUS / "test.jsonl").is_file():
        sys.exit(f"{CORPUS}/train.jsonl or test.jsonl is missing: this benchmark needs ../shared/corpora/gsm8k")
    prov = provenance(MEASURED)
    with tempfile.TemporaryDirectory(prefix="bench-ds-") as tmp:
        tmp_path = Path(tmp)
        os.environ["SYNTH_INPUT_ROOTS"] = f"{CORPUS},{tmp}"
        (tmp_path / "mix.yaml").write_text(
            f"domains:\n  math:\n    target: {TARGET}\n    template: math\n    sources:\n"
            f"      - {{name: gsm8k, path: {CORPUS}/train.jsonl, licence: MIT}}\n")
        from synth_tasks.methods.data_selection.selection import EmbeddingCache, cluster
        from synth_tasks.methods import data_selection as ds
        from synth_tasks.storage import Store

        store = Store(f"file://{tmp}/data")
        report = {"corpus": str((CORPUS / "train.jsonl").relative_to(ROOT.parent)), "target": TARGET,
                  "decontamination": decontamination_figures(),
                  "kmeans": run_mode(tmp_path, store, "kmeans"), "community": run_mode(tmp_path, store, "community")}
        questions = [json.loads(line)["question"].strip() for line in (CORPUS / "train.jsonl").read_text().splitlines()]
        emb = EmbeddingCache(store).embed(questions)  # all from the cache by now
        extra = {}
        for name, cfg in (("minibatch_kmeans", ds.DataSelectionConfig(minibatch_above=1)),
                          ("community_only", ds.DataSelectionConfig(clustering="community"))):
            labels, how = cluster(emb, cfg)
            extra[name] = how | {"items": len(emb), "clusters": len(set(labels.tolist()))}
        report["clustering_on_all_7473"] = extra
        report["provenance"] = prov
        print(json.dumps({k: v for k, v in report.items() if k != "provenance"}, indent=1))
        print("wrote", shown(write_result(RESULT, report)))


if __name__ == "__main__":
    main()
