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
    assert glue.partition_for(_ctx("manual", "manual__2026-03-04T10:11:12+00:00")) == "manual__2026-03-04T10-11-12-00-00"


def test_input_paths_fill_ds_and_anchor_at_the_project_root():
    assert glue.resolve_input("s3://b/raw/{ds}/*.jsonl", _ctx("scheduled")) == "s3://b/raw/2026-03-04/*.jsonl"
    assert glue.resolve_input("include/x.jsonl", _ctx("manual")) == f"file://{glue.PROJECT_ROOT}/include/x.jsonl"
    assert glue.resolve_input("/abs/x.jsonl", _ctx("manual")) == "file:///abs/x.jsonl"


def test_params_mirror_the_config():
    params = glue.params_from_config(MindConfig)
    assert set(params) == set(MindConfig.model_fields)
    assert params["chunk_tokens"].value == 500
    assert params["chunk_tokens"].schema["minimum"] == 50
    assert params["styles"].schema["items"]["enum"][0] == "two_students"
    assert all(p.description for p in params.values())


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
