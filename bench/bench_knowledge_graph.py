"""Knowledge-graph benchmark (results in bench/results/knowledge_graph.json): the knowledge_graph
method through the stage runner (no Airflow) on chapters of the Rust book in
../shared/corpora/markdown_docs (MIT / Apache-2.0; copied to a temporary folder), else on the shipped sample.

Two configurations, each written to its own section of the results file:
- ``no_llm``: co-occurrence extraction, template reports and questions: graph size, stage times, QA
  counts and rejections, and the local-retrieval check (below);
- ``embedded``: the LLM path with the embedded SmolLM2-135M (started here), limited to
  ``--max-chunks`` chunks: extraction time per chunk, what the model's extraction gives, the
  rejections of its reports and questions. No real model is reachable from this machine.
- ``quality``: the same LLM path on the embedded quality model (Qwen2.5-Coder-1.5B, `make
  llm-up MODEL=quality` fetches it), 8 chunks (``--max-chunks`` to change), up to 10 paths of each
  length, no global questions: every path's pieces, the question composed from them (or why none
  could be) and the check's verdict are listed, for reading by hand
  (the goal, >= 12 of 20 sensible and uniquely answerable, is a reader's judgement: docs/methods/
  knowledge_graph.md gives it).

The retrieval check: for every multi-hop question kept, the entities its question names are the
seeds; the share of the path's hop chunks found in the top k chunks by personalised PageRank
(HippoRAG-style) against the baseline that ranks only the seed entities' own chunks.

Run: .venv/bin/python bench/bench_knowledge_graph.py [--mode no_llm|embedded|quality|both] [--max-chunks N]
     [--chapters a.md,b.md] [--store-root DIR] [--check]
"""

from __future__ import annotations

import json
import os
import shutil
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
    """A folder holding copies of the chapters, and where they came from."""
    folder = Path(tempfile.mkdtemp(prefix="kg-bench-docs-"))
    found = [CORPUS / c for c in chapters if (CORPUS / c).is_file()]
    if not found:
        found, source = sorted(SAMPLE.glob("*.md")), str(SAMPLE.relative_to(ROOT.parent))
    else:
        source = str(CORPUS.relative_to(ROOT.parent))
    for f in found:  # copied: the input listing takes files, not links
        shutil.copyfile(f, folder / f.name)
    return folder, source


def retrieval_check(layout, final: list[dict], k: int = K) -> dict:
    """Hop-chunk recall@k of personalised PageRank vs the seed entities' own chunks, over the kept
    multi-hop questions and graph walks."""
    from synth_tasks.methods.knowledge_graph.retrieval import local_chunks, mentions, name_index
    from synth_tasks.methods.knowledge_graph.stages import load_graph

    g, _, _ = load_graph(layout.store, f"{layout.base}/graph")
    index = name_index(g)
    found = {"ppr": 0, "seed_chunks": 0}
    total = questions = 0
    for r in final:
        if r["kind"] not in ("multi_hop", "graph_walk"):
            continue
        # a question's seeds are the entities it names; a walk's, its start (as the check stage does)
        seeds = mentions(r["question"], index) if r["kind"] == "multi_hop" else [r["path"][0]]
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


