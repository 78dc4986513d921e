"""The LLM client against a fault-injecting OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from pydantic import BaseModel, SecretStr

from synth_tasks.config import EndpointConfig, SamplingParams
from synth_tasks.llm.cache import ResponseCache
from synth_tasks.llm.client import LLMClient, LLMError

SAMPLING = SamplingParams(temperature=0.0, max_tokens=32, seed=1)
MSG = [{"role": "user", "content": "hi"}]
SECRET = "sk-test-very-secret-key"


def make_client(server, **kw) -> LLMClient:
    endpoint = EndpointConfig(base_url=server.base_url, model="fault-model", api_key=SecretStr(SECRET),
                              structured_output=kw.pop("structured_output", "json_schema"))
    kw.setdefault("backoff_initial_s", 0.01)
    kw.setdefault("request_timeout_s", 2.0)
    return LLMClient(endpoint, **kw)


def run(coro):
    return asyncio.run(coro)


async def _chat(client, messages=MSG, sampling=SAMPLING, **kw):
    try:
        return await client.chat(messages, sampling, **kw)
    finally:
        await client.aclose()


def test_429_waits_for_retry_after_then_succeeds(fault_server):
    fault_server.script.extend(["429"])
    client = make_client(fault_server)
    start = time.monotonic()
    result = run(_chat(client))
    assert time.monotonic() - start >= 1.0  # Retry-After: 1 honoured, not the 10 ms backoff
    assert result.text.startswith("Student 1")
    assert client.usage.retries == 1 and client.usage.requests == 1
    assert len(fault_server.requests) == 2


def test_500_and_malformed_body_are_retried(fault_server):
    fault_server.script.extend(["500", "malformed", "500"])
    client = make_client(fault_server)
    result = run(_chat(client))
    assert result.text.startswith("Student 1")
    assert client.usage.retries == 3
    assert len(fault_server.requests) == 4


def test_hang_past_timeout_is_retried(fault_server):
    fault_server.hang_s = 3.0
    fault_server.script.extend(["hang"])
    client = make_client(fault_server, request_timeout_s=0.5)
    result = run(_chat(client))
    assert result.text.startswith("Student 1")
    assert client.usage.retries == 1


def test_exhausted_retries_raise_a_classified_error_without_the_key(fault_server):
    fault_server.script.extend(["500"] * 3)
    client = make_client(fault_server, max_retries=2)
    with pytest.raises(LLMError) as err:
        run(_chat(client))
    assert err.value.kind == "http_500"
    assert SECRET not in str(err.value)
    assert client.usage.failures == 1 and len(fault_server.requests) == 3
    # the key did travel, as a bearer token, to the endpoint only
    assert fault_server.headers[0]["authorization"] == f"Bearer {SECRET}"


def test_nothing_lost_under_mixed_faults(fault_server):
    fault_server.script.extend(["429", "500", "malformed", "ok", "500", "hang"] * 2)
    fault_server.retry_after = "0"
    fault_server.hang_s = 1.5
    client = make_client(fault_server, request_timeout_s=0.5, max_retries=4, concurrency=3)

    async def many():
        outcomes = []

        async def one(i):
            try:
                r = await client.chat([{"role": "user", "content": f"q{i}"}], SAMPLING)
                outcomes.append(("ok", r.text))
            except LLMError as exc:
                outcomes.append(("failed", exc.kind))

        await asyncio.gather(*(one(i) for i in range(20)))
        await client.aclose()
        return outcomes

    outcomes = run(many())
    assert len(outcomes) == 20
    assert all(kind == "ok" for kind, _ in outcomes)
    # (No bound on the server's in-flight count here: a request the client gave up on after its
    # timeout still occupies the server, as it would a real one.)


def test_concurrency_is_bounded(fault_server):
    fault_server.latency_s = 0.05
    client = make_client(fault_server, concurrency=2)

    async def many():
        await asyncio.gather(*(client.chat([{"role": "user", "content": str(i)}], SAMPLING) for i in range(10)))
        await client.aclose()

    run(many())
    assert fault_server.max_in_flight == 2


def test_an_endpoint_that_computes_one_request_at_a_time_never_gets_two(fault_server):
    # The embedded llama.cpp server says max_concurrency 1: a second request would wait in its queue,
    # time out there and be re-sent while the server still computed the first.
    fault_server.latency_s = 0.05
    endpoint = EndpointConfig(base_url=fault_server.base_url, model="fault-model", max_concurrency=1)
    client = LLMClient(endpoint, concurrency=8)

    async def many():
        await asyncio.gather(*(client.chat([{"role": "user", "content": str(i)}], SAMPLING) for i in range(6)))
        await client.aclose()

    run(many())
    assert client.concurrency == 1 and fault_server.max_in_flight == 1 and len(fault_server.requests) == 6


def test_cache_resends_nothing_that_completed(fault_server, store):
    cache = ResponseCache(store, store.join("_cache"))
    first = make_client(fault_server, cache=cache)
    run(_chat(first))
    second = make_client(fault_server, cache=cache)
    result = run(_chat(second))
    assert result.cached and second.usage.requests == 0 and second.usage.cache_hits == 1
    assert len(fault_server.requests) == 1
    # a different seed is a different request
    run(_chat(make_client(fault_server, cache=cache), sampling=SAMPLING.model_copy(update={"seed": 2})))
    assert len(fault_server.requests) == 2


def test_token_budget_stops_fresh_requests(fault_server):
    client = make_client(fault_server, token_budget=5)
    run(_chat(client))  # 10 prompt + 4 completion tokens: the budget is now spent

    with pytest.raises(LLMError) as err:
        run(_chat(client, messages=[{"role": "user", "content": "another"}]))
    assert err.value.kind == "token_budget_exhausted"
    assert len(fault_server.requests) == 1


class Answer(BaseModel):
    answer: str
    score: int


def test_structured_output_is_validated_and_repaired_once(fault_server):
    fault_server.script.extend(["text:not json at all", 'text:```json\n{"answer": "4", "score": 3}\n```'])
    client = make_client(fault_server)
    result = run(_chat(client, response_model=Answer))
    assert result.parsed == Answer(answer="4", score=3)
    first, repair = fault_server.requests
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"]["properties"]["score"]["type"] == "integer"
    assert "not valid JSON" in repair["messages"][-1]["content"]


def test_structured_output_failure_keeps_the_raw_text(fault_server):
    fault_server.script.extend(['text:{"answer": "4"}', 'text:{"answer": "4", "score": "high"}'])
    client = make_client(fault_server, structured_output="json_object_schema")
    with pytest.raises(LLMError) as err:
        run(_chat(client, response_model=Answer))
    assert err.value.kind == "invalid_structured_output"
    assert err.value.raw == '{"answer": "4", "score": "high"}'
    assert fault_server.requests[0]["response_format"]["type"] == "json_object"


def test_an_answer_that_fails_its_schema_is_not_cached(fault_server, store):
    """A transient junk 200 body must not fail its record in every re-run: the re-run asks again."""
    cache = ResponseCache(store, store.join("_cache"))
    fault_server.script.extend(["text:not json", "text:still not json"])
    with pytest.raises(LLMError):
        run(_chat(make_client(fault_server, cache=cache), response_model=Answer))
    fault_server.script.extend(['text:{"answer": "4", "score": 3}'])
    again = make_client(fault_server, cache=cache)
    assert run(_chat(again, response_model=Answer)).parsed == Answer(answer="4", score=3)
    assert again.usage.requests == 1 and again.usage.cache_hits == 0 and len(fault_server.requests) == 3
    # the accepted answer is cached: a third run replays it without a request
    third = make_client(fault_server, cache=cache)
    assert run(_chat(third, response_model=Answer)).parsed == Answer(answer="4", score=3)
    assert third.usage.requests == 0 and third.usage.cache_hits == 1 and len(fault_server.requests) == 3


def _cut_off(content: str) -> str:
    """A scripted answer that stopped at max_tokens."""
    return "raw:" + json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "fault-model",
                                "choices": [{"index": 0, "finish_reason": "length",
                                             "message": {"role": "assistant", "content": content}}],
                                "usage": {"prompt_tokens": 10, "completion_tokens": 32, "total_tokens": 42}})


def test_an_answer_cut_off_at_max_tokens_is_repaired_unless_the_caller_keeps_what_it_holds(fault_server):
    fault_server.script.extend([_cut_off('{"answer": "4", "sco'), 'text:{"answer": "4", "score": 3}'])
    assert run(_chat(make_client(fault_server), response_model=Answer)).parsed == Answer(answer="4", score=3)
    assert len(fault_server.requests) == 2  # by default: sent back once for repair

    fault_server.script.extend([_cut_off('{"answer": "4", "sco')])
    with pytest.raises(LLMError) as err:
        run(_chat(make_client(fault_server), response_model=Answer, repair_cut_off=False))
    assert len(fault_server.requests) == 3  # one request, no repair
    assert err.value.kind == "invalid_structured_output" and "cut off at max_tokens" in str(err.value)
    assert err.value.raw == '{"answer": "4", "sco'
    assert err.value.result.finish_reason == "length" and err.value.result.completion_tokens == 32

    # or the caller decides from the answer's text
    fault_server.script.extend([_cut_off('{"answer": "4", "sco'), 'text:{"answer": "4", "score": 3}'])
    result = run(_chat(make_client(fault_server), response_model=Answer, repair_cut_off=lambda text: "score" not in text))
    assert result.parsed == Answer(answer="4", score=3) and len(fault_server.requests) == 5


# -- the request path: the cache key, the schema made once, the retry loop ----------------------
def test_cache_keys_are_what_the_client_always_passed(fault_server, store):
    """The response cache's keys must not move (cached runs are compared across versions): plain
    requests hash (endpoint, model, messages, sampling without None, None), structured ones their format."""
    from synth_tasks.llm.cache import cache_key

    cache = ResponseCache(store, store.join("_cache"))
    run(_chat(make_client(fault_server, cache=cache)))
    fault_server.script.append('text:{"answer": "4", "score": 3}')
    run(_chat(make_client(fault_server, cache=cache), response_model=Answer))
    fault_server.script.append('text:{"answer": "4", "score": 3}')
    run(_chat(make_client(fault_server, cache=cache, structured_output="prompt"), response_model=Answer))

    params = SAMPLING.model_dump(exclude_none=True)
    schema = Answer.model_json_schema()
    prompt_msgs = [*MSG, {"role": "system", "content": "Reply with one JSON object that matches this JSON "
                          f"schema:\n{json.dumps(schema)}"}]
    url = fault_server.base_url
    expected = {
        cache_key(url, "fault-model", MSG, params, None),
        cache_key(url, "fault-model", MSG, params, {"type": "json_schema", "json_schema": {"name": "Answer", "schema": schema}}),
        cache_key(url, "fault-model", prompt_msgs, params, None),
    }
    assert {cache_key(url, "fault-model", r["messages"], params, r.get("response_format"))
            for r in fault_server.requests} == expected
    assert all(cache.get(k) is not None for k in expected)


def test_the_json_schema_is_built_once_per_client(fault_server, monkeypatch):
    built = []
    original = Answer.model_json_schema.__func__

    def counting(cls, *args, **kw):
        built.append(cls)
        return original(cls, *args, **kw)

    monkeypatch.setattr(Answer, "model_json_schema", classmethod(counting))
    fault_server.responder = lambda body: '{"answer": "4", "score": 3}'
    client = make_client(fault_server)

    async def many():
        await asyncio.gather(*(client.chat([{"role": "user", "content": str(i)}], SAMPLING, response_model=Answer)
                               for i in range(5)))
        await client.aclose()

    run(many())
    assert len(built) == 1
    assert all(r["response_format"] == fault_server.requests[0]["response_format"] for r in fault_server.requests)


def test_an_answer_without_choices_is_retried(fault_server):
    fault_server.script.extend(['raw:{"id": "x", "object": "chat.completion", "created": 0, "model": "m", '
                                '"choices": []}'])
    client = make_client(fault_server)
    result = run(_chat(client))
    assert result.text.startswith("Student 1")
    assert client.usage.retries == 1 and client.usage.failures == 0


def test_backoff_doubles_with_equal_jitter_up_to_the_cap():
    client = LLMClient(EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m"),
                       backoff_initial_s=1.0, backoff_max_s=5.0)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        waits = [client._backoff_s(TimeoutError(), attempt) for _ in range(50)]
        assert all(full / 2 <= w <= full for w in waits), (attempt, min(waits), max(waits))


def test_another_endpoint_under_the_same_model_name_gets_no_old_answers(store):
    """The cache key holds the endpoint: a different server answering as "fault-model" is asked
    afresh; a cache_namespace shared on purpose reuses the answers."""
    from tests.fault_server import FaultServer

    cache = ResponseCache(store, store.join("_cache"))
    with FaultServer(default_reply="from A") as a, FaultServer(default_reply="from B") as b:
        assert run(_chat(make_client(a, cache=cache))).text == "from A"
        assert run(_chat(make_client(b, cache=cache))).text == "from B" and len(b.requests) == 1
        shared_a = LLMClient(EndpointConfig(base_url=a.base_url, model="fault-model"), cache=cache,
                             cache_namespace="replicas")
        shared_b = LLMClient(EndpointConfig(base_url=b.base_url, model="fault-model"), cache=cache,
                             cache_namespace="replicas")
        assert run(_chat(shared_a)).text == "from A"
        assert run(_chat(shared_b)).text == "from A" and len(b.requests) == 1  # shared on purpose



def test_latex_written_with_one_backslash_in_json_reads_back_as_written():
    from synth_tasks.llm.client import repair_latex_escapes

    class Turn(BaseModel):
        text: str

    # As the quality model writes it: JSON, with LaTeX commands escaped once.
    raw = r'{"text": "$\bar{X} = \frac{1}{n}\sum X_i$, so $\sigma \times \nu$ and \text{SD}.\nNext line \u00e9 \\bar"}'
    text = Turn.model_validate_json(repair_latex_escapes(raw)).text
    assert text == "$\\bar{X} = \\frac{1}{n}\\sum X_i$, so $\\sigma \\times \\nu$ and \\text{SD}.\nNext line \u00e9 \\bar"
    # JSON that needs no repair is left as it is
    assert repair_latex_escapes('{"text": "a\\nThe b\\t c"}') == '{"text": "a\\nThe b\\t c"}'
