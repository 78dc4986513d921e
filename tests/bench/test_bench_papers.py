"""bench/bench_papers.py end to end on the shipped sample paper (one round), writing its results under
tmp_path: the script runs, both extractors are timed, and what it reports found matches the paper."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _common  # noqa: E402


def test_bench_papers_runs_on_the_sample(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_papers", BENCH / "bench_papers.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(_common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(bench, "CORPUS", tmp_path / "no-corpus-here")
    assert bench.main(["--rounds", "1"]) == 0
    report = json.loads((tmp_path / "results" / "papers.json").read_text())
    assert report["papers_from"] == "main/include/sample_data/papers" or report["papers_from"].endswith("sample_data/papers")
    (paper,) = report["papers"].values()
    assert paper["pages"] == 3 and paper["by_kind"]["table"] == 2 and paper["by_kind"]["figure_caption"] == 2
    assert [t["grid"] for t in paper["tables"]] == [[4, 4], [3, 3]]
    assert paper["pages_per_s"]["ours"] > 0 and paper["pages_per_s"]["pypdf"] > 0
    assert report["total"]["pages"] == 3 and report["provenance"]["measured_files"]
