"""Seconds of work per record of the mapped text stages that plan their shards on a declared cost
(``Stage(cost=...)``) and had none: curriculum's ``measure``, papers' ``plan``, ``ground`` and
``render``, personas' ``filter`` (bench/results/stage_costs.json).

Each stage function runs as its mapped task runs it (a ``StageRun`` over one shard's records), on
real inputs written by the stage before it:

- curriculum ``measure``: the stories of a curriculum run's ``generate/`` (``--curriculum``; by
  default the newest curriculum partition under build/, e.g. bench_method_quality.py's), measured
  against the shipped stages file and its theme examples;
- papers ``plan``: the 7 papers of ../shared/corpora/papers, extracted here (``extract`` to
  ``publish`` through ``run_method``, no figure descriptions);
- papers ``ground`` and ``render``, personas ``filter``: the pairs and outputs the quality model
  wrote in bench_method_quality.py's papers and personas runs (6 each), copied under new ids to
  ``--copies`` records, so that one record's cost is measured over many.

Per stage: ``cold_s``, the first call on a few records in this process (what one task pays once:
the sentence-embedding model's load, tokenizer and pattern set-up); then ``seconds_per_record``,
the best of ``--repeats`` warm calls over all records (process CPU seconds and wall seconds over
the records). The declared cost stands beside it, per record of the stage (the stage's
``seconds_per_record(cfg)`` over its fan-out: ground's is declared per paper, filter's per persona).

Run: ``.venv/bin/python bench/bench_stage_costs.py`` on a quiet machine (under a minute on 2
cores). ``--check`` says whether the results file still describes the code."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, provenance, shown, stale, write_result  # noqa: E402

RESULT = "stage_costs.json"
MEASURED = ["bench/bench_stage_costs.py", "bench/_common.py", "synth_tasks/stage.py", "synth_tasks/ledger.py",
            "synth_tasks/methods/curriculum/*.py", "synth_tasks/methods/papers/*.py",
            "synth_tasks/methods/personas/*.py", "synth_tasks/quality/*.py", "synth_tasks/text/*.py"]
PAPERS = ROOT.parent / "shared" / "corpora" / "papers"
COLD_RECORDS = 3


def read_parts(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        raise SystemExit(f"{shown(folder)} holds no parquet parts: run the benchmark that writes it first")
    return [row for p in parts for row in pq.read_table(p).to_pylist()]


def newest_partition(method: str) -> Path:
    found = sorted((p for p in ROOT.glob(f"build/*/data/{method}/*") if (p / "generate").is_dir()),
                   key=lambda p: (p / "generate").stat().st_mtime)
    if not found:
        raise SystemExit(f"no {method} run with a generate/ folder under build/: run bench_method_quality.py first")
    return found[-1]


def copies(records: list[dict], n: int) -> list[dict]:
    """``n`` records cycling through ``records``, each under an id of its own."""
    return [records[i % len(records)] | {"id": f"{records[i % len(records)]['id']}~copy{i:05d}"} for i in range(n)]


def timed_call(stage_fn, make_run, records: list[dict]) -> tuple[float, float, object]:
    run = make_run()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stage_fn(run, records)
    return time.process_time() - cpu0, time.perf_counter() - wall0, run


def measure_stage(method, stage_name: str, cfg, records: list[dict], layout, repeats: int,
                  outputs: list | None = None, fan_out: float = 1) -> dict:
    """The stage's cost on ``records``; its outputs (of the last call) are appended to ``outputs``.
    ``fan_out``: the stage's records per record of the shard its cost is declared for (a stage after
    a fan-out declares per record of the shard: ground per paper, its pairs being the paper's jobs)."""
    from synth_tasks.stage import StageRun

    stage = method.stage(stage_name)

    def make_run():
        return StageRun(stage, cfg, layout, 0, 1)

    cold_cpu, cold_wall, _ = timed_call(stage.run, make_run, records[:COLD_RECORDS])
    best = None
    for _ in range(repeats):
        cpu, wall, run = timed_call(stage.run, make_run, records)
        if best is None or cpu < best[0]:
            best = (cpu, wall, run)
    cpu, wall, run = best
    if outputs is not None:
        outputs.extend(run.outputs)
    kept, filtered = len(run.outputs), len(run.ledger.dropped)
    declared = stage.seconds_per_record(cfg) / fan_out
    per_record = wall / len(records)
    return {"records": len(records), "outputs": kept, "filtered": filtered, "counts": dict(run.counts),
            "cold_s": {"cpu": round(cold_cpu, 3), "wall": round(cold_wall, 3), "records": COLD_RECORDS},
            "seconds_per_record": {"cpu": round(cpu / len(records), 6), "wall": round(per_record, 6)},
            "declared_seconds_per_record": round(declared, 6), "fan_out": fan_out,
            "declared_over_measured": round(declared / per_record, 2)}


