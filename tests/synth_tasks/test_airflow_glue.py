from types import SimpleNamespace

import pendulum
import pytest

from synth_tasks import airflow_glue as glue
from synth_tasks.methods.mind.config import MindConfig

DAY = pendulum.datetime(2026, 3, 4, tz="UTC")


def _ctx(run_type: str, run_id: str = "scheduled__2026-03-04T00:00:00+00:00"):
    return {"dag_run": SimpleNamespace(run_type=run_type, run_id=run_id), "data_interval_start": DAY,
            "logical_date": DAY}


def test_the_environment_comes_from_the_task_context():
    scheduled = glue.environment_for(_ctx("scheduled"))
    assert scheduled.partition == "2026-03-04" and scheduled.day == "2026-03-04"
    assert glue.environment_for(_ctx("backfill", "backfill__2026-03-04T00:00:00+00:00")).partition == "2026-03-04"
    manual = glue.environment_for(_ctx("manual", "manual__2026-03-04T10:11:12+00:00"))
    assert manual.partition == "run-manual__2026-03-04T10~3A11~3A12~2B00~3A00"
    assert manual.resolve_input("s3://b/raw/{ds}/*.jsonl") == "s3://b/raw/2026-03-04/*.jsonl"
    # a manual run named like a day still gets a partition of its own
    assert glue.environment_for(_ctx("manual", "2026-03-04")).partition == "run-2026-03-04"


def test_params_mirror_the_config():
    params = glue.params_from_config(MindConfig)
    assert set(params) == set(MindConfig.model_fields)
    assert params["chunk_tokens"].value == 500
    assert params["chunk_tokens"].schema["minimum"] == 50
    assert params["styles"].schema["items"]["enum"][0] == "two_students"
    assert all(p.description for p in params.values())


def test_params_are_titled_and_grouped_in_form_sections_method_first():
    params = glue.params_from_config(MindConfig)
    assert params["llm_conn_id"].schema["title"] == "LLM connection"
    styles = params["styles"].schema
    assert (styles["type"], styles["section"], styles["title"]) == ("array", "Method", "Styles")
    assert params["styles"].schema["examples"] == [str(s) for s in MindConfig.model_fields["styles"].default]
    order = list(params)
    assert order.index("input_path") < order.index("styles") < order.index("temperature") < order.index("llm_conn_id")
    assert order[-3:] == ["shard_size", "max_active_tasks_per_run", "llm_pool"]  # rarely changed: last


def test_the_cli_leaves_partitions_and_airflow_to_the_glue():
    import inspect

    from synth_tasks import cli

    assert "re.sub" not in inspect.getsource(cli) and "airflow" not in inspect.getsource(cli).replace(
        "airflow_glue", "")


def test_enum_fields_keep_their_default_and_description_as_params():
    from synth_tasks.methods.instruct.config import InstructConfig

    params = glue.params_from_config(InstructConfig)
    judge = params["judge"]
    assert judge.value == "llm" and judge.schema["enum"] == ["llm", "reward_model"] and judge.description
    assert params["judge_weights"].value["helpfulness"] == 0.3
    assert params["judge_weights"].schema["additionalProperties"] == {"type": "number"}
    for param in params.values():
        param.resolve()  # every default passes its own schema (else Airflow refuses the schedule)


def test_bad_params_fail_without_retries_naming_the_field():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="top_p"):
        glue.config_from_params(MindConfig, {"top_p": 3})


def test_llm_endpoint_from_an_airflow_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MY_VLLM", '{"conn_type": "http", "host": "http://10.0.0.5:8000/v1", '
                       '"password": "sk-secret", "extra": {"model": "qwen", "provider": "vllm"}}')
    endpoint = glue.llm_endpoint("my_vllm")
    assert endpoint.base_url == "http://10.0.0.5:8000/v1" and endpoint.model == "qwen"
    assert endpoint.api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(endpoint) and "sk-secret" not in str(endpoint.model_dump())
    assert glue.llm_endpoint("my_vllm", model_override="other").model == "other"


def test_a_missing_named_connection_fails_naming_it_and_only_the_default_falls_back(monkeypatch, tmp_path):
    from synth_tasks.config import ConfigError

    with pytest.raises(ConfigError, match="'my_typo' does not exist"):
        glue.llm_endpoint("my_typo")
    monkeypatch.setenv("SYNTH_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SYNTH_LLM_MODEL", "env-model")
    assert glue.llm_endpoint("synth_llm").model == "env-model"


