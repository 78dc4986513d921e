"""Table extractors compared on every hand-checked gold table (results in
bench/results/papers_tables.json): the papers method's own extraction ("ours") against pdfplumber's
extract_tables (default lines strategy, and text strategy), camelot-py (lattice, stream, network,
hybrid) and img2table (PDF text, no OCR; with and without borderless-table detection).

Each library runs only on the pages that hold gold tables (plus up to 10 figure pages without a
table, to count tables it invents from diagrams); "ours" extracts each whole PDF once, as the
method does, and its grids are taken from those pages. Per gold table: its non-empty cells matched
by the best grid found on its page (papers_gold.cell_matches); per extractor: pooled and per-paper
accuracy, false tables (grids with a non-empty cell matching under 30 % of every gold table on the
page, or any grid on a figure page), seconds (perf_counter, imports excluded) and errors.

Papers: the PDFs of bench/gold/papers in ../shared/corpora/papers (their own terms: read in place,
never copied); when that folder is missing the benchmark says so and exits 0. camelot-py and
img2table are not dependencies of the project (the comparison kept the method's own extractor):
install them first, `.venv/bin/pip install camelot-py==2.0.0 img2table==2.0.0`.
Run: .venv/bin/python bench/bench_papers_tables.py
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, provenance, shown, write_result  # noqa: E402
from papers_gold import cell_matches, gold_files  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "papers"
MEASURED = ["bench/bench_papers_tables.py", "bench/_common.py", "bench/papers_gold.py",
            "bench/gold/papers/*.json", "synth_tasks/methods/papers/extract.py"]
MAX_FIGURE_PAGES = 10
FALSE_BELOW = 0.3  # a grid matching under this share of every gold table on its page is a false table
Grid = list[list[str]]


def grid_of(rows) -> Grid:
    return [["" if c is None else str(c) for c in row] for row in rows]


def has_text(grid: Grid) -> bool:
    return any(c.strip() for row in grid for c in row)


def ours(path: Path, pages: list[int]) -> dict[int, list[Grid]]:
    from synth_tasks.methods.papers.extract import extract_paper

    paper = extract_paper(path.read_bytes(), path.name, path.stem)
    out: dict[int, list[Grid]] = {p: [] for p in pages}
    for b in paper["blocks"]:
        if b["kind"] == "table" and b.get("table_cells") and b["page"] in out:
            out[b["page"]].append(grid_of(json.loads(b["table_cells"])))
    return out


def pdfplumber_tables(settings: dict | None):
    def run(path: Path, pages: list[int]) -> dict[int, list[Grid]]:
        import pdfplumber

        with pdfplumber.open(path) as pdf:
            return {p: [grid_of(t) for t in pdf.pages[p - 1].extract_tables(settings or {})] for p in pages}
    return run


def camelot_tables(flavor: str):
    def run(path: Path, pages: list[int]) -> dict[int, list[Grid]]:
        import camelot

        return {p: [grid_of(t.df.values.tolist()) for t in camelot.read_pdf(str(path), pages=str(p), flavor=flavor)]
                for p in pages}
    return run


def img2table_tables(borderless: bool):
    def run(path: Path, pages: list[int]) -> dict[int, list[Grid]]:
        from img2table.document import PDF

        out = {}
        for p in pages:
            found = PDF(str(path), pages=[p - 1]).extract_tables(
                ocr=None, implicit_rows=True, implicit_columns=True, borderless_tables=borderless)
            out[p] = [grid_of([[c.value for c in row] for row in t.content.values()]) for t in found.get(p - 1, [])]
        return out
    return run


EXTRACTORS = {
    "ours": ours,
    "pdfplumber": pdfplumber_tables(None),
    "pdfplumber_text": pdfplumber_tables({"vertical_strategy": "text", "horizontal_strategy": "text"}),
    **{f"camelot_{f}": camelot_tables(f) for f in ("lattice", "stream", "network", "hybrid")},
    "img2table": img2table_tables(True),
    "img2table_bordered": img2table_tables(False),
}


def run_pages(fn, path: Path, pages: list[int], errors: list[str], whole: bool) -> dict[int, list[Grid]]:
    """The extractor on all pages in one call (whole) or page by page, recording each failure."""
    out: dict[int, list[Grid]] = {}
    for group in [pages] if whole else [[p] for p in pages]:
        try:
            out |= fn(path, group)
        except Exception as e:  # noqa: BLE001 -- a library failure is a result, not a crash
            errors.append(f"{path.name} p.{','.join(map(str, group))}: {type(e).__name__}: {str(e)[:160]}")
            out |= {p: [] for p in group}
    return out


def figure_pages(golds: dict[str, dict]) -> dict[str, list[int]]:
    """Up to MAX_FIGURE_PAGES pages with a figure caption and no gold table, taken round-robin over
    the papers so no one paper supplies them all."""
    queues = {name: sorted({c["page"] for c in g["figure_captions"]} - {t["page"] for t in g["tables"]})
              for name, g in golds.items()}
    chosen: dict[str, list[int]] = defaultdict(list)
    while sum(map(len, chosen.values())) < MAX_FIGURE_PAGES and any(queues.values()):
        for name, q in queues.items():
            if q and sum(map(len, chosen.values())) < MAX_FIGURE_PAGES:
                chosen[name].append(q.pop(0))
    return dict(chosen)


def n_cells(cells: Grid) -> int:
    return sum(1 for row in cells for c in row if c.strip())


def main() -> int:
    if not CORPUS.is_dir():
        print(f"no papers corpus at {CORPUS}: nothing to measure")
        return 0
    golds = {n: g for n, g in gold_files().items() if (CORPUS / n).is_file()}
    if not golds:
        print(f"none of the gold papers are in {CORPUS}: nothing to measure")
        return 0
    try:  # the libraries compared are not the project's dependencies: the comparison chose against them
        import camelot, img2table.document  # noqa: F401,E401 -- untimed
    except ImportError as exc:
        print(f"{exc.name} is not installed: .venv/bin/pip install camelot-py==2.0.0 img2table==2.0.0")
        return 1
    prov = provenance(MEASURED)
    warnings.filterwarnings("ignore")
    import pdfplumber, synth_tasks.methods.papers.extract  # noqa: F401,E401 -- untimed

    fig_pages = figure_pages(golds)
    table_rows = [{"paper": n, "label": t["label"], "page": t["page"], "grid": [len(t["cells"]), len(t["cells"][0])],
                   "cells": n_cells(t["cells"]), "right": {}} for n, g in golds.items() for t in g["tables"]]
    extractors, best_grids = {}, {}
    for name, fn in EXTRACTORS.items():
        errors: list[str] = []
        seconds, per_table, false_t, false_f = 0.0, [], [], []
        per_paper = {}
        for paper, g in golds.items():
            t_pages = sorted({t["page"] for t in g["tables"]})
            pages = sorted(set(t_pages) | set(fig_pages.get(paper, [])))
            if not pages:
                continue
            start = time.perf_counter()
            found = run_pages(fn, CORPUS / paper, pages, errors, whole=name == "ours")
            seconds += time.perf_counter() - start
            right = cells = 0
            for t in g["tables"]:
                grids = [x for x in found.get(t["page"], []) if has_text(x)]
                scores = [cell_matches(t["cells"], x) for x in grids]
                n = n_cells(t["cells"])
                best = max(range(len(grids)), key=scores.__getitem__, default=None)
                r = min(scores[best], n) if best is not None else 0
                per_table.append({"paper": paper, "label": t["label"], "page": t["page"], "cells": n, "right": r,
                                  "found_tables_on_page": len(grids)})
                best_grids[f"{name}|{paper}|{t['label']}|{t['page']}"] = grids[best] if best is not None else None
                right, cells = right + r, cells + n
            for p in pages:
                gold_here = [t["cells"] for t in g["tables"] if t["page"] == p]
                for x in (x for x in found.get(p, []) if has_text(x)):
                    shape = f"{paper[:14]} p.{p} {len(x)}x{max(map(len, x), default=0)}"
                    if not gold_here:
                        false_f.append(shape)
                    elif all(cell_matches(gc, x) < FALSE_BELOW * n_cells(gc) for gc in gold_here):
                        false_t.append(shape)
            if g["tables"]:
                per_paper[paper] = {"right": right, "cells": cells, "accuracy": round(right / cells, 3)}
        right = sum(t["right"] for t in per_table)
        cells = sum(t["cells"] for t in per_table)
        extractors[name] = {"accuracy": round(right / cells, 3) if cells else None, "right": right, "cells": cells,
                            "per_paper": per_paper, "per_table": per_table,
                            "false_tables_on_table_pages": len(false_t), "false_tables_on_figure_pages": len(false_f),
                            "false_table_shapes": {"table_pages": false_t, "figure_pages": false_f},
                            "seconds": round(seconds, 2), "errors": errors}
        for row, t in zip(table_rows, per_table):
            row["right"][name] = t["right"]
        print(f"{name}: {right}/{cells} in {seconds:.1f}s", file=sys.stderr)

    report = {"benchmark": "papers_tables", "provenance": prov,
              "corpus": str(CORPUS.relative_to(ROOT.parent)),
              "libraries": versions(), "figure_pages": fig_pages, "false_table_threshold": FALSE_BELOW,
              "extractors": extractors, "tables": table_rows}
    out = write_result("papers_tables.json", report)
    Path("/tmp/tables").mkdir(parents=True, exist_ok=True)  # scratch: best grids, for reading by eye
    Path("/tmp/tables/best_grids.json").write_text(json.dumps(best_grids, indent=1))
    show(extractors, table_rows)
    print(f"wrote {shown(out)}")
    return 0


def versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("pdfplumber", "camelot-py", "img2table", "pypdfium2", "opencv-python-headless")}


def show(extractors: dict, rows: list[dict]) -> None:
    names = list(extractors)
    print(f"{'extractor':20} {'accuracy':>8} {'right':>9} {'false@tbl':>9} {'false@fig':>9} {'seconds':>8} errors")
    for n, e in extractors.items():
        print(f"{n:20} {e['accuracy']:>8} {e['right']:>4}/{e['cells']:<4} {e['false_tables_on_table_pages']:>9} "
              f"{e['false_tables_on_figure_pages']:>9} {e['seconds']:>8} {len(e['errors'])}")
    short = [n.replace("camelot_", "cam_").replace("pdfplumber", "plumb").replace("img2table", "i2t")[:9]
             for n in names]
    print(f"\n{'table':24} {'cells':>5} " + " ".join(f"{s:>9}" for s in short))
    for r in rows:
        tag = f"{r['paper'][:10]} {r['label'] or '-'} p{r['page']}"
        print(f"{tag:24} {r['cells']:>5} " + " ".join(f"{r['right'][n]:>9}" for n in names))


if __name__ == "__main__":
    sys.exit(main())
