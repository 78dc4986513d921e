import pytest

from synth_tasks.llm.endpoint import EndpointNotConfigured, resolve_endpoint


def test_environment_endpoint_with_provider_preset(monkeypatch):
    monkeypatch.setenv("SYNTH_LLM_PROVIDER", "zhipuai")
    monkeypatch.setenv("SYNTH_LLM_MODEL", "glm-4-flash")
    monkeypatch.setenv("SYNTH_LLM_API_KEY", "zk")
    endpoint = resolve_endpoint()
    assert endpoint.base_url == "https://open.bigmodel.cn/api/paas/v4"
    assert endpoint.structured_output == "prompt" and endpoint.model == "glm-4-flash"


def test_connection_wins_over_environment(monkeypatch):
    monkeypatch.setenv("SYNTH_LLM_BASE_URL", "http://env:1/v1")
    monkeypatch.setenv("SYNTH_LLM_MODEL", "env-model")
    endpoint = resolve_endpoint({"host": "http://conn:2/v1/", "extra": {"model": "m", "provider": "openai"}})
    assert endpoint.base_url == "http://conn:2/v1" and endpoint.structured_output == "json_schema"


def test_missing_pieces_are_named(monkeypatch):
    monkeypatch.setenv("SYNTH_LLM_BASE_URL", "http://x/v1")
    with pytest.raises(EndpointNotConfigured, match="base URL and a model"):
        resolve_endpoint()
    with pytest.raises(EndpointNotConfigured, match="unknown LLM provider 'foo'"):
        resolve_endpoint({"host": "http://x", "extra": {"model": "m", "provider": "foo"}})


def test_no_endpoint_at_all_says_how_to_start_one(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTH_RUN_DIR", str(tmp_path))
    with pytest.raises(EndpointNotConfigured, match="make llm-up"):
        resolve_endpoint()


def test_the_embedded_servers_state_says_how_many_requests_it_computes_at_once(monkeypatch, tmp_path):
    import json
    import os

    from synth_tasks.llm import embedded

    monkeypatch.setenv("SYNTH_RUN_DIR", str(tmp_path))
    state = {"pid": os.getpid(), "base_url": "http://127.0.0.1:9/v1", "model": embedded.QUALITY.alias,
             "structured_output": "json_object_schema", "max_concurrency": 1, "context_tokens": 8192}
    (tmp_path / "llm-server-quality.json").write_text(json.dumps(state))
    with pytest.raises(EndpointNotConfigured, match="--model smollm2"):
        resolve_endpoint()  # the default embedded model's server is not running
    monkeypatch.setenv("SYNTH_EMBEDDED_MODEL", "quality")
    endpoint = resolve_endpoint()
    assert (endpoint.model, endpoint.max_concurrency) == ("qwen2.5-coder-1.5b-instruct", 1)


def test_a_connection_may_say_how_many_requests_its_endpoint_computes_at_once():
    endpoint = resolve_endpoint({"host": "http://vllm:8000/v1", "extra": {"model": "m", "max_concurrency": "16"}})
    assert endpoint.max_concurrency == 16
    assert resolve_endpoint({"host": "http://vllm:8000/v1", "extra": {"model": "m"}}).max_concurrency is None


def test_the_context_length_comes_from_the_embedded_state_the_environment_or_the_connection(monkeypatch, tmp_path):
    """What the client's prompt budget is taken from (issue #25); unknown: None, no budget."""
    import json
    import os

    monkeypatch.setenv("SYNTH_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("SYNTH_LLM_CONTEXT_TOKENS", raising=False)  # whatever the shell exports
    state = {"pid": os.getpid(), "base_url": "http://127.0.0.1:9/v1", "model": "smollm2-135m-instruct",
             "structured_output": "json_object_schema", "max_concurrency": 1, "context_tokens": 4096}
    (tmp_path / "llm-server.json").write_text(json.dumps(state))
    assert resolve_endpoint().context_tokens == 4096
    del state["context_tokens"]  # a state written before servers recorded it
    (tmp_path / "llm-server.json").write_text(json.dumps(state))
    assert resolve_endpoint().context_tokens is None

    monkeypatch.setenv("SYNTH_LLM_BASE_URL", "http://vllm:8000/v1")
    monkeypatch.setenv("SYNTH_LLM_MODEL", "m")
    assert resolve_endpoint().context_tokens is None
    monkeypatch.setenv("SYNTH_LLM_CONTEXT_TOKENS", "32768")
    assert resolve_endpoint().context_tokens == 32768

    connection = {"host": "http://vllm:8000/v1", "extra": {"model": "m", "context_tokens": 8192}}
    assert resolve_endpoint(connection).context_tokens == 8192  # the connection wins
    assert resolve_endpoint({"host": "http://vllm:8000/v1", "extra": {"model": "m"}}).context_tokens is None
    with pytest.raises(EndpointNotConfigured, match="context_tokens must be a whole number, got '8k'"):
        resolve_endpoint({"host": "http://vllm:8000/v1", "extra": {"model": "m", "context_tokens": "8k"}})
