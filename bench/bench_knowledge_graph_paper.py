"""Knowledge graph's multi-hop questions on the quality model, from a section of a research paper
(results in bench/results/knowledge_graph_paper.json).

Why a second document: ``bench_knowledge_graph.py --mode quality`` reads the Rust book's ownership
chapter, whose analogies (a restaurant, plates on a stack) the model takes as fact. A paper's
implementation section states facts about named parts of a system (the master assigns tasks to
workers, workers write to local disks), so it tells whether 0 sensible questions of 20 there are
the document's doing or the model's.

The input is a paper as the papers DAG publishes it (``{data root}/papers/{partition}/publish/
<paper>/paper.md``; ``bench_method_quality.py --methods papers`` writes one under
build/bench-method-quality/), the lines from the heading ``--from`` up to the next line that starts
with ``--to``, copied to a temporary folder. The knowledge_graph method then runs as the quality
configuration of bench_knowledge_graph.py runs it (every chunk of the section, JSON extraction with
one gleaning round, 10 paths of each length). The papers are for local testing only, so the result
keeps the model's pieces, the composed questions, the paths and the check's verdicts, and leaves
out the paper's own sentences (each hop's evidence). Whether a question is sensible and uniquely
answerable is a reader's judgement: docs/methods/knowledge_graph.md gives it.

Run: .venv/bin/python bench/bench_knowledge_graph_paper.py --paper PATH/paper.md
     --from "## 3 Implementation" --to "### 3.4" [--store-root DIR] [--check]
(starts and stops the embedded quality model; about 17 minutes on 2 cores for 4 chunks, a minute
when ``--store-root`` names an earlier run's store, whose response cache replays the answers)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance, shown, stale, write_result  # noqa: E402

MEASURED = ["bench/bench_knowledge_graph_paper.py", "bench/bench_knowledge_graph.py",
            "synth_tasks/methods/knowledge_graph/*.py", "synth_tasks/include/prompts/knowledge_graph/*.txt"]


def section(text: str, start: str, stop: str) -> str:
    """The lines from the one equal to ``start`` up to (not including) the next that starts with
    ``stop``; SystemExit naming what is missing otherwise."""
    lines = text.splitlines()
    try:
        first = next(i for i, line in enumerate(lines) if line.strip() == start)
    except StopIteration:
        raise SystemExit(f"no line {start!r} in the paper") from None
    last = next((i for i in range(first + 1, len(lines)) if lines[i].startswith(stop)), None)
    if last is None:
        raise SystemExit(f"no line starting with {stop!r} after {start!r} in the paper")
    return "\n".join(lines[first:last]) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        problem = stale("knowledge_graph_paper.json")
        print(problem or "bench/results/knowledge_graph_paper.json describes the code here")
        return 1 if problem else 0
    try:
        paper = Path(args[args.index("--paper") + 1])
        start, stop = args[args.index("--from") + 1], args[args.index("--to") + 1]
    except (ValueError, IndexError):
        raise SystemExit(__doc__.split("Run: ")[1]) from None
    if not paper.is_file():
        raise SystemExit(f"{paper}: no such file (a papers DAG run's publish/<paper>/paper.md)")
    store_root = args[args.index("--store-root") + 1] if "--store-root" in args else None
    os.environ.setdefault("SYNTH_RUN_DIR", tempfile.mkdtemp(prefix="kg-paper-bench-run-"))

    import bench_knowledge_graph as kg_bench

    text = section(paper.read_text(encoding="utf-8"), start, stop)
    folder = Path(tempfile.mkdtemp(prefix="kg-paper-bench-docs-"))
    (folder / f"{paper.parent.name}.md").write_text(text, encoding="utf-8")
    result = kg_bench.run("quality", folder, None, store_root)
    for written in result["multi_hop_written"]:
        del written["evidence"]  # the paper's sentences: not ours to publish
    report = {"benchmark": "knowledge_graph_paper", "provenance": provenance(MEASURED),
              "paper": paper.parent.name, "section": {"from": start, "to": stop, "words": len(text.split())},
              "quality": result}
    out = write_result("knowledge_graph_paper.json", report)
    print(json.dumps({k: result[k] for k in ("wall_seconds", "chunks", "graph", "paths", "questions")}, indent=1))
    print(f"written to {shown(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
