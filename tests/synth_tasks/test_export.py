"""The export: split, final files, and a summary that adds up the stats the stages wrote."""

from __future__ import annotations

import json
import time

from synth_tasks.config import MethodConfig
from synth_tasks.method import Export, Method, Stage
from synth_tasks.pipeline import run_method


class Cfg(MethodConfig):
    input_path: str = "unused"


def _slow_prepare(run, files):
    time.sleep(1.0)  # the run's wall time must include its first stage
    for i in range(4):
        run.kept(f"r{i}", {"id": f"r{i}", "doc": f"d{i % 2}"})


def _extra(ctx, train, validation):
    ctx.info["sides"] = [len(train), len(validation)]
    return {"ids": ctx.store.write_json(f"{ctx.final_dir}/ids.json", sorted(r["id"] for r in ctx.records))}


METHOD = Method(dag_id="e", config=Cfg, stages=(Stage("prepare", _slow_prepare, mapped=False),),
                export=Export(group_key="doc", records=lambda rs: [r | {"final": True} for r in rs],
                              extra_files=_extra))


def _run(layout, tmp_path):
    (tmp_path / "x.jsonl").write_text("{}\n")
    result = run_method(METHOD, Cfg(train_ratio=0.5), layout, f"file://{tmp_path}/x.jsonl")["export"]
    return layout.store.read_json(result["summary"])


def test_wall_time_counts_from_the_start_of_the_first_stage(layout, tmp_path):
    # Bug fixed: started_at was stamped at the end of prepare, so wall_seconds left prepare out.
    assert _run(layout, tmp_path)["wall_seconds"] >= 1.0


def test_the_export_stage_reports_what_it_wrote(layout, tmp_path):
    # Bug fixed: the export's produced was patched into the result after its stats were built.
    summary = _run(layout, tmp_path)
    on_disk = layout.store.read_json(layout.stats_part("export", 0))
    written = summary["counts"]["train"] + summary["counts"]["validation"]
    assert on_disk["produced"] == summary["stages"]["export"]["produced"] == written == 4
    assert on_disk["input"] == on_disk["kept"] == 4


def test_records_transform_extra_files_and_info(layout, tmp_path):
    summary = _run(layout, tmp_path)
    train = [json.loads(line) for line in layout.store.read_bytes(summary["outputs"]["train_jsonl"]).splitlines()]
    assert train and all(r["final"] for r in train)
    assert layout.store.read_json(summary["outputs"]["ids"]) == ["r0", "r1", "r2", "r3"]
    assert summary["info"]["sides"] == [summary["counts"]["train"], summary["counts"]["validation"]]
    assert {r["doc"] for r in train} in ({"d0"}, {"d1"})  # grouped: one document per side


def test_a_stage_that_never_ran_is_a_problem(layout, tmp_path):
    from synth_tasks.export import check_chain
    from synth_tasks.ledger import summarize_stages

    stages = summarize_stages([{"stage": "a", "shard": 0, "input": 1, "kept": 1, "filtered": 0, "failed": 0}])
    assert check_chain(stages, ["a", "b"]) == ["stage b wrote no stats: did it run?"]


def test_a_failed_rerun_leaves_the_last_good_output_readable(layout, tmp_path):
    import pytest

    from synth_tasks.inputs import InputError

    good = _run(layout, tmp_path)
    final = {u: layout.store.read_bytes(u) for u in layout.store.list_files(layout.final_dir)}
    summary = layout.store.read_bytes(layout.summary)
    assert len(final) == 9 and good["accounted_for"]  # splits x2 formats, ids.json, the card and 3 plots

    # the day's input has gone: the re-run fails before it clears anything
    with pytest.raises(InputError):
        run_method(METHOD, Cfg(), layout, f"file://{tmp_path}/moved-away.jsonl")
    assert layout.store.exists(layout.stats_part("prepare", 0))

    # a re-run that fails at its export leaves final/ and the summary as they were
    def broken_extra(ctx, train, validation):
        raise RuntimeError("disk full")

    broken = Method(dag_id="e", config=Cfg, stages=METHOD.stages,
                    export=Export(group_key="doc", extra_files=broken_extra))
    with pytest.raises(RuntimeError, match="disk full"):
        run_method(broken, Cfg(), layout, f"file://{tmp_path}/x.jsonl")
    assert {u: layout.store.read_bytes(u) for u in layout.store.list_files(layout.final_dir)} == final
    assert layout.store.read_bytes(layout.summary) == summary
