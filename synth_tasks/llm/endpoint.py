"""Which LLM endpoint a run talks to, in order of precedence:

1. an Airflow connection (resolved by the DAG glue and passed in as a dict),
2. the environment: SYNTH_LLM_BASE_URL, SYNTH_LLM_MODEL, SYNTH_LLM_API_KEY, SYNTH_LLM_PROVIDER,
3. the embedded llama.cpp server started by ``python -m synth_tasks.llm.embedded start``.

A provider preset fills what the endpoint itself does not say (default URL, how to ask for JSON).

The context length (``context_tokens``, what the client's prompt budget is taken from) comes from
the same place: the embedded server's state records the n_ctx it was started with; a connection
says it in its extra, the environment in SYNTH_LLM_CONTEXT_TOKENS (vLLM: its --max-model-len).
It is not asked of the server: llama-cpp-python's /v1/models does not report it, llama.cpp's
reports the training context rather than the one served, OpenAI's neither, and only vLLM's
(``max_model_len``) would answer; unknown, the client checks nothing and the server judges."""

from __future__ import annotations

import os

from pydantic import SecretStr

from synth_tasks.config import EndpointConfig
from synth_tasks.llm import embedded

# provider -> defaults. vLLM and OpenAI take response_format=json_schema; ZhipuAI's
# OpenAI-compatible v4 API does not document it, so the schema goes into the prompt.
PROVIDERS: dict[str, dict] = {
    "openai": {"base_url": "https://api.openai.com/v1", "structured_output": "json_schema"},
    "vllm": {"structured_output": "json_schema"},
    "zhipuai": {"base_url": "https://open.bigmodel.cn/api/paas/v4", "structured_output": "prompt"},
    "llama_cpp": {"structured_output": "json_object_schema"},
}


class EndpointNotConfigured(RuntimeError):
    pass


def _optional_int(value: int | str | None, setting: str) -> int | None:
    """A count given as a number or a string (a connection's extra, the environment), else None."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise EndpointNotConfigured(f"LLM endpoint setting {setting} must be a whole number, got {value!r}") from None


def _from_parts(provider: str, base_url: str | None, model: str | None, api_key: str | None,
                structured_output: str | None, max_concurrency: int | str | None = None,
                context_tokens: int | str | None = None) -> EndpointConfig:
    if provider not in PROVIDERS:
        raise EndpointNotConfigured(f"unknown LLM provider {provider!r}; known: {sorted(PROVIDERS)}")
    preset = PROVIDERS[provider]
    base_url = base_url or preset.get("base_url")
    if not base_url or not model:
        raise EndpointNotConfigured(f"LLM endpoint needs a base URL and a model (provider {provider!r})")
    return EndpointConfig(base_url=base_url.rstrip("/"), model=model,
                          api_key=SecretStr(api_key or "not-needed"),
                          structured_output=structured_output or preset["structured_output"],
                          max_concurrency=_optional_int(max_concurrency, "max_concurrency"),
                          context_tokens=_optional_int(context_tokens, "context_tokens"))


def resolve_endpoint(connection: dict | None = None, model_override: str | None = None) -> EndpointConfig:
    """``connection``: {"host", "password", "extra": {"model", "provider", "structured_output",
    "max_concurrency", "context_tokens"}}. The environment's SYNTH_LLM_MAX_CONCURRENCY and
    SYNTH_LLM_CONTEXT_TOKENS are the last two's twins."""
    if connection:
        extra = connection.get("extra") or {}
        return _from_parts(extra.get("provider", "vllm"), connection.get("host"),
                           model_override or extra.get("model"), connection.get("password"),
                           extra.get("structured_output"), extra.get("max_concurrency"),
                           extra.get("context_tokens"))
    if os.environ.get("SYNTH_LLM_BASE_URL") or os.environ.get("SYNTH_LLM_PROVIDER"):
        return _from_parts(os.environ.get("SYNTH_LLM_PROVIDER", "vllm"), os.environ.get("SYNTH_LLM_BASE_URL"),
                           model_override or os.environ.get("SYNTH_LLM_MODEL"),
                           os.environ.get("SYNTH_LLM_API_KEY"), os.environ.get("SYNTH_LLM_STRUCTURED_OUTPUT"),
                           os.environ.get("SYNTH_LLM_MAX_CONCURRENCY"), os.environ.get("SYNTH_LLM_CONTEXT_TOKENS"))
    state = embedded.read_state()
    if state is None:
        raise EndpointNotConfigured(
            "no LLM endpoint: set an Airflow connection or SYNTH_LLM_BASE_URL, or start the embedded "
            f"server with `make llm-up` (python -m synth_tasks.llm.embedded start --model {embedded.selected().name})")
    return _from_parts("llama_cpp", state["base_url"], model_override or state["model"], None,
                       state.get("structured_output"), state.get("max_concurrency"), state.get("context_tokens"))
