"""Shared pydantic config pieces. Every config refuses unknown fields, so a typo in a Param fails the
run at its start with the field's name instead of being silently ignored."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError


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
        seed = int.from_bytes(hashlib.sha256(f"{run_seed}:{key}".encode()).digest()[:4], "big")
        return cls(seed=seed, **values)


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


class LLMParams(StrictModel):
    """The Params every LLM-using method shares: which endpoint, how hard to push it, what to spend."""

    llm_conn_id: str = Field("synth_llm", description="Airflow connection of the LLM endpoint.")
    model: str | None = Field(None, description="Model name; default: the connection's or embedded one.")
    concurrency: int = Field(4, ge=1, le=1024, description="Requests in flight per mapped task.")
    request_timeout_s: float = Field(600.0, gt=0, description="Deadline of one LLM request.")
    max_retries: int = Field(6, ge=0, le=50, description="Retries per request on 429/5xx/timeouts.")
    token_budget: int | None = Field(
        None, ge=1, description="Fresh tokens the run may spend, split evenly over shards; records "
        "past it are marked failed (token_budget_exhausted), never lost.")
