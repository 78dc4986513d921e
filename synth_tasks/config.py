"""Shared pydantic config pieces. Every config refuses unknown fields, so a typo in a Param fails the
run at its start with the field's name instead of being silently ignored."""

from __future__ import annotations

import os

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from synth_tasks.draw import stable_int


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(ValueError):
    """Invalid configuration; the message names every offending field."""


def parse_config(model: type[StrictModel], values: dict) -> StrictModel:
    """Validate ``values`` into ``model``; raise ConfigError naming each bad field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "<root>"
            problems.append(f"{field}: {err['msg']}")
        raise ConfigError(f"invalid {model.__name__}: " + "; ".join(problems)) from None


class SamplingParams(StrictModel):
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1, le=32768)
    seed: int | None = Field(None, description="Per-request seed; part of the cache key.")

    @classmethod
    def seeded(cls, run_seed: int, key: str, **values) -> "SamplingParams":
        """Sampling whose seed derives from the run's seed and a record key, so outputs are
        reproducible and a re-run hits the response cache."""
        return cls(seed=stable_int(f"{run_seed}:{key}"), **values)


class EndpointConfig(StrictModel):
    """Where an OpenAI-compatible chat-completions API lives. The key is a SecretStr so it never
    appears in reprs, logs or model_dump() output."""

    base_url: str
    model: str
    api_key: SecretStr = SecretStr("not-needed")
    # How to ask this backend for JSON that follows a schema: vLLM and OpenAI take
    # response_format=json_schema; llama-cpp-python's server answers 500 to that and wants
    # json_object with an inline schema; "prompt" only describes the schema in the prompt.
    structured_output: str = Field("json_schema", pattern="^(json_schema|json_object_schema|prompt)$")
    # Requests the endpoint computes at once, where it says (the embedded llama.cpp server: 1). The
    # client keeps no more than this in flight: a request queued inside a server past its deadline
    # is re-sent while the server still computes the abandoned one, and the queue only grows.
    max_concurrency: int | None = Field(None, ge=1)
    # The endpoint's context length in tokens (prompt and answer together), where it is known: the
    # embedded server's n_ctx, a connection's extra, $SYNTH_LLM_CONTEXT_TOKENS. The client then sends
    # no request whose estimated prompt plus max_tokens is over it (synth_tasks.llm.prompt_budget);
    # None: no check, the server judges.
    context_tokens: int | None = Field(None, ge=1)


# ---------------------------------------------------------------------------------------------
# Method configs: one base for what every method has; the trigger form is generated from them
# ---------------------------------------------------------------------------------------------
# Sections of the trigger form, in the order they are shown: the method's own first, the plumbing
# (endpoint, scheduling) last. A field names its section in json_schema_extra; unnamed: "Method".
SECTIONS = ("Input", "Method", "Generation", "Quality", "Output", "LLM endpoint", "Judge endpoint", "Scheduling")


def param(default: Any = ..., description: str = "", *, section: str = "Method", title: str | None = None,
          **constraints: Any) -> Any:
    """A config field that is also a trigger-form Param: its default, a title, a description and
    the form section it sits in."""
    if section not in SECTIONS:
        raise ValueError(f"unknown form section {section!r}; known: {SECTIONS}")
    return Field(default, title=title, description=description, json_schema_extra={"section": section},
                 **constraints)


class MethodConfig(StrictModel):
    """What every method has. A method config adds its own fields and may give these other
    defaults with ``override`` (same description, bounds and section)."""

    input_path: str = param(
        ..., "File, folder or glob of input records, or an s3:// URL. Relative paths are under the project "
        "root (include/... is the shipped data). {ds} is replaced by the run's data-interval date, so a scheduled run or a backfill reads "
        "its own day's input.", section="Input", title="Input path")
    id_column: str | None = param("id", "Field holding a stable record id (optional; default: file and row).",
                                  section="Input", title="Id column")
    train_ratio: float = param(0.9, "Share of groups (source documents, lineages) in the train split.",
                               section="Output", title="Train share", gt=0.0, le=1.0)
    seed: int = param(0, "Seeds sampling and the split; part of every cache key.", section="Output", title="Seed")
    task_target_seconds: float = param(
        30.0, "Work each mapped task should carry, in seconds: shards are planned from each stage's declared "
        "cost per record so that starting a task (about 0.3 s of Airflow's time) stays small beside it.",
        section="Scheduling", title="Target seconds per task", gt=0)
    shard_size: int | None = param(None, "Records per mapped task; empty: planned from the stages' cost and "
                                   "the target seconds per task. Either way grown when the shard count would "
                                   "pass Airflow's [core] max_map_length.", section="Scheduling",
                                   title="Shard size", ge=1)
    max_active_tasks_per_run: int = param(
        int(os.environ.get("SYNTH_MAX_ACTIVE_TASKS", "4")), "Mapped tasks of one stage that run at once in one DAG run. Read when the DAG is parsed "
        "(default from $SYNTH_MAX_ACTIVE_TASKS); a different value at trigger time fails the run.",
        section="Scheduling", title="Parallel tasks per run", ge=1, le=1024)


def override(model: type[BaseModel], name: str, default: Any, description: str | None = None) -> Any:
    """The field ``name`` of ``model`` with another default (and, if given, a description that
    says what it holds for this method): ``shard_size: int = override(MethodConfig, "shard_size",
    16)`` keeps its bounds, title and section in one place."""
    changes = {"default": default} | ({"description": description} if description else {})
    return FieldInfo.merge_field_infos(model.model_fields[name], **changes)


# Tokens a second one request decodes unless the config says otherwise (the default of
# ``llm_tokens_per_second``, every LLM method's Param): a 7-8B model served by vLLM on one
# data-centre GPU decodes 30-60 tokens/s per request at a moderate batch; 40 is the low middle.
# Each request is costed at its max_tokens, an upper bound, so the plan errs toward shorter tasks
# where a retry repeats less work.
LLM_TOKENS_PER_SECOND = 40.0


class LLMParams(MethodConfig):
    """The Params every LLM-using method shares: which endpoint, how hard to push it, what to spend."""

    llm_conn_id: str = param("synth_llm", "Airflow connection of the LLM endpoint (host = base URL, "
                             "password = key, extra = {model, provider}).", section="LLM endpoint",
                             title="LLM connection")
    model: str | None = param(None, "Model name; default: the connection's or the embedded one.",
                              section="LLM endpoint", title="Model")
    concurrency: int = param(4, "Requests in flight per mapped task.", section="LLM endpoint",
                             title="Requests in flight", ge=1, le=1024)
    llm_tokens_per_second: float = param(
        LLM_TOKENS_PER_SECOND, "Tokens one request decodes per second on the endpoint (its per-request decode rate at the "
        "concurrency above). Only the shard plan reads it: an LLM stage's work per record is its requests x "
        "max_tokens at this rate, divided by the requests in flight. The default is a 7-8B model on vLLM on "
        "one data-centre GPU (30-60 tokens/s a request); give your endpoint's figure (a fast or small model: "
        "more; a CPU server: less) so each task carries about the target seconds.", section="LLM endpoint",
        title="Endpoint tokens/s per request", gt=0)
    request_timeout_s: float = param(600.0, "Deadline of one LLM request, in seconds.", section="LLM endpoint",
                                     title="Request timeout (s)", gt=0)
    max_retries: int = param(6, "Retries per request on 429/5xx/timeouts.", section="LLM endpoint",
                             title="Request retries", ge=0, le=50)
    token_budget: int | None = param(
        None, "Fresh tokens the run may spend, split evenly over its LLM stages and their shards; "
        "records past it are marked failed (token_budget_exhausted), never lost.", section="LLM endpoint",
        title="Token budget", ge=1)
    cache_namespace: str | None = param(
        None, "Response-cache identity of the endpoint. By default answers are cached per endpoint (base URL "
        "and model), so another server under the same model name never gets old answers; give equivalent "
        "endpoints (replicas, a moved server) the same namespace to share their cache on purpose.",
        section="LLM endpoint", title="Cache namespace")
    llm_pool: str = param(
        os.environ.get("SYNTH_LLM_POOL", "synth_llm"), "Airflow pool the LLM-calling tasks run in; size it to the endpoint's capacity. Read "
        "when the DAG is parsed (default from $SYNTH_LLM_POOL); a different value at trigger time fails "
        "the run.", section="Scheduling", title="LLM pool")

    def connection(self, conn_param: str = "llm_conn_id") -> tuple[str, str | None]:
        """(connection id, model) named by ``conn_param``. A role's own connection (``judge_conn_id``
        with ``judge_model``) falls back to the generator's where it is not set."""
        if conn_param == "llm_conn_id":
            return self.llm_conn_id, self.model
        own_model = getattr(self, conn_param.removesuffix("_conn_id") + "_model", None)
        return getattr(self, conn_param) or self.llm_conn_id, own_model or self.model