def test_a_missing_connection_fails_the_first_stage_before_it_writes(monkeypatch, tmp_path):
    """Checked in prepare, before the partition's working folders are cleared, not in the first
    LLM stage after prepare has rewritten them."""
    from airflow.sdk.exceptions import AirflowFailException

    from synth_tasks.method import load_method

    monkeypatch.setenv("SYNTH_DATA_ROOT", f"file://{tmp_path}/data")
    ctx = _ctx("scheduled") | {"params": {"llm_conn_id": "my_typo"}}
    earlier = tmp_path / "data" / "mind" / "2026-03-04" / "generate" / "part-00000.parquet"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier run's shard")
    with pytest.raises(AirflowFailException, match="LLM connection 'my_typo' does not exist"):
        glue.run_stage_task(load_method("mind"), "prepare", None, ctx)
    assert earlier.read_bytes() == b"an earlier run's shard"
    assert not (earlier.parent.parent / "prepare").exists()


def test_a_local_run_parses_only_its_own_dag_file(tmp_path):
    (tmp_path / "mind.py").write_text("")
    (tmp_path / "_helpers.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert glue.dag_source("mind", str(tmp_path)) == str(tmp_path / "mind.py")
    assert glue.dag_source("elsewhere", str(tmp_path)) == str(tmp_path)  # no namesake file: the whole folder
    assert glue.dag_file_stems(str(tmp_path)) == {"mind"}


@pytest.mark.airflow
def test_the_pre_run_sync_parses_a_bundle_only_while_one_of_its_dags_is_unknown(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing import dagbag

    from tests.conftest import FIXTURE_DAGS, ROOT

    parsed = []
    real = dagbag.BundleDagBag
    monkeypatch.setattr(dagbag, "BundleDagBag", lambda **kw: parsed.append(kw["bundle_name"]) or real(**kw))
    lock = str(tmp_path / "lock")
    glue.sync_dags_once(lock)  # whatever the database held before, every DAG file's DAG is in it now
    assert glue.dag_file_stems(str(ROOT / "dags")) | glue.dag_file_stems(str(FIXTURE_DAGS)) <= glue._known_dag_ids()
    parsed.clear()
    glue.sync_dags_once(lock)
    assert parsed == []  # all known: no bundle parsed again
    known = glue._known_dag_ids()
    monkeypatch.setattr(glue, "_known_dag_ids", lambda: known - {"mind"})
    glue.sync_dags_once(lock)
    assert parsed == ["dags-folder"]  # one DAG missing: its bundle, and only it


def test_a_dag_file_builds_nothing_when_airflow_parses_for_another_dag(monkeypatch):
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID

    from synth_tasks.methods.mind import METHOD

    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, "markdown_qa")
    assert glue.build_dag(METHOD, doc_md="x") is None
    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, "mind")
    assert glue.build_dag(METHOD, doc_md="x").dag_id == "mind"
    monkeypatch.delenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID)
    assert glue.build_dag(METHOD, doc_md="x").dag_id == "mind"


@pytest.mark.airflow
def test_an_asset_whose_uri_changed_is_activated_before_the_run(airflow_db, tmp_path):
    """A database from before the Asset URIs moved to x-synth:// holds the old synth:// asset as
    the active "curriculum/final": the new one stays inactive and the run's export task failed with
    AirflowInactiveAssetInInletOrOutletException (found on the quality benchmark's database). The
    pre-run sync re-syncs every DAG and releases the asset no DAG references any more."""
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session

    from tests.conftest import load_dag

    dag = load_dag("curriculum")
    lock = str(tmp_path / "lock")
    glue.sync_dags_once(lock, dag)
    assert glue.inactive_assets(dag) == []
    with create_session() as session:  # the old database: the old URI holds the name
        session.query(AssetActive).filter(AssetActive.name == "curriculum/final").delete()
        session.add(AssetModel(name="curriculum/final", uri="synth://curriculum/final"))
        session.add(AssetActive(name="curriculum/final", uri="synth://curriculum/final"))
    assert glue.inactive_assets(dag) == [("curriculum/final", "x-synth://curriculum/final")]
    glue.sync_dags_once(lock, dag)
    assert glue.inactive_assets(dag) == []
    with create_session() as session:
        assert set(session.query(AssetActive.uri).filter(AssetActive.name == "curriculum/final")) == {
            ("x-synth://curriculum/final",)}
