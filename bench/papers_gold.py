"""Scores a paper's extraction against its hand-checked gold file (bench/gold/papers/, format in its
README): table cells, pages in reading order, headings, references, figure captions, whole
sentences and footnotes kept out of the running text.

Text is compared as lowercase word tokens (letters and digits, ligatures spelled out, accents kept),
so quotes, dashes, spacing and a repaired line-end hyphen do not count as errors; a dropped, added
or reordered word does.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

GOLD = Path(__file__).resolve().parent / "gold" / "papers"
_TOKEN = re.compile(r"\w+")
_CAPTION = re.compile(r"^(fig\.?|figure|table)\s*\d", re.IGNORECASE)


def gold_files() -> dict[str, dict]:
    """Gold by paper file name."""
    return {(g := json.loads(p.read_text()))["paper"]: g for p in sorted(GOLD.glob("*.json"))}


def tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text or "").lower().replace("-\n", "")
    return _TOKEN.findall(text.replace("_", " "))


def joined(text: str) -> str:
    return " " + " ".join(tokens(text)) + " "


def _cell(text: str) -> str:
    return " ".join(tokens(text))


def cell_matches(gold: list[list[str]], found: list[list[str]]) -> int:
    """Gold cells equal to the found cell at the same place, with the grids aligned at the row and
    column offset (within ±3) that matches most: an extra header row or a leading empty column
    shifts a grid without making every cell wrong."""
    best = 0
    for dr in range(-3, 4):
        for dc in range(-3, 4):
            n = 0
            for i, row in enumerate(gold):
                for j, cell in enumerate(row):
                    fi, fj = i + dr, j + dc
                    if cell.strip() and 0 <= fi < len(found) and 0 <= fj < len(found[fi]) \
                            and _cell(found[fi][fj]) == _cell(cell):
                        n += 1
            best = max(best, n)
    return best


def table_scores(gold: dict, tables_by_page: dict[int, list[list[list[str]]]]) -> list[dict]:
    """Per gold table: its non-empty cells matched by the best-matching grid found on its page."""
    out = []
    for t in gold["tables"]:
        candidates = tables_by_page.get(t["page"], [])
        right = max((cell_matches(t["cells"], grid) for grid in candidates), default=0)
        n = sum(1 for row in t["cells"] for c in row if c.strip())  # empty cells are not scored
        out.append({"label": t["label"], "page": t["page"], "cells": n, "grid": [len(t["cells"]), len(t["cells"][0])],
                    "right": min(right, n), "found_tables_on_page": len(candidates)})
    return out


def order_scores(gold: dict, blocks: list[dict]) -> dict:
    """A page is in reading order when every anchor of it is found in the document's text, each after
    the one before. Blocks are read in the extraction's order (a table by its caption: cells are not
    anchors); a page's anchors are searched from the first block on that page or the page before (a
    paragraph that runs over a page break starts on the earlier page). Captions are not scored here:
    a float may be read before or after the paragraph it interrupts (``figure_captions`` finds them)."""
    texts = [(b["page"], joined(b.get("caption") or "" if b["kind"] == "table" else b["text"])) for b in blocks]
    pages = {}
    for page_s, anchors in gold["reading_order"].items():
        page = int(page_s)
        start = next((i for i, (p, _) in enumerate(texts) if p >= page - 1), len(texts))
        doc = "".join(t for _, t in texts[start:])
        pos, missing, out_of_order = -1, [], []
        for anchor in [a for a in anchors if not _CAPTION.match(a)]:
            # a column's first words may end a word hyphenated across the break ("tion of ZooKeeper")
            a = joined(anchor)[1:]
            at = doc.find(a, pos + 1)
            if at < 0:
                (out_of_order if a in doc else missing).append(anchor)
            else:
                pos = at
        pages[page] = {"anchors": len(anchors), "missing": missing, "out_of_order": out_of_order}
    in_order = sum(1 for p in pages.values() if not p["missing"] and not p["out_of_order"])
    return {"pages": len(pages), "in_order": in_order, "by_page": {p: v for p, v in pages.items()
                                                                  if v["missing"] or v["out_of_order"]}}


def heading_scores(gold: dict, blocks: list[dict]) -> dict:
    gold_h = [joined(h) for h in gold["headings"]]
    title = joined(gold.get("title") or "")
    found = [b["text"] for b in blocks if b["kind"] == "heading"]
    found_j = [joined(h) for h in found if joined(h) != title]
    right = [h for h in found_j if h in gold_h]
    wrong = [h.strip() for h in found_j if h not in gold_h]
    return {"gold": len(gold_h), "found": len(found_j), "right": len(right),
            "precision": round(len(right) / len(found_j), 3) if found_j else None,
            "recall": round(len(set(right)) / len(gold_h), 3) if gold_h else None,
            "unmapped_glyphs": sum("(cid:" in h for h in found), "wrong": wrong[:15],
            "missed": [h.strip() for h in gold_h if h not in found_j][:15]}


def reference_scores(gold: dict, blocks: list[dict]) -> dict:
    n = sum(b["kind"] == "reference" for b in blocks)
    g = gold["references"]
    return {"gold": g, "found": n, "within_5pct": abs(n - g) <= 0.05 * g if g else n == 0}


def caption_scores(gold: dict, blocks: list[dict]) -> dict:
    caps = [joined(b["text"]) for b in blocks if b["kind"] == "figure_caption"]
    right = [c for c in gold["figure_captions"] if any(f.startswith(joined(c["starts"])) for f in caps)]
    return {"gold": len(gold["figure_captions"]), "right": len(right),
            "missed": [c["label"] for c in gold["figure_captions"] if c not in right]}


def sentence_scores(gold: dict, blocks: list[dict]) -> dict:
    texts = [joined(b["text"]) for b in blocks]
    whole = [s for s in gold.get("sentences", []) if any(joined(s["text"]) in t for t in texts)]
    return {"gold": len(gold.get("sentences", [])), "whole": len(whole),
            "broken": [s.get("why", "") + ": " + s["text"][:60] for s in gold.get("sentences", []) if s not in whole]}


def footnote_scores(gold: dict, blocks: list[dict]) -> dict:
    """A footnote is out of the running text when its words do not sit inside another paragraph
    (after its first word)."""
    inside = []
    for f in gold.get("footnotes", []):
        a = joined(f["starts"])
        if any(a in t and not t.startswith(a) for t in (joined(b["text"]) for b in blocks if b["kind"] == "paragraph")):
            inside.append(f["starts"])
    return {"gold": len(gold.get("footnotes", [])), "inside_running_text": inside}


def score(gold: dict, paper: dict) -> dict:
    blocks = paper["blocks"]
    tables: dict[int, list] = {}
    for b in blocks:
        if b["kind"] == "table" and b.get("table_cells"):
            tables.setdefault(b["page"], []).append(json.loads(b["table_cells"]))
    tables_scored = table_scores(gold, tables)
    return summary(gold, tables_scored, order_scores(gold, blocks), heading_scores(gold, blocks),
                   reference_scores(gold, blocks), caption_scores(gold, blocks),
                   sentence_scores(gold, blocks), footnote_scores(gold, blocks))


def summary(gold, tables, order, headings, references, captions, sentences, footnotes) -> dict:
    cells = sum(t["cells"] for t in tables)
    return {
        "table_cells": {"gold": cells, "right": sum(t["right"] for t in tables),
                        "accuracy": round(sum(t["right"] for t in tables) / cells, 3) if cells else None,
                        "tables": tables},
        "reading_order": order | {"share": round(order["in_order"] / order["pages"], 3) if order["pages"] else None},
        "headings": headings, "references": references, "figure_captions": captions,
        "sentences": sentences, "footnotes": footnotes,
    }


def totals(per_paper: dict[str, dict]) -> dict:
    """The goals' numbers over all papers: cells and pages pooled, headings pooled."""
    cells = sum(p["table_cells"]["gold"] for p in per_paper.values())
    right = sum(p["table_cells"]["right"] for p in per_paper.values())
    pages = sum(p["reading_order"]["pages"] for p in per_paper.values())
    in_order = sum(p["reading_order"]["in_order"] for p in per_paper.values())
    found_h = sum(p["headings"]["found"] for p in per_paper.values())
    right_h = sum(p["headings"]["right"] for p in per_paper.values())
    gold_h = sum(p["headings"]["gold"] for p in per_paper.values())
    return {
        "table_cell_accuracy": round(right / cells, 3) if cells else None, "table_cells": cells,
        "pages_in_order": round(in_order / pages, 3) if pages else None, "pages": pages,
        "heading_precision": round(right_h / found_h, 3) if found_h else None,
        "heading_recall": round(right_h / gold_h, 3) if gold_h else None,
        "headings_of_unmapped_glyphs": sum(p["headings"]["unmapped_glyphs"] for p in per_paper.values()),
        "references_within_5pct": sum(p["references"]["within_5pct"] for p in per_paper.values()),
        "papers": len(per_paper),
        "figure_captions": f'{sum(p["figure_captions"]["right"] for p in per_paper.values())}/'
                           f'{sum(p["figure_captions"]["gold"] for p in per_paper.values())}',
        "sentences_whole": f'{sum(p["sentences"]["whole"] for p in per_paper.values())}/'
                           f'{sum(p["sentences"]["gold"] for p in per_paper.values())}',
        "footnotes_inside_text": sum(len(p["footnotes"]["inside_running_text"]) for p in per_paper.values()),
    }
