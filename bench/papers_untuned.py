"""Blocks to read by eye on papers nobody tuned the extractor on (bench/results/papers_untuned.md).

Extracts the given PDFs, draws ``--n`` blocks at random (``--seed``) from all their blocks, and prints
each with the block before it in reading order and the page's text as pdfium reads it (in the PDF's
content order, for comparison), so a reader can judge whether the block is whole, of the right kind
and in the right place. Run:
  .venv/bin/python bench/papers_untuned.py --seed 1 [--n 20] a.pdf b.pdf c.pdf
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str]) -> int:
    import pypdfium2 as pdfium

    from synth_tasks.methods.papers.extract import extract_paper

    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 1
    n = int(argv[argv.index("--n") + 1]) if "--n" in argv else 20
    files = [Path(a) for a in argv if a.endswith(".pdf")]
    pool = []
    for f in files:
        paper = extract_paper(f.read_bytes(), f.name, f.stem)
        blocks = paper["blocks"]
        pool += [(f, blocks[i - 1] if i else None, b) for i, b in enumerate(blocks)]
        print(f"{f.name}: {paper['n_pages']} pages, {len(blocks)} blocks, two-column pages {paper['two_column_pages']}")
    for k, (f, before, b) in enumerate(sorted(random.Random(seed).sample(pool, min(n, len(pool))),
                                              key=lambda t: (t[0].name, t[2]["block_id"])), start=1):
        page_text = pdfium.PdfDocument(f)[b["page"] - 1].get_textpage().get_text_range()
        print(f"\n#{k} {f.name} {b['block_id']} p.{b['page']} {b['kind']} {b['bbox']}")
        print("  after:", repr(before["text"][-100:]) if before else None)
        print("  text: ", repr(b["text"][:700]))
        head = " ".join(b["text"].split()[:4])
        at = " ".join(page_text.split()).find(head)
        print("  pdfium:", repr(" ".join(page_text.split())[max(0, at - 80):at + 300]) if at >= 0 else "(start not found)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
