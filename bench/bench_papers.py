"""Paper extraction benchmark (results in bench/results/papers.json).

- **Quality against the hand-checked gold set** (bench/gold/papers/, scored by papers_gold.py): table
  cells right, pages in reading order, heading precision and recall, references counted within 5 %,
  figure captions, whole sentences, footnotes kept out of the text; per paper and pooled.
- **Speed**: pages per second of the papers method's extraction beside pdfplumber's own
  ``extract_text`` and pypdf's, in one run, alternating which goes first.
- **OCR**: seconds per page and word accuracy on scans made here of the papers' first pages (rendered
  at 200 dpi into image-only PDFs), against their own text layer.
- **Memory**: peak RSS of one extraction of a 300-page PDF (a paper repeated), in a child process.

Papers: the PDFs in ../shared/corpora/papers (their own terms: read in place, never copied), else the
shipped sample paper (speed only). Run: .venv/bin/python bench/bench_papers.py [--rounds N] [--show]
[--skip-memory] [--skip-ocr]; `--gold-only` scores another checkout's extractor (see ``gold_only``).
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, mean_ci95, provenance, shown, stale, write_result  # noqa: E402
from papers_gold import gold_files, score, totals  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "papers"
SAMPLE = ROOT / "include" / "sample_data" / "papers"
# What the numbers depend on: a change to any of these makes papers.json stale (--check).
MEASURED = ["bench/bench_papers.py", "bench/_common.py", "bench/papers_gold.py", "bench/gold/papers/*.json",
            "synth_tasks/methods/papers/extract.py", "synth_tasks/methods/papers/glyphs.py",
            "synth_tasks/methods/papers/ocr.py"]
GOALS = {"table_cell_accuracy": 0.95, "pages_in_order": 0.95, "headings_of_unmapped_glyphs": 0,
         "peak_rss_mb_300_pages": 300}


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


def pdfplumber_text(data: bytes) -> tuple[int, int]:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        texts = []
        for page in pdf.pages:
            texts.append(page.extract_text() or "")
            page.close()
        return len(pdf.pages), len("\n".join(texts))


SIDES = {"ours": None, "pdfplumber": pdfplumber_text, "pypdf": pypdf_text}


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


def bench(files: list[Path], rounds: int) -> tuple[dict, dict[str, dict]]:
    from synth_tasks.methods.papers.extract import render_figures

    datas = {f.name: f.read_bytes() for f in files}
    ours(datas[files[0].name], files[0].name)  # warm-up: imports and font caches outside the timing
    for side in ("pdfplumber", "pypdf"):
        SIDES[side](datas[files[0].name])
    times: dict[str, dict[str, list[float]]] = {name: {side: [] for side in SIDES} for name in datas}
    per_round = []
    results: dict[str, dict] = {}
    for r in range(rounds):
        spent = dict.fromkeys(SIDES, 0.0)
        for i, (name, data) in enumerate(datas.items()):
            order = list(SIDES)[(r + i) % 3:] + list(SIDES)[:(r + i) % 3]
            for side in order:
                start = time.perf_counter()
                out = ours(data, name) if side == "ours" else SIDES[side](data)
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
            "ocr_pages": paper["ocr_pages"], "glyphs_read": paper["glyphs_read"],
            "glyphs_unread": paper["glyphs_unread"],
            "figure_crops": len(figures), "figure_render_s": round(render_s, 3)}

    def rate(side: str) -> dict:
        values = [total_pages / s[side] for s in per_round]
        return mean_ci95(values) if rounds > 1 else {"mean": round(values[0], 2)}

    report["total"] = {"pages": total_pages, **{f"pages_per_s_{side}": rate(side) for side in SIDES}}
    gold = gold_files()
    scored = {name: score(gold[name], paper) for name, paper in results.items() if name in gold}
    if scored:
        report["gold"] = {"totals": totals(scored), "papers": scored}
    return report, results


def ocr_cost(files: list[Path], layers: dict[str, dict], pages: int = 2, dpi: int = 200) -> dict:
    """Scans made here of each paper's first pages (rendered at ``dpi`` into image-only PDFs),
    extracted by OCR: seconds per page, and the words read against those the text layer gives for
    the same pages (``layers``: each paper's extraction from its text layer; as bags of words:
    reading order is scored by the gold set, not here)."""
    from collections import Counter

    import pypdfium2 as pdfium

    from papers_gold import tokens
    from synth_tasks.methods.papers.extract import extract_paper

    seconds, n, per_paper = 0.0, 0, {}
    for f in files:
        doc = pdfium.PdfDocument(str(f))
        images = [doc[i].render(scale=dpi / 72).to_pil().convert("L") for i in range(min(pages, len(doc)))]
        doc.close()
        buf = io.BytesIO()
        images[0].save(buf, format="PDF", resolution=dpi, save_all=True, append_images=images[1:])
        start = time.perf_counter()
        scanned = extract_paper(buf.getvalue(), f.name, f.stem)
        seconds += time.perf_counter() - start
        n += len(images)
        truth = Counter(tokens(" ".join(b["text"] for b in layers[f.name]["blocks"] if b["page"] <= len(images))))
        read = Counter(tokens(" ".join(b["text"] for b in scanned["blocks"])))
        common = sum((truth & read).values())
        per_paper[f.name] = {"recall": round(common / max(1, sum(truth.values())), 3),
                             "precision": round(common / max(1, sum(read.values())), 3)}
    return {"pages": n, "dpi": dpi, "seconds_per_page": round(seconds / n, 2), "words_per_paper": per_paper,
            "word_recall_mean": round(statistics.mean(p["recall"] for p in per_paper.values()), 3),
            "word_precision_mean": round(statistics.mean(p["precision"] for p in per_paper.values()), 3)}


def memory_300_pages(paper: Path) -> dict:
    """Peak RSS of one extraction of a 300-page PDF (``paper`` repeated), measured in a child process
    so this process's own memory does not count."""
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(str(paper))
    writer = PdfWriter()
    while len(writer.pages) < 300:
        for page in reader.pages[:300 - len(writer.pages)]:
            writer.add_page(page)
    path = Path("/tmp") / "bench-papers-300.pdf"
    with path.open("wb") as out:
        writer.write(out)
    # VmHWM, not getrusage's ru_maxrss: that one survives exec, so a child forked from this (large)
    # process reported the parent's 587 MB where its own peak was 175 MB
    code = ("import json, re, sys, time; from synth_tasks.methods.papers.extract import extract_paper; "
            "t = time.perf_counter(); p = extract_paper(open(sys.argv[1], 'rb').read(), 'x.pdf', 'x'); "
            "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]); "
            "print(json.dumps({'blocks': len(p['blocks']), 'seconds': round(time.perf_counter() - t, 1), "
            "'peak_rss_mb': round(hwm / 1024)}))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, cwd=ROOT)
    path.unlink()
    return {"pdf": f"{paper.name} repeated to 300 pages"} | json.loads(done.stdout)


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


def gold_only(files: list[Path]) -> int:
    """The gold scores alone, of whichever checkout of synth_tasks is on the path: the numbers before
    a change come from `git worktree add /tmp/before <commit>` and
    `PYTHONPATH=/tmp/before .venv/bin/python bench/bench_papers.py --gold-only`."""
    import synth_tasks

    code = Path(synth_tasks.__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=code, capture_output=True, text=True).stdout.strip()
    gold = gold_files()
    scored = {f.name: score(gold[f.name], ours(f.read_bytes(), f.name)) for f in files if f.name in gold}
    if not scored:
        print("no gold paper here: nothing to score")
        return 0
    result = {"benchmark": "papers_gold", "provenance": provenance(["bench/papers_gold.py", "bench/gold/papers/*.json"]),
              "extractor_commit": commit, "extractor_checkout": str(code), "totals": totals(scored), "papers": scored}
    out = write_result(f"papers_gold-{commit[:7]}.json", result)
    print(json.dumps(result["totals"]))
    print(f"written to {shown(out)}")
    return 0


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
    if "--gold-only" in args:
        return gold_only(files)
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3
    prov = provenance(MEASURED)
    report, extracted = bench(files, rounds)
    result = {"benchmark": "papers", "provenance": prov, "papers_from": source, "goals": GOALS} | report
    if CORPUS.is_dir() and "--skip-ocr" not in args:
        result["ocr"] = ocr_cost(files, extracted)
    if CORPUS.is_dir() and "--skip-memory" not in args:
        gfs = [f for f in files if "google-file-system" in f.name]
        result["memory"] = memory_300_pages((gfs or files)[0])
    out = write_result("papers.json", result)
    print(json.dumps(result["total"], indent=2))
    for name, p in result["papers"].items():
        print(f"{name}: {p['pages']} pages, {p['blocks']} blocks {p['by_kind']}, pages/s {p['pages_per_s']}")
    for key in ("gold", "ocr", "memory"):
        if key in result:
            print(key, json.dumps(result[key]["totals"] if key == "gold" else result[key]))
    print(f"written to {shown(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