def curriculum_measure(partition: Path, layout, repeats: int) -> dict:
    from synth_tasks.methods.curriculum import METHOD
    from synth_tasks.methods.curriculum.config import CurriculumConfig

    from synth_tasks.methods.curriculum.stages import curriculum_json
    from synth_tasks.methods.curriculum.stages_file import build_curriculum, parse_stages
    from synth_tasks.prompts import include_dir

    # measured against the shipped stages file (its theme examples included), as a run started now
    # would measure them, whatever the run that wrote the stories carried
    folder = include_dir() / "configs" / "curriculum"
    shipped = curriculum_json(build_curriculum(parse_stages((folder / "stages.yaml").read_text()),
                                               lambda rel: (folder / rel).read_text()))
    stories = [story | {"curriculum": shipped} for story in read_parts(partition / "generate")]
    return {"input": shown(partition / "generate")} | measure_stage(METHOD, "measure", CurriculumConfig(), stories,
                                                                     layout, repeats)


def papers_stages(store, data: Path, n_copies: int, repeats: int) -> dict:
    from synth_tasks.methods.papers import METHOD
    from synth_tasks.methods.papers.config import PapersConfig
    from synth_tasks.methods.papers.stages import jobs_per_paper
    from synth_tasks.pipeline import run_method
    from synth_tasks.storage import RunLayout

    os.environ["SYNTH_INPUT_ROOTS"] = str(PAPERS)
    cfg = PapersConfig()
    layout = RunLayout(store, "papers", "extracted")
    started = time.monotonic()
    run_method(METHOD, cfg, layout, f"file://{PAPERS}", until="publish")
    extract_s = time.monotonic() - started
    partition = data / layout.dag_id / layout.partition
    papers = read_parts(partition / "publish")
    # describe's requests: one a figure (with describe_figures), so its cost is the figures a paper holds
    figures = {p["paper_id"]: len(p["figures"]) for p in read_parts(partition / "describe")}
    out = {"figures_per_paper": {"papers": figures, "mean": round(sum(figures.values()) / len(figures), 2)},
           "plan": {"input": f"{PAPERS.relative_to(ROOT.parent)} ({len(papers)} papers, extracted in "
                             f"{extract_s:.0f} s)"} | measure_stage(METHOD, "plan", cfg, papers, layout, repeats)}
    quality = newest_partition("papers")
    pairs, grounded = copies(read_parts(quality / "generate"), n_copies), []
    out["ground"] = {"input": f"{shown(quality / 'generate')}, copied"} | \
        measure_stage(METHOD, "ground", cfg, pairs, layout, repeats, grounded, fan_out=jobs_per_paper(cfg))
    out["render"] = {"input": "the pairs ground kept"} | measure_stage(METHOD, "render", cfg, grounded, layout,
                                                                        repeats)
    return out


def personas_filter(layout, n_copies: int, repeats: int) -> dict:
    from synth_tasks.methods.personas import METHOD
    from synth_tasks.methods.personas.config import PersonasConfig

    quality = newest_partition("personas")
    summary = json.loads((quality / "_summary.json").read_text())
    cfg = PersonasConfig.model_validate(summary["config"])  # the run's own settings: its templates and checks
    outputs = copies(read_parts(quality / "generate"), n_copies)
    return {"input": f"{shown(quality / 'generate')}, copied"} | measure_stage(
        METHOD, "filter", cfg, outputs, layout, repeats, fan_out=len(cfg.templates))  # an output a template


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--curriculum", type=Path, help="a curriculum partition with generate/ (default: newest)")
    parser.add_argument("--copies", type=int, default=300, help="records of the copied inputs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.check:
        print(stale(RESULT) or f"{RESULT} is current")
        return 0
    if not PAPERS.is_dir():
        sys.exit(f"{PAPERS} is missing: this benchmark needs ../shared/corpora/papers")
    prov = provenance(MEASURED)
    from synth_tasks.storage import RunLayout, Store

    with tempfile.TemporaryDirectory(prefix="bench-costs-") as tmp:
        store = Store(f"file://{tmp}/data")
        layout = RunLayout(store, "costs", "bench")
        report = {"what": "seconds of work per record of the mapped text stages, as their tasks run them",
                  "curriculum": {"measure": curriculum_measure(args.curriculum or newest_partition("curriculum"),
                                                               layout, args.repeats)},
                  "papers": papers_stages(store, Path(tmp) / "data", args.copies, args.repeats),
                  "personas": {"filter": personas_filter(layout, args.copies, args.repeats)},
                  "load_avg_after": [round(x, 2) for x in os.getloadavg()], "provenance": prov}
    print(json.dumps({k: v for k, v in report.items() if k != "provenance"}, indent=1))
    print("wrote", shown(write_result(RESULT, report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
