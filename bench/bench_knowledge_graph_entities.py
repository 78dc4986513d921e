"""Knowledge-graph entity benchmark (results in bench/results/knowledge_graph_entities.json): the
no-LLM extraction and the entity resolution of the knowledge_graph method scored against the
hand-labelled fixtures in tests/fixtures/knowledge_graph/ (original text, not from any book):

- ``rust_concurrency``: the fixture the extraction and resolution rules were fixed on;
- ``python_asyncio``: written after the rules were fixed, scored as it came out.

Per fixture: entity precision (resolved entities with a gold surface form) and recall (gold
entities found), resolution pairwise precision and recall over the gold forms the extraction found
and over every gold form fed to resolution directly, the must-not-merge pairs merged, and the
relations extracted with how many of them a reader accepted (judged by hand in the gold file;
a relation not judged there is listed as unjudged). The text is cut into chunks as the prepare
stage cuts it (600 tokens, 100 overlap, the method's defaults).

On text nobody wrote for it: ``--sample-relations SEED`` extracts the 32 chapters of the Rust book
in ../shared/corpora/markdown_docs (cut as above) and prints 20 of their relations drawn with that
seed, for reading by hand (docs/methods/knowledge_graph.md gives the counts read; nothing is written).

Run: .venv/bin/python bench/bench_knowledge_graph_entities.py [--check] [--sample-relations SEED]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import provenance, shown, stale, write_result  # noqa: E402

FIXTURES = ("rust_concurrency", "python_asyncio")
MEASURED = ["bench/bench_knowledge_graph_entities.py", "synth_tasks/methods/knowledge_graph/cooccurrence.py",
            "synth_tasks/methods/knowledge_graph/resolve.py", "synth_tasks/methods/knowledge_graph/stages.py",
            "tests/synth_tasks/methods/knowledge_graph_resolution.py", "tests/fixtures/knowledge_graph/*"]
RESULT = "knowledge_graph_entities.json"


def relations(extractions, gold: dict) -> dict:
    """The distinct relations (unordered pairs of names) the chunks gave, with the hand judgement."""
    judged = {frozenset((j["source"], j["target"])): j for j in gold.get("relations_judged", [])}
    seen: dict[frozenset, dict] = {}
    for ex in extractions:
        for r in ex.relations:
            seen.setdefault(frozenset((r["source"], r["target"])), r)
    rows = [{"source": r["source"], "target": r["target"], "description": r["description"],
             "accepted": judged[pair]["accepted"] if pair in judged else None} for pair, r in seen.items()]
    done = [r for r in rows if r["accepted"] is not None]
    return {"distinct": len(rows), "mentions": sum(len(ex.relations) for ex in extractions), "judged": len(done),
            "accepted": sum(r["accepted"] for r in done), "unjudged": [r for r in rows if r["accepted"] is None],
            "rows": sorted(rows, key=lambda r: (r["source"], r["target"]))}


def run(name: str) -> dict:
    from tests.synth_tasks.methods.knowledge_graph_resolution import (extract_and_resolve, load_fixture,
                                                                      score_entities, score_resolution_rules)

    text, gold = load_fixture(name)
    start = time.perf_counter()
    extractions, entities = extract_and_resolve(text)
    seconds = time.perf_counter() - start
    return {"words": len(text.split()), "chunks": len(extractions), "gold_entities": len(gold["entities"]),
            "extract_and_resolve_seconds": round(seconds, 3), "entities": score_entities(entities, gold),
            "resolution_of_gold_forms": score_resolution_rules(gold), "relations": relations(extractions, gold)}


def sample_relations(seed: int, n: int = 20) -> int:
    import random

    from synth_tasks.methods.knowledge_graph import cooccurrence
    from synth_tasks.methods.knowledge_graph.stages import chunk_document

    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "markdown_docs"
    chapters = sorted(corpus.glob("ch*.md"))
    if not chapters:
        print(f"{corpus} is missing: the sample reads the Rust book there")
        return 1
    found = [r for f in chapters for chunk, _ in chunk_document(f.read_text(), 600, 100)
             for r in cooccurrence.extract(chunk, ("concept", "technology")).relations]
    print(f"{len(found)} relations from {len(chapters)} chapters; {n} drawn with seed {seed}:")
    for r in random.Random(seed).sample(found, min(n, len(found))):
        print(f"{r['source']!r} -> {r['target']!r} | {r['description']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--sample-relations" in args:
        return sample_relations(int(args[args.index("--sample-relations") + 1]))
    if "--check" in args:
        problem = stale(RESULT)
        print(problem or f"bench/results/{RESULT} describes the code here")
        return 1 if problem else 0
    report = {"benchmark": "knowledge_graph_entities", "provenance": provenance(MEASURED),
              "fixtures": {name: run(name) for name in FIXTURES}}
    print(f"{'fixture':18} {'entities':>8} {'P':>6} {'R':>6} {'res P':>6} {'res R':>6} {'gold res P/R':>13} "
          f"{'relations accepted':>19}")
    for name, r in report["fixtures"].items():
        e, g, rel = r["entities"], r["resolution_of_gold_forms"], r["relations"]
        print(f"{name:18} {e['entities']:>8} {e['precision']:>6.3f} {e['recall']:>6.3f} "
              f"{e['resolution_precision']:>6.3f} {e['resolution_recall']:>6.3f} "
              f"{g['precision']:>6.3f}/{g['recall']:<6.3f} {rel['accepted']:>5}/{rel['judged']} "
              f"({len(rel['unjudged'])} unjudged)")
    out = write_result(RESULT, report)
    print(f"written to {shown(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
