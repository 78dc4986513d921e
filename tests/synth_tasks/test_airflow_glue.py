from types import SimpleNamespace

import pendulum
import pytest

from synth_tasks import airflow_glue as glue
from synth_tasks.methods.mind import MindConfig

DAY = pendulum.datetime(2026, 3, 4, tz="UTC")


def _ctx(run_type: str, run_id: str = "scheduled__2026-03-04T00:00:00+00:00"):
    return {"dag_run": SimpleNamespace(run_type=run_type, run_id=run_id), "data_interval_start": DAY,
            "logical_date": DAY}


def test_scheduled_and_backfill_runs_write_their_data_interval_day():
    assert glue.partition_for(_ctx("scheduled")) == "2026-03-04"
    assert glue.partition_for(_ctx("backfill", "backfill__2026-03-04T00:00:00+00:00")) == "2026-03-04"


def test_manual_runs_get_their_own_partition():
    name = glue.partition_for(_ctx("manual", "manual__2026-03-04T10:11:12+00:00"))
    assert name.startswith("manual__2026-03-04T10-11-12-00-00-") and len(name) == len("manual__2026-03-04T10-11-12-00-00") + 9


def test_input_paths_fill_ds_and_anchor_at_the_project_root():
    assert glue.resolve_input("s3://b/raw/{ds}/*.jsonl", _ctx("scheduled")) == "s3://b/raw/2026-03-04/*.jsonl"
    assert glue.resolve_input("include/x.jsonl", _ctx("manual")) == f"file://{glue.PROJECT_ROOT}/synth_tasks/include/x.jsonl"
    assert glue.resolve_input("tests/x.jsonl", _ctx("manual")) == f"file://{glue.PROJECT_ROOT}/tests/x.jsonl"
    assert glue.resolve_input("/abs/x.jsonl", _ctx("manual")) == "file:///abs/x.jsonl"


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


def test_the_partition_rule_lives_in_the_glue_and_the_cli_uses_it():
    import inspect

    from synth_tasks import cli

    assert glue.partition_name("manual__2026-03-04T10:11:12+00:00").startswith("manual__2026-03-04T10-11-12-00-00-")
    assert "re.sub" not in inspect.getsource(cli) and "airflow" not in inspect.getsource(cli).replace(
        "airflow_glue", "")


def test_enum_fields_keep_their_default_and_description_as_params():
    from synth_tasks.methods.instruct import InstructConfig

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


def test_partition_names_are_unique_per_run_id_and_never_leave_the_dag_folder():
    names = {run_id: glue.partition_name(run_id) for run_id in (".", "..", "", "a:b", "a+b", "a-b", "...", ".x")}
    assert len(set(names.values())) == len(names)
    assert names["a-b"] == "a-b"  # a safe id stays as it is
    for name in names.values():
        assert name.strip(".") and not name.startswith(".") and "/" not in name


def test_a_missing_named_connection_fails_naming_it_and_only_the_default_falls_back(monkeypatch, tmp_path):
    from synth_tasks.config import ConfigError

    with pytest.raises(ConfigError, match="'my_typo' does not exist"):
        glue.llm_endpoint("my_typo")
    monkeypatch.setenv("SYNTH_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SYNTH_LLM_MODEL", "env-model")
    assert glue.llm_endpoint("synth_llm").model == "env-model"
