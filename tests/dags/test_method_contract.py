"""DAGs are built from method declarations: the fixture method runs end to end from its declaration
alone, every real DAG's tasks, mapping and pools are its declaration's, and the trigger form is
generated with titles and sections."""

from __future__ import annotations

import json

import pytest

from synth_tasks.method import load_method, method_names
from tests.conftest import FIXTURE_DAGS, ROOT, load_dag, run_dag, run_state

pytestmark = [pytest.mark.airflow]


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags


@pytest.fixture(scope="module")
def uppercase_dag(airflow_db):
    return load_dag("uppercase", FIXTURE_DAGS)



def test_the_fixture_method_runs_end_to_end_from_its_declaration(uppercase_dag):
    run = run_dag(uppercase_dag, {"train_ratio": 1.0})
    assert run.state == "success"
    dag_run, store, base = run.dag_run, run.store, run.base
    summary = store.read_json(f"{base}/_summary.json")
    assert summary["accounted_for"] and summary["stage_order"] == ["prepare", "shout", "export"]
    stages = summary["stages"]
    # four rows: one has no text (failed, naming file and row), one is too short (filtered), two kept
    assert (stages["prepare"]["kept"], stages["prepare"]["failed"]) == (3, 1)
    assert stages["prepare"]["error_kinds"] == {"bad_type": 1}
    assert (stages["shout"]["kept"], stages["shout"]["filtered"]) == (2, 1)
    train = [json.loads(line) for line in store.read_bytes(f"{base}/final/train.jsonl").splitlines()]
    assert [r["text"] for r in train] == ["HELLO WORLD", "SYNTHETIC DATA, MADE PLAIN"]
    dropped = store.read_parquet(f"{base}/_dropped/shout/part-00000.parquet")
    assert dropped == [{"id": "b", "reason": "too_short: 2 < 3 characters", "text": "hi"}]
    # the export's Asset event says where this run's final/ lies, for DAGs triggered by it
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).filter(
            AssetModel.uri == "x-synth://uppercase/final", AssetEvent.source_run_id == dag_run.run_id).all()
        assert [e.extra for e in events] == [{"dag_id": "uppercase", "partition": base.rsplit("/", 1)[1],
                                              "url": f"{base}/final"}]


@pytest.mark.parametrize("dag_id", method_names())
def test_each_dag_is_its_declaration(dags, dag_id):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    method = load_method(dag_id)
    dag = dags[dag_id]
    assert [t.task_id for t in dag.topological_sort()] == method.stage_order
    for stage in method.stages:
        task = dag.get_task(stage.name)
        assert isinstance(task, MappedOperator) == stage.mapped, stage.name
        assert task.pool == ("synth_llm" if stage.llm else "default_pool"), stage.name
        assert task.max_active_tis_per_dagrun == method.config.model_fields["max_active_tasks_per_run"].default
        assert task.retries >= 1
        assert task.doc_md, f"{stage.name}: its function's docstring is the task's doc"
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    order = method.stage_order
    assert all(upstream[nxt] == [prev] for prev, nxt in zip(order, order[1:]))


@pytest.mark.parametrize("dag_id", method_names())
def test_the_trigger_form_has_titles_and_sections_method_first(dags, dag_id):
    from synth_tasks.config import SECTIONS

    params = dags[dag_id].params
    sections = []
    for name in params:
        schema = params.get_param(name).schema
        assert schema.get("title") and schema.get("section") in SECTIONS, name
        assert params.get_param(name).description, name
        if schema["section"] not in sections:
            sections.append(schema["section"])
    assert sections == sorted(sections, key=SECTIONS.index), "grouped, in SECTIONS order"
    assert sections[-1] == "Scheduling" and sections[0] == "Input"  # methods without an LLM have no endpoint section
    for name in params:
        schema = params.get_param(name).schema
        if schema.get("type") == "array" and "enum" in schema.get("items", {}):
            assert schema["examples"] == schema["items"]["enum"], f"{name} is a multi-select"


@pytest.mark.parametrize("dag_id", method_names())
def test_each_export_updates_its_dags_final_asset(dags, dag_id):
    from synth_tasks.airflow_glue import asset_for

    assert dags[dag_id].get_task("export").outlets == [asset_for(f"{dag_id}/final")]


def test_a_method_triggered_by_assets_runs_daily_and_on_their_updates(dags):
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable

    from synth_tasks.airflow_glue import asset_for

    method = load_method("data_selection")
    assert method.triggered_by == ("instruct/final",)
    timetable = dags["data_selection"].timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert isinstance(timetable.timetable, CronDataIntervalTimetable)
    assert timetable.asset_condition.objects == (asset_for("instruct/final"),)
    # the others only daily
    assert isinstance(dags["mind"].timetable, CronDataIntervalTimetable)


def test_a_method_cannot_be_triggered_by_its_own_assets():
    from dataclasses import replace

    method = load_method("papers")
    with pytest.raises(ValueError, match="own Assets"):
        replace(method, triggered_by=("papers/extracted",))
    with pytest.raises(ValueError, match="own Assets"):
        replace(method, triggered_by=("papers/final",))


def test_mind_styles_are_a_multi_select(dags):
    styles = dags["mind"].params.get_param("styles").schema
    assert styles["type"] == "array" and "teacher_student" in styles["examples"]


def test_a_parse_time_setting_changed_at_trigger_fails_the_run_naming_it(uppercase_dag):
    run = run_dag(uppercase_dag, {"max_active_tasks_per_run": 9})
    ti = run.dag_run.get_task_instance("prepare")
    assert run.state == "failed" and run_state(ti) == "failed" and ti.try_number == 1
