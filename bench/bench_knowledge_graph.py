"""Knowledge-graph benchmark (results in bench/results/knowledge_graph.json): the knowledge_graph
method through the stage runner (no Airflow) on chapters of the Rust book in
../shared/corpora/markdown_docs (MIT / Apache-2.0; read in place), else on the shipped sample.

Two configurations, each written to its own section of the results file:
- ``no_llm``: co-occurrence extraction, template reports and questions: graph size, stage times, QA
  counts and rejections, and the local-retrieval check (below);
- ``embedded``: the LLM path with the embedded SmolLM2-135M (started here), limited to
  ``--max-chunks`` chunks: extraction time per chunk, what the model's extraction gives, the
  rejections of its reports and questions. No real model is reachable from this machine.

The retrieval check: for every multi-hop question kept, the entities its question names are the
seeds; the share of the path's hop chunks found in the top k chunks by personalised PageRank
(HippoRAG-style) against the baseline that ranks only the seed entities' own chunks.

Run: .venv/bin/python bench/bench_knowledge_graph.py [--mode no_llm|embedded|both] [--max-chunks N]
     [--chapters a.md,b.md] [--check]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, provenance, shown, stale, write_result  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "markdown_docs"
SAMPLE = ROOT / "include" / "sample_data" / "markdown_qa" / "docs"
CHAPTERS = ("ch04-01-what-is-ownership.md", "ch04-02-references-and-borrowing.md")
MEASURED = ["bench/bench_knowledge_graph.py", "synth_tasks/methods/knowledge_graph/*.py",
            "synth_tasks/include/prompts/knowledge_graph/*.txt"]
K = 5


def documents(chapters: tuple[str, ...]) -> tuple[Path, str]:
    """A folder holding the chapters (links to them, read in place), and where they came from."""
    folder = Path(tempfile.mkdtemp(prefix="kg-bench-docs-"))
    found = [CORPUS / c for c in chapters if (CORPUS / c).is_file()]
    if not found:
        found, source = sorted(SAMPLE.glob("*.md")), str(SAMPLE.relative_to(ROOT.parent))
    else:
        source = str(CORPUS.relative_to(ROOT.parent))
    for f in found:
        (folder / f.name).symlink_to(f)
    return folder, source


def retrieval_check(layout, final: list[dict], k: int = K) -> dict:
    """Hop-chunk recall@k of personalised PageRank vs the seed entities' own chunks."""
    from synth_tasks.methods.knowledge_graph.retrieval import local_chunks, mentions, name_index
    from synth_tasks.methods.knowledge_graph.stages import load_graph

    g, _, _ = load_graph(layout.store, f"{layout.base}/graph")
    index = name_index(g)
    found = {"ppr": 0, "seed_chunks": 0}
    total = questions = 0
    for r in final:
        if r["kind"] != "multi_hop":
            continue
        seeds = mentions(r["question"], index)
        ppr = [u for u, _ in local_chunks(g, seeds, k)]
        own: dict[str, int] = {}
        for s in seeds:
            for u in g.nodes[s]["text_unit_ids"]:
                own[u] = own.get(u, 0) + g.degree(s)
        base = sorted(own, key=lambda u: (-own[u], u))[:k]
        for u in r["chunk_ids"]:
            found["ppr"] += u in ppr
            found["seed_chunks"] += u in base
        total += len(r["chunk_ids"])
        questions += 1
    return {"k": k, "questions": questions, "hop_chunks": total,
            "recall_at_k": {name: round(n / total, 3) if total else None for name, n in found.items()}}


