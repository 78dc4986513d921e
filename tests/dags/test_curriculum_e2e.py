"""The curriculum DAG through Airflow (dag.test): on a fake OpenAI-compatible endpoint with
deterministic, stage-graded replies (every assertion exact), and once on the embedded model."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, load_dag, run_dag, run_state
from tests.dags.test_mind_e2e import _jsonl
from tests.synth_tasks.methods.curriculum_replies import CurriculumReplies

pytestmark = [pytest.mark.airflow]

STAGES = ["basic-perception", "object-recognition", "spatial-physics", "language-communication",
          "abstract-reasoning", "social-cognition"]
SMALL = {"items_per_stage": 2, "eval_items_per_stage": 2, "shard_size": 8, "duplicate_threshold": 99.0,
         "max_tokens": 200}
# dag.test() keeps the last run's Params on the DAG object: every run names its input
BASE_CONF = {"input_path": "include/configs/curriculum/stages.yaml"}


@pytest.fixture(scope="module")
def curriculum_dag(airflow_db):
    return load_dag("curriculum", ROOT / "dags" / "curriculum.py")


def test_ordered_shards_manifest_eval_splits_and_report(curriculum_dag, fault_server, monkeypatch, tmp_path, capsys):
    fault_server.responder = CurriculumReplies()
    monkeypatch.setenv("SYNTH_LLM_BASE_URL", fault_server.base_url)
    monkeypatch.setenv("SYNTH_LLM_MODEL", "fault-model")
    run = run_dag(curriculum_dag, BASE_CONF | SMALL | {"schedule": "hybrid"})
    assert run.state == "success"
    store, base = run.store, run.base
    summary = store.read_json(f"{base}/_summary.json")
    assert summary["accounted_for"] and summary["problems"] == []
    st = summary["stages"]
    assert st["prepare"]["produced"] == 24 and st["generate"]["kept"] == 24
    assert st["measure"]["kept"] == 24 and st["questions"]["kept"] == 24 and st["dedup"]["kept"] == 24
    assert st["evaluate"]["kept"] == 24

    final = f"{base}/final"
    manifest = store.read_json(f"{final}/curriculum.json")
    assert manifest["stage_order"] == STAGES
    assert [s["folder"] for s in manifest["stages"]] == [f"stage-{i + 1:02d}-{n}" for i, n in enumerate(STAGES)]
    assert [s["train"] for s in manifest["stages"]] == [2] * 6 and [s["eval"] for s in manifest["stages"]] == [2] * 6
    grades = [s["difficulty"]["fk_grade"]["mean"] for s in manifest["stages"]]
    assert grades == sorted(grades) and len(set(grades)) == 6, grades  # strictly rising
    assert manifest["check"]["ok"] and len(manifest["check"]["steps"]) == 5  # each step with its interval
    # every story was written on its stage's theme (measured before the theme filter)
    assert [s["theme"] for s in manifest["stages"]] == [{"measured": 4, "on_theme": 4, "share": 1.0}] * 6
    for i, s in enumerate(manifest["stages"]):
        rows = store.read_parquet(f"{final}/{s['folder']}/part-00000.parquet")
        assert len(rows) == 2 and {r["stage"] for r in rows} == {STAGES[i]}
        assert all(r["measures"]["fk_grade"] == pytest.approx(grades[i], abs=0.5) for r in rows)
    # hybrid: phase k is stage k at 0.75 plus the earlier stages sharing 0.25
    phases = manifest["schedule"]["phases"]
    assert manifest["schedule"]["kind"] == "hybrid" and len(phases) == 6
    assert phases[0]["shards"] == [{"path": "stage-01-basic-perception/part-00000.parquet", "weight": 1.0}]
    third = {e["path"].split("/")[0]: e["weight"] for e in phases[2]["shards"]}
    assert third == {"stage-01-basic-perception": 0.125, "stage-02-object-recognition": 0.125,
                     "stage-03-spatial-physics": 0.75}

    # evaluation splits: answerable questions, none of them in training
    training = _jsonl(store, summary["outputs"]["train_jsonl"])
    assert len(training) == 12
    for i, name in enumerate(STAGES):
        evals = _jsonl(store, f"{final}/eval/stage-{i + 1:02d}-{name}.jsonl")
        assert [e["eval_type"] for e in evals] == ["short_answer", "multiple_choice"]
        assert all(e["answer"] in e["text"] for e in evals)
        assert {e["id"] for e in evals}.isdisjoint({t["id"] for t in training})
        assert {e["text"] for e in evals}.isdisjoint({t["text"] for t in training})
    # the fake model under test answers the first three stages right, the others wrong
    report = store.read_json(f"{final}/eval_report.json")
    assert [s["score"] for s in report["stages"]] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert report["first_not_mastered"] == "language-communication" and report["model"] == "fault-model"
    assert report["mastered_through"] == "spatial-physics"

    # the same evaluation from the command line, on any OpenAI-compatible endpoint; scored by match
    # and by an LLM judge (multiple-choice letters are not the reference text: the judge says wrong)
    from synth_tasks.methods.curriculum.evaluation import main

    out = tmp_path / "report.json"
    assert main([final, "--base-url", fault_server.base_url, "--model", "fault-model",
                 "--out", str(out)]) == 0
    cli_report = json.loads(out.read_text())
    assert [s["score"] for s in cli_report["stages"]] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert len(cli_report["items"]) == 12 and "mastered" in capsys.readouterr().out
    assert main([final, "--base-url", fault_server.base_url, "--model", "fault-model",
                 "--judge-base-url", fault_server.base_url, "--out", str(out)]) == 0
    judged = json.loads(out.read_text())
    assert judged["scored_by"] == "judge" and [s["score"] for s in judged["stages"]] == [0.5, 0.5, 0.5, 0.0, 0.0, 0.0]


def test_a_stages_file_that_does_not_rise_fails_the_check(curriculum_dag, fault_server, monkeypatch, tmp_path):
    """The same stages in another order (social cognition first): with items kept where planned,
    the measured grade falls, and the export fails naming the check."""
    import shutil

    import yaml

    from synth_tasks.prompts import include_dir

    src = include_dir() / "configs" / "curriculum"
    shutil.copytree(src / "vocab", tmp_path / "vocab")
    spec = yaml.safe_load((src / "stages.yaml").read_text())
    spec["stages"] = [spec["stages"][5], spec["stages"][0]]
    del spec["theme_examples"]  # its stories name the shipped stages; this file keeps two of them
    for s in spec["stages"]:
        s["grade"], s["max_oov"] = [None, None], None
    (tmp_path / "stages.yaml").write_text(yaml.safe_dump(spec))
    fault_server.responder = CurriculumReplies()
    monkeypatch.setenv("SYNTH_LLM_BASE_URL", fault_server.base_url)
    monkeypatch.setenv("SYNTH_LLM_MODEL", "fault-model")
    run = run_dag(curriculum_dag, BASE_CONF | SMALL | {"input_path": str(tmp_path / "stages.yaml"), "evaluate": False})
    dag_run = run.dag_run
    assert run.state == "failed"
    assert run_state(dag_run.get_task_instance("export")) == "failed"
    assert run_state(dag_run.get_task_instance("dedup")) == "success"


@pytest.mark.llm
def test_embedded_model_run_balances(curriculum_dag, embedded_llm):
    """One item per stage and split on the embedded 135M model (kept small: it shares the test run's
    budget): whatever it writes, every item is kept where planned, filtered with its reason or
    failed. No evaluation: the 135M model's questions are rarely answerable, and evaluating nothing
    fails a run (the fake-endpoint test above covers the evaluation)."""
    # seed 2: the 135M model cuts most stories at 128 tokens; with this seed one training story of
    # the 12 survives (seeds 0, 1 and 3 keep none since the object and social prompts changed), so
    # the export has a record to write and the run can fail if none reaches it
    run = run_dag(curriculum_dag, BASE_CONF | {"items_per_stage": 1, "eval_items_per_stage": 1, "max_tokens": 128,
                                               "question_max_tokens": 96, "check_rising": False, "evaluate": False,
                                               "seed": 2})
    assert run.state == "success"
    store, base = run.store, run.base
    summary = store.read_json(f"{base}/_summary.json")
    assert summary["accounted_for"] and summary["problems"] == []
    assert summary["stages"]["generate"]["input"] == 12 and summary["usage"]["requests"] >= 12
    manifest = store.read_json(f"{base}/final/curriculum.json")
    assert manifest["stage_order"] == STAGES
    print(json.dumps({k: (summary["stages"][k]["kept"], summary["stages"][k]["filter_reasons"],
                          summary["stages"][k]["error_kinds"]) for k in ("generate", "measure", "questions", "dedup")}))
    print(json.dumps([{k: s[k] for k in ("stage", "train", "eval", "theme")}
                      | {"fk_grade": s["difficulty"].get("fk_grade")} for s in manifest["stages"]]))
    print(json.dumps({"check": manifest["check"], "evaluation": manifest["evaluation"]}))
    assert manifest["evaluation"] is None
