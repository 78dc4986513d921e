"""The one module of synth_tasks that knows Airflow: it turns a task's context and Params into the
plain objects the stages take (config, storage layout, LLM endpoint). Airflow is imported inside
the functions, so ``import synth_tasks`` never needs it."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from synth_tasks.config import ConfigError, StrictModel, parse_config

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_root() -> str:
    """Staging root: $SYNTH_DATA_ROOT (e.g. s3://bucket/prefix), else ./data in the project."""
    return os.environ.get("SYNTH_DATA_ROOT", f"file://{PROJECT_ROOT / 'data'}")


def default_args() -> dict:
    """Retries for every task. $SYNTH_RETRY_DELAY_S shortens the delay (tests)."""
    delay = float(os.environ.get("SYNTH_RETRY_DELAY_S", "60"))
    return {"retries": int(os.environ.get("SYNTH_RETRIES", "3")), "retry_delay": timedelta(seconds=delay),
            "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=30)}


def daily_dag_args() -> dict:
    """The schedule every DAG shares: daily on data intervals (not trigger times), so the run for
    [day, day+1) starts after the day ends and works on partition {ds} = day, and a backfill of a
    day redoes exactly that partition; no catch-up; one run at a time; retries on every task."""
    import pendulum
    from airflow.sdk import CronDataIntervalTimetable

    return {"schedule": CronDataIntervalTimetable("@daily", timezone="UTC"),
            "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"), "catchup": False, "max_active_runs": 1,
            "default_args": default_args()}


# ---------------------------------------------------------------------------------------------
# Params <-> config
# ---------------------------------------------------------------------------------------------
def _inline_refs(schema: dict, defs: dict) -> dict:
    if "$ref" in schema:
        # keep the siblings of the reference (a field's default and description)
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        return _inline_refs(defs[schema["$ref"].rsplit("/", 1)[-1]] | siblings, defs)
    out = {}
    for key, value in schema.items():
        if key in ("title",):
            continue
        if isinstance(value, dict):
            out[key] = _inline_refs(value, defs)
        elif isinstance(value, list):
            out[key] = [_inline_refs(v, defs) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out


def params_from_config(model: type[StrictModel]) -> dict:
    """One UI Param per config field, with its default, description and JSON-schema type, so the
    trigger form validates values before a run starts and the config stays the one source."""
    from airflow.sdk import Param

    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    params = {}
    for name, prop in schema["properties"].items():
        prop = _inline_refs(prop, defs)
        default = prop.pop("default", None)
        description = prop.pop("description", None)
        params[name] = Param(default, description=description, **prop)
    return params


@contextmanager
def no_retry_for(*errors: type[BaseException]):
    """Turn errors that a retry cannot fix (bad config, unusable input) into a failure without
    retries, keeping the message that names the field, file or row."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except errors as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def config_from_params(model: type[StrictModel], params) -> StrictModel:
    """Validate Params into the config; a bad value fails the task at once, without retries."""
    values = {k: params[k] for k in params.keys()} if hasattr(params, "keys") else dict(params)
    with no_retry_for(ConfigError):
        return parse_config(model, values)


def materialize(mapped_results) -> list:
    """The results of a mapped task as a list. Indexing up to len() avoids the lazy sequence's
    iterator, which finds its end by asking for one XCom too many (and logs that as an error)."""
    return [mapped_results[i] for i in range(len(mapped_results))]


# ---------------------------------------------------------------------------------------------
# partition, storage, inputs
# ---------------------------------------------------------------------------------------------
def partition_for(context) -> str:
    """Scheduled runs and backfills write the partition of their data interval (so a backfill redoes
    exactly that day); manual runs get their own partition named after the run id."""
    dag_run = context["dag_run"]
    run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type)).lower()
    start = context.get("data_interval_start")
    if run_type in ("scheduled", "backfill") and start is not None:
        return start.strftime("%Y-%m-%d")
    return re.sub(r"[^A-Za-z0-9_.-]", "-", dag_run.run_id)


def run_timestamp(context) -> str:
    """YYYY-MM-DD_HH-MM-SS of the run's logical date (its data interval start for scheduled runs),
    so output names are stable across retries of the same run."""
    when = context.get("logical_date") or context.get("data_interval_start") or context["dag_run"].run_after
    return when.strftime("%Y-%m-%d_%H-%M-%S")


def store_for(root: str, conn_id: str | None = None):
    """Local roots use fsspec directly; remote ones go through Airflow's ObjectStoragePath so the
    credentials come from an Airflow connection, never from code or logs."""
    from synth_tasks.storage import Store

    if root.startswith("file://") or "://" not in root:
        return Store(root)
    from airflow.sdk import ObjectStoragePath

    return Store(root, fs=ObjectStoragePath(root, conn_id=conn_id).fs)


def run_layout(dag_id: str, context):
    from synth_tasks.storage import RunLayout

    store = store_for(data_root(), os.environ.get("SYNTH_STORAGE_CONN_ID"))
    return RunLayout(store, dag_id, partition_for(context))


def resolve_input(pattern: str, context) -> str:
    """Fill {ds} with the data-interval date and anchor relative paths at the project root."""
    start = context.get("data_interval_start") or context.get("logical_date")
    if "{ds}" in pattern:
        if start is None:
            raise ConfigError(f"input_path {pattern!r} uses {{ds}} but this run has no data interval")
        pattern = pattern.replace("{ds}", start.strftime("%Y-%m-%d"))
    if "://" not in pattern and not pattern.startswith("/"):
        pattern = str(PROJECT_ROOT / pattern)
    return pattern if "://" in pattern else f"file://{pattern}"


def run_prepare(method, config_cls: type[StrictModel], dag_id: str, context) -> dict:
    """The first task of every DAG: validate Params, then the method's ``prepare`` on this run's
    partition. Bad Params or unusable input fail at once, without retries."""
    from synth_tasks.inputs import InputError

    cfg = config_from_params(config_cls, context["params"])
    with no_retry_for(InputError, ConfigError):
        return method.prepare(run_layout(dag_id, context), cfg, resolve_input(cfg.input_path, context))


def shard_kwargs(prepared: dict, url_key: str) -> list[dict]:
    """Keyword arguments for a task mapped over the prepared shards (``expand_kwargs``)."""
    shards = prepared["shards"]
    return [{"shard": i, url_key: url, "n_shards": len(shards)} for i, url in enumerate(shards)]


# ---------------------------------------------------------------------------------------------
# LLM endpoint
# ---------------------------------------------------------------------------------------------
def llm_endpoint(conn_id: str, model_override: str | None = None):
    """The endpoint from Airflow connection ``conn_id`` if it exists, else environment/embedded.

    Connection: host = base URL (e.g. http://vllm:8000/v1), password = API key,
    extra = {"model": ..., "provider": "vllm" | "openai" | "zhipuai" | "llama_cpp"}."""
    from synth_tasks.llm.endpoint import resolve_endpoint

    connection = None
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        connection = {"host": conn.host, "password": conn.password, "extra": conn.extra_dejson}
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException's home moved between versions
        if "isn't defined" not in str(exc) and "not found" not in str(exc).lower():
            raise
    return resolve_endpoint(connection, model_override)