def run(mode: str, folder: Path, max_chunks: int | None, store_root: str | None = None) -> dict:
    from synth_tasks.config import parse_config
    from synth_tasks.methods import knowledge_graph as KG
    from synth_tasks.pipeline import run_method
    from synth_tasks.storage import RunLayout, Store

    values = {"input_path": str(folder), "train_ratio": 0.8, "no_llm": mode == "no_llm", "max_chunks": max_chunks,
              "paths_per_length": 20, "max_reports": 20}
    endpoint_for = None
    if mode in ("embedded", "quality"):
        from synth_tasks.llm import embedded
        from synth_tasks.llm.endpoint import resolve_endpoint

        model = embedded.MODELS["smollm2" if mode == "embedded" else "quality"]
        os.environ["SYNTH_EMBEDDED_MODEL"] = model.name
        embedded.start(model)
        endpoint = resolve_endpoint()
        endpoint_for = lambda _: endpoint  # noqa: E731
        # one cache identity per model, not per server port: a rerun (--store-root) replays the answers
        values |= {"max_reports": 2, "paths_per_length": 2, "max_tokens": 256, "extraction_max_tokens": 400,
                   "summary_min_chars": 4000, "request_timeout_s": 900, "cache_namespace": f"bench-{model.name}"}
        if mode == "quality":  # enough paths for 20 questions; the reports' questions are not measured here
            values |= {"max_reports": 1, "paths_per_length": 10, "global_questions": False, "max_tokens": 320,
                       "extraction_max_tokens": 640}
    cfg = parse_config(KG.KnowledgeGraphConfig, values)
    root = store_root or tempfile.mkdtemp(prefix="kg-bench-")
    layout = RunLayout(Store(f"file://{root}"), "knowledge_graph", "bench")
    started = time.monotonic()
    try:
        results = run_method(KG.METHOD, cfg, layout, f"file://{folder}", endpoint_for=endpoint_for,
                             run_info={"run_id": "bench", "run_timestamp": "bench"})
    finally:
        if endpoint_for is not None:
            embedded.stop(model)
    wall = time.monotonic() - started
    summary = layout.store.read_json(results["export"]["summary"])
    final = [json.loads(line) for key in ("train_jsonl", "validation_jsonl")
             for line in layout.store.read_bytes(summary["outputs"][key]).decode().splitlines()]
    stages = summary["stages"]
    extract = stages["extract"]
    out = {"config": {k: v for k, v in values.items() if k not in ("input_path", "cache_namespace")},
           "wall_seconds": round(wall, 1),
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
              "kept_by_kind": {k: sum(r["kind"] == k for r in final) for k in ("multi_hop", "graph_walk", "global")}},
           "split": summary["counts"], "usage": summary["usage"], "models": summary["models"],
           "retrieval": retrieval_check(layout, final)}
    if mode in ("embedded", "quality"):
        out["examples"] = [{k: r[k] for k in ("kind", "question", "answer", "path_titles", "chunk_ids")} for r in final[:3]]
    if mode == "quality":
        out["multi_hop_written"] = multi_hop_written(layout)
    return out


def multi_hop_written(layout) -> list[dict]:
    """Every multi-hop question composed from the model's pieces (generate's output), with its
    pieces, path, relation types and evidence, and the check's verdict: kept, or the filter reason;
    then every path whose pieces could not be composed, with the reason."""
    store, base = layout.store, layout.base

    def rows(folder: str) -> list[dict]:
        return [r for url in store.glob(f"{base}/{folder}/*.parquet") for r in store.read_parquet(url)]

    outcome = {r["record_id"]: r["reason"] or r["outcome"] for r in rows("_ledger/check")}
    planned = {r["id"]: r for r in rows("plan")}
    composed = sorted((r for r in rows("generate") if r.get("kind") == "multi_hop"), key=lambda r: r["id"])
    not_composed = sorted(rows("_dropped/generate"), key=lambda r: r["id"])
    return [{"id": r["id"], "question": r["question"], "pieces": json.loads(r["qa"])["pieces"], "answer": r["answer"],
             "path": r["path_titles"], "relation_types": r["hop_types"], "evidence": r["hop_evidence"],
             "outcome": outcome.get(r["id"], "?")} for r in composed] + [
        {"id": r["id"], "question": None, "pieces": json.loads(r["pieces"]), "answer": None,
         "path": planned[r["id"]]["path_titles"], "relation_types": planned[r["id"]]["hop_types"],
         "evidence": planned[r["id"]]["hop_evidence"], "outcome": r["reason"]} for r in not_composed]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        problem = stale("knowledge_graph.json")
        print(problem or "bench/results/knowledge_graph.json describes the code here")
        return 1 if problem else 0
    mode = args[args.index("--mode") + 1] if "--mode" in args else "no_llm"
    max_chunks = int(args[args.index("--max-chunks") + 1]) if "--max-chunks" in args else None
    chapters = tuple(args[args.index("--chapters") + 1].split(",")) if "--chapters" in args else CHAPTERS
    # an earlier run's store: its response cache replays the answers it got (an interrupted run resumes)
    store_root = args[args.index("--store-root") + 1] if "--store-root" in args else None
    os.environ.setdefault("SYNTH_RUN_DIR", tempfile.mkdtemp(prefix="kg-bench-run-"))
    folder, source = documents(chapters)
    path = RESULTS / "knowledge_graph.json"
    report = json.loads(path.read_text()) if path.is_file() else {}
    report |= {"benchmark": "knowledge_graph", "provenance": provenance(MEASURED), "documents_from": source,
               "chapters": sorted(p.name for p in folder.iterdir())}
    for m in (("no_llm", "embedded") if mode == "both" else (mode,)):
        chunks = max_chunks if m == "embedded" or "--max-chunks" in args else 8 if m == "quality" else None
        report[m] = run(m, folder, chunks, store_root)
        print(m, json.dumps({k: report[m][k] for k in ("wall_seconds", "chunks", "graph", "paths", "questions",
                                                       "retrieval")}, indent=1))
    out = write_result("knowledge_graph.json", report)
    print(f"written to {shown(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
