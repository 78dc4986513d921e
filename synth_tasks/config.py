"""Shared pydantic config pieces. Every config refuses unknown fields, so a typo in a Param fails the
run at its start with the field's name instead of being silently ignored."""

from __future__ import annotations

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


class LLMSettings(StrictModel):
    """How a stage talks to the LLM: concurrency, timeouts, retries and the optional token budget."""

    conn_id: str = Field("synth_llm", description="Airflow connection holding base URL, model and key.")
    model: str | None = Field(None, description="Overrides the connection's or the embedded server's model.")
    concurrency: int = Field(4, ge=1, le=1024)
    request_timeout_s: float = Field(300.0, gt=0)
    max_retries: int = Field(6, ge=0, le=50)
    token_budget: int | None = Field(
        None, ge=1, description="Fresh (non-cached) tokens this run may spend; records past it fail cleanly."
    )
