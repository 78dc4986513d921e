"""Paper extraction benchmark (results in bench/results/papers.json): pages per second of the papers
method's extraction (pdfplumber characters -> blocks in reading order, tables, captions; figure
crops rendered separately) side by side with pypdf's plain text extraction, in one run, and what
the extraction found per paper (pages, blocks by kind, tables with their size and caption, figure
captions with a region).

Papers: the four PDFs in ../shared/corpora/papers (their own terms: read in place, never copied),
else the shipped sample paper. Each round extracts every paper with both extractors, alternating
which goes first. Run: .venv/bin/python bench/bench_papers.py [--rounds N] [--show]
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, mean_ci95, provenance, shown, stale, write_result  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "papers"
SAMPLE = ROOT / "include" / "sample_data" / "papers"
# What the numbers depend on: a change to any of these makes papers.json stale (--check).
MEASURED = ["bench/bench_papers.py", "bench/_common.py", "synth_tasks/methods/papers/extract.py"]


def papers() -> tuple[list[Path], str]:
    files = sorted(CORPUS.glob("*.pdf")) or sorted(SAMPLE.glob("*.pdf"))
    return files, str((CORPUS if CORPUS.is_dir() and files[0].parent == CORPUS else SAMPLE).relative_to(ROOT.parent))


def ours(data: bytes, name: str) -> dict:
    from synth_tasks.methods.papers.extract import extract_paper

    return extract_paper(data, name, Path(name).stem)


def pypdf_text(data: bytes) -> tuple[int, int]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    return len(reader.pages), len(text)


def found(paper: dict) -> dict:
    """What the extraction found in one paper, for the README and for reading by eye."""
    blocks = paper["blocks"]
    kinds = Counter(b["kind"] for b in blocks)
    tables = [b for b in blocks if b["kind"] == "table"]
    captions = [b for b in blocks if b["kind"] == "figure_caption"]
    return {
        "pages": paper["n_pages"], "blocks": len(blocks), "by_kind": dict(sorted(kinds.items())),
        "headings": [f"{'  ' * (b['level'] or 0)}{b['text']}" for b in blocks if b["kind"] == "heading"],
        "tables": [{"label": b["label"], "page": b["page"], "caption": b.get("caption"),
                    "grid": [len(json.loads(b["table_cells"])), max(len(r) for r in json.loads(b["table_cells"]))]
                    if b["table_cells"] else None} for b in tables],
        "figure_captions": [{"label": b["label"], "page": b["page"], "region": b["figure_bbox"] is not None}
                            for b in captions],
        "title": paper["title"], "abstract_chars": len(paper["abstract"] or ""),
        "two_column_pages": len(paper["two_column_pages"]), "running_lines_removed": paper["running_lines_removed"],
        "pages_without_text": paper["pages_without_text"],
    }


def bench(files: list[Path], rounds: int) -> dict:
    from synth_tasks.methods.papers.extract import render_figures

    datas = {f.name: f.read_bytes() for f in files}
    ours(datas[files[0].name], files[0].name)  # warm-up: imports and font caches outside the timing
    pypdf_text(datas[files[0].name])
    times: dict[str, dict[str, list[float]]] = {name: {"ours": [], "pypdf": []} for name in datas}
    per_round = []
    results: dict[str, dict] = {}
    for r in range(rounds):
        spent = {"ours": 0.0, "pypdf": 0.0}
        for i, (name, data) in enumerate(datas.items()):
            order = ("ours", "pypdf") if (r + i) % 2 == 0 else ("pypdf", "ours")
            for side in order:
                start = time.perf_counter()
                out = ours(data, name) if side == "ours" else pypdf_text(data)
                took = time.perf_counter() - start
                times[name][side].append(took)
                spent[side] += took
                if side == "ours":
                    results[name] = out
        per_round.append(spent)
    total_pages = sum(p["n_pages"] for p in results.values())
    report = {"papers": {}, "rounds": rounds}
    for name, data in datas.items():
        paper = results[name]
        figures = [b for b in paper["blocks"] if b["figure_bbox"]]
        start = time.perf_counter()
        render_figures(data, figures)
        render_s = time.perf_counter() - start
        med = {side: statistics.median(v) for side, v in times[name].items()}
        report["papers"][name] = found(paper) | {
            "seconds_median": {k: round(v, 3) for k, v in med.items()},
            "pages_per_s": {k: round(paper["n_pages"] / v, 1) for k, v in med.items()},
            "figure_crops": len(figures), "figure_render_s": round(render_s, 3)}
    report["total"] = {
        "pages": total_pages,
        "pages_per_s_ours": mean_ci95([total_pages / s["ours"] for s in per_round]) if rounds > 1 else
        {"mean": round(total_pages / per_round[0]["ours"], 2)},
        "pages_per_s_pypdf": mean_ci95([total_pages / s["pypdf"] for s in per_round]) if rounds > 1 else
        {"mean": round(total_pages / per_round[0]["pypdf"], 2)},
        "pypdf_over_ours": mean_ci95([s["ours"] / s["pypdf"] for s in per_round]) if rounds > 1 else
        {"mean": round(per_round[0]["ours"] / per_round[0]["pypdf"], 2)},
    }
    return report


def show(files: list[Path], per_kind: int = 3) -> None:
    """A handful of each paper's blocks per kind, to read by eye."""
    for f in files:
        paper = ours(f.read_bytes(), f.name)
        print(f"\n===== {f.name}: {paper['title']!r}")
        by_kind: dict[str, list[dict]] = {}
        for b in paper["blocks"]:
            by_kind.setdefault(b["kind"], []).append(b)
        for kind, blocks in sorted(by_kind.items()):
            for b in blocks[:per_kind]:
                print(f"--- {kind} {b['block_id']} p.{b['page']} {b['bbox']} {' / '.join(b['section_path'])[-50:]}")
                print(b["text"][:400])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        problem = stale("papers.json")
        print(problem or "bench/results/papers.json describes the code here")
        return 1 if problem else 0
    files, source = papers()
    if "--show" in args:
        show(files)
        return 0
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3
    prov = provenance(MEASURED)
    result = {"benchmark": "papers", "provenance": prov, "papers_from": source} | bench(files, rounds)
    out = write_result("papers.json", result)
    print(json.dumps(result["total"], indent=2))
    for name, p in result["papers"].items():
        print(f"{name}: {p['pages']} pages, {p['blocks']} blocks {p['by_kind']}, "
              f"pages/s ours {p['pages_per_s']['ours']} pypdf {p['pages_per_s']['pypdf']}")
    print(f"written to {shown(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
