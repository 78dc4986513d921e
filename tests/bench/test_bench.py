"""The benchmark's statistics and provenance, and a short overhead run end to end (so a change to
the stage or the client that breaks the benchmark shows here, not at the next `make bench`)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))  # as the scripts themselves do: bench/ is no package

import _common  # noqa: E402


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def common(tmp_path, monkeypatch):
    """bench/_common.py, writing its results under tmp_path instead of bench/results."""
    monkeypatch.setattr(_common, "RESULTS", tmp_path / "results")
    return _common


def test_mean_ci95_uses_student_t(common):
    ci = common.mean_ci95([0.9, 1.0, 1.1, 1.0])
    # mean 1.0, sd 0.0816, t(3) = 3.182: half width 0.1299
    assert ci["mean"] == 1.0 and ci["ci95"] == [0.8701, 1.1299] and ci["n"] == 4
    with pytest.raises(ValueError):
        common.mean_ci95([1.0])


def test_ratio_ci95_is_a_geometric_mean_so_a_ratio_and_its_inverse_agree(common):
    ratios = [0.5, 2.0, 1.0, 1.0]
    ci = common.ratio_ci95(ratios)
    assert ci["geometric_mean"] == 1.0 and ci["ci95"][0] < 1.0 < ci["ci95"][1]  # the arithmetic mean says 1.125
    inverse = common.ratio_ci95([1 / r for r in ratios])
    assert inverse["ci95"] == pytest.approx([1 / ci["ci95"][1], 1 / ci["ci95"][0]], rel=1e-3)


def test_a_goal_is_met_only_when_the_whole_interval_clears_it(common):
    assert common.verdict({"ci95": [0.91, 0.95]}, 0.9) == "met"
    assert common.verdict({"ci95": [0.88, 0.95]}, 0.9) == "undecided"
    assert common.verdict({"ci95": [0.80, 0.89]}, 0.9) == "missed"


def test_provenance_names_the_commit_and_a_stale_file_is_told(common):
    prov = common.provenance(["bench/_common.py", "synth_tasks/llm/client.py"])
    assert prov["commit"] and len(prov["commit"]) == 40
    assert prov["measured_files"] == ["bench/_common.py", "synth_tasks/llm/client.py"]
    common.write_result("x.json", {"provenance": prov})
    assert common.stale("x.json") is None
    recorded = json.loads((common.RESULTS / "x.json").read_text())
    recorded["provenance"]["sources_sha256"] = "0" * 64  # as if measured on other code
    (common.RESULTS / "x.json").write_text(json.dumps(recorded))
    assert "regenerate" in common.stale("x.json")
    assert "missing" in common.stale("nothing.json")


def test_overhead_runs_end_to_end(common):
    bench = _load("bench_generation")
    assert bench.main(["--part", "overhead", "--overhead-rounds", "2", "--overhead-concurrency", "4",
                       "--overhead-max-chunks", "2"]) == 0
    report = json.loads((common.RESULTS / "overhead.json").read_text())
    (result,) = report["results"]
    assert result["concurrency"] == 4 and len(result["rounds"]) == 3 and result["rounds"][0]["warmup"]
    assert all(r["requests"] == 14 for r in result["rounds"])  # 2 contexts x 7 styles
    assert {"pipeline_vs_sdk", "verdict", "httpx_vs_sdk"} <= set(result["summary"])
    # every side ran at the same time as its bare-SDK side, and both did the same requests
    assert all(0 < r[f"{side}_overlap"] <= 1 and r[f"{side}_sdk_cpu_s"] > 0 for r in result["rounds"]
               for side in ("pipeline", "client", "client_nocache", "httpx"))
    assert report["provenance"]["commit"]