def run(mode: str, folder: Path, max_chunks: int | None) -> dict:
    from synth_tasks.config import parse_config
    from synth_tasks.methods import knowledge_graph as KG
    from synth_tasks.pipeline import run_method
    from synth_tasks.storage import RunLayout, Store

    values = {"input_path": str(folder), "train_ratio": 0.8, "no_llm": mode == "no_llm", "max_chunks": max_chunks,
              "paths_per_length": 20, "max_reports": 20}
    endpoint_for = None
    if mode == "embedded":
        from synth_tasks.llm import embedded
        from synth_tasks.llm.endpoint import resolve_endpoint

        embedded.start()
        endpoint = resolve_endpoint()
        endpoint_for = lambda _: endpoint  # noqa: E731
        values |= {"max_reports": 2, "paths_per_length": 2, "max_tokens": 256, "extraction_max_tokens": 400,
                   "summary_min_chars": 4000, "request_timeout_s": 900}
    cfg = parse_config(KG.KnowledgeGraphConfig, values)
    layout = RunLayout(Store(f"file://{tempfile.mkdtemp(prefix='kg-bench-')}"), "knowledge_graph", "bench")
    started = time.monotonic()
    results = run_method(KG.METHOD, cfg, layout, f"file://{folder}", endpoint_for=endpoint_for,
                         run_info={"run_id": "bench", "run_timestamp": "bench"})
    wall = time.monotonic() - started
    summary = layout.store.read_json(results["export"]["summary"])
    final = [json.loads(line) for key in ("train_jsonl", "validation_jsonl")
             for line in layout.store.read_bytes(summary["outputs"][key]).decode().splitlines()]
    stages = summary["stages"]
    extract = stages["extract"]
    out = {"config": {k: v for k, v in values.items() if k != "input_path"}, "wall_seconds": round(wall, 1),
           "chunks": stages["prepare"]["produced"], "graph": summary["info"]["graph"] | {"url": None},
           "extraction": {"seconds": extract["seconds"], "seconds_per_chunk": round(extract["seconds"] / max(
               1, extract["input"]), 2), "kept": extract["kept"], "failed": extract["failed"],
               "filtered": extract["filtered"], "error_kinds": extract["error_kinds"],
               "repairs": {k: v for k, v in extract["counts"].items() if k.startswith("repair_")}},
           "reports": {k: stages["report"][k] for k in ("input", "kept", "filtered", "failed", "filter_reasons",
                                                        "error_kinds")},
           "paths": {k: stages["plan"]["counts"].get(k, 0) for k in ("paths_2_hops", "paths_3_hops")}
           | {"shortcut_rejected": stages["plan"]["filter_reasons"].get("shortcut_edge", 0)},
           "questions": {k: stages["check"][k] for k in ("input", "kept", "filtered", "filter_reasons")}
           | {"generate_failed": stages["generate"]["failed"], "generate_error_kinds": stages["generate"]["error_kinds"],
              "kept_by_kind": {k: sum(r["kind"] == k for r in final) for k in ("multi_hop", "global")}},
           "split": summary["counts"], "usage": summary["usage"], "models": summary["models"],
           "retrieval": retrieval_check(layout, final)}
    if mode == "embedded":
        from synth_tasks.llm import embedded

        embedded.stop()
        out["examples"] = [{k: r[k] for k in ("kind", "question", "answer", "path_titles", "chunk_ids")} for r in final[:3]]
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        problem = stale("knowledge_graph.json")
        print(problem or "bench/results/knowledge_graph.json describes the code here")
        return 1 if problem else 0
    mode = args[args.index("--mode") + 1] if "--mode" in args else "no_llm"
    max_chunks = int(args[args.index("--max-chunks") + 1]) if "--max-chunks" in args else None
    chapters = tuple(args[args.index("--chapters") + 1].split(",")) if "--chapters" in args else CHAPTERS
    os.environ.setdefault("SYNTH_RUN_DIR", tempfile.mkdtemp(prefix="kg-bench-run-"))
    folder, source = documents(chapters)
    path = RESULTS / "knowledge_graph.json"
    report = json.loads(path.read_text()) if path.is_file() else {}
    report |= {"benchmark": "knowledge_graph", "provenance": provenance(MEASURED), "documents_from": source,
               "chapters": sorted(p.name for p in folder.iterdir())}
    for m in (("no_llm", "embedded") if mode == "both" else (mode,)):
        report[m] = run(m, folder, max_chunks if m == "embedded" or "--max-chunks" in args else None)
        print(m, json.dumps({k: report[m][k] for k in ("wall_seconds", "chunks", "graph", "paths", "questions",
                                                       "retrieval")}, indent=1))
    out = write_result("knowledge_graph.json", report)
    print(f"written to {shown(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
