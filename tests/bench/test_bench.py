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
    assert bench.main(["--part", "overhead", "--overhead-pairs", "2", "--overhead-concurrency", "4",
                       "--overhead-max-chunks", "2", "--overhead-warmup-chunks", "1",
                       "--simultaneous-rounds", "2"]) == 0
    report = json.loads((common.RESULTS / "overhead.json").read_text())
    (result,) = report["results"]
    assert result["concurrency"] == 4 and "A B B A" in report["design"]
    # the verdict: fresh processes in the order A B B A, one ratio per consecutive pair
    assert [c["side"] for c in result["children"]] == ["pipeline", "sdk", "sdk", "pipeline"]
    assert all(c["requests"] == 14 and c["warmup_requests"] == 7 and c["cpu_s"] > 0 for c in result["children"])
    assert [p["order"] for p in result["pairs"]] == ["pipeline,sdk", "sdk,pipeline"]
    summary = result["summary"]
    assert summary["pipeline_vs_sdk"]["n"] == 2 and summary["goal"] == 0.95 and summary["verdict"]
    # the secondary design: every side at the same time as its bare-SDK side, both doing the same requests
    simultaneous = result["simultaneous"]
    assert len(simultaneous["rounds"]) == 3 and simultaneous["rounds"][0]["warmup"]
    assert all(0 < r[f"{side}_overlap"] <= 1 and r[f"{side}_sdk_cpu_s"] > 0 for r in simultaneous["rounds"]
               for side in ("pipeline", "client", "client_nocache", "httpx"))
    assert "toward 1" in report["simultaneous_design"]
    assert report["provenance"]["commit"]
    (run,) = report["runs"]  # the first run on these sources
    assert run["results"]["4"]["verdict"] == summary["verdict"]


def test_the_runs_on_the_same_sources_are_kept_in_the_results_file(common):
    bench = _load("bench_generation")
    prov = common.provenance(bench.MEASURED)
    common.write_result("overhead.json", {"provenance": prov, "runs": [{"when": "earlier"}]})
    assert bench.earlier_runs(prov) == [{"when": "earlier"}]
    assert bench.earlier_runs(prov | {"sources_sha256": "0" * 64}) == []  # measured on other code


def test_the_pipeline_and_the_bare_sdk_send_identical_requests(tmp_path):
    """Both sides of the overhead benchmark send the same bodies (model, messages, sampling, seed)
    with the same headers, recorded by the instant server; the bare httpx side the same bodies."""
    bench = _load("bench_generation")
    from synth_tasks.storage import Store

    store = Store(f"file://{tmp_path}/store")
    recorded = {}
    for side in ("pipeline", "sdk", "httpx"):
        record = tmp_path / f"{side}.jsonl"
        server, endpoint = bench.instant_endpoint(record=str(record))
        try:
            cfg = bench.overhead_cfg(concurrency=4, seed=11, max_chunks=1)
            layout, ((handoff, jobs),) = bench.prepare(store, f"p-{side}", cfg, f"file://{bench.SAMPLE}")
            assert bench.pipeline_counts(bench.side_fn(side, cfg, layout, handoff, jobs, endpoint)())["requests"] == 7
        finally:
            server.terminate()
            server.wait()
        recorded[side] = [json.loads(line) for line in record.read_text().splitlines()]

    def bodies(side):
        return sorted(json.dumps(r["body"], sort_keys=True) for r in recorded[side])

    def headers(side):  # the host names each side's own server's port
        return sorted(json.dumps({k: v for k, v in r["headers"].items() if k != "host"}, sort_keys=True)
                      for r in recorded[side])

    assert len(recorded["pipeline"]) == 7 and len(set(bodies("pipeline"))) == 7  # 7 styles, 7 seeds
    first = recorded["pipeline"][0]["body"]
    assert {"model", "messages", "temperature", "top_p", "max_tokens", "seed"} <= set(first)
    assert bodies("pipeline") == bodies("sdk") == bodies("httpx")
    assert headers("pipeline") == headers("sdk")


def test_the_paper_benchmark_reads_one_section_and_names_a_missing_heading():
    paper = _load("bench_knowledge_graph_paper")
    text = "# Title\n## 2 Model\nx\n## 3 Implementation\nThe master assigns tasks.\n### 3.1 Overview\nWorkers run them.\n" \
           "### 3.4 Locality\nNear the data.\n## 4 Refinements\n"
    assert paper.section(text, "## 3 Implementation", "### 3.4") == \
        "## 3 Implementation\nThe master assigns tasks.\n### 3.1 Overview\nWorkers run them.\n"
    with pytest.raises(SystemExit, match="no line '## 5 Results'"):
        paper.section(text, "## 5 Results", "## 6")
    with pytest.raises(SystemExit, match="no line starting with '## 9'"):
        paper.section(text, "## 3 Implementation", "## 9")
