"""The prompt budget (issue #25): a request over its endpoint's context is never sent, and a method
can cut its sources to fit. The estimate and the cut, then the client against the fault server."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel, SecretStr

from synth_tasks.config import EndpointConfig, SamplingParams
from synth_tasks.llm.cache import ResponseCache
from synth_tasks.llm.client import LLMClient, LLMError
from synth_tasks.llm.prompt_budget import (
    PROMPT_TOKEN_MARGIN, count_prompt_tokens, estimate_prompt_tokens, fit_text, over_budget, tokens_for_sources)
from synth_tasks.text.tokens import count_tokens

SAMPLING = SamplingParams(temperature=0.0, max_tokens=1024, seed=1)
# A page as trafilatura extracts it: paragraphs separated by single newlines, ~20,000 characters
# (the pages were up to 19,454), far over a 4,096-token context.
PARAGRAPH = ("The mitochondrion is the site of oxidative phosphorylation in 1953 and later. It makes ATP. "
             "Its inner membrane folds into cristae, which raise the surface area for the electron chain. ")
PAGE = "\n".join(f"{k}. {(PARAGRAPH * 2).strip()}" for k in range(60))


def make_client(server, context_tokens: int | None = 4096, **kw) -> LLMClient:
    endpoint = EndpointConfig(base_url=server.base_url, model="fault-model", api_key=SecretStr("k"),
                              structured_output=kw.pop("structured_output", "json_schema"),
                              context_tokens=context_tokens)
    return LLMClient(endpoint, backoff_initial_s=0.01, request_timeout_s=2.0, **kw)


def grounded(source: str) -> list[dict]:
    return [{"role": "system", "content": "Answer from the source only."},
            {"role": "user", "content": f"Source:\n{source}\n\nWrite one question the source answers."}]


def run_chat(client: LLMClient, messages: list[dict], sampling=SAMPLING, **kw):
    async def go():
        try:
            return await client.chat(messages, sampling, **kw)
        finally:
            await client.aclose()

    return asyncio.run(go())


# -- the estimate ----------------------------------------------------------------------------
def test_digits_count_one_token_each_and_never_more_than_the_bytes():
    assert count_tokens("123456") == 2 and count_prompt_tokens("123456") == 6
    assert count_prompt_tokens("In 1953, 42 of them.") == count_tokens("In 1953, 42 of them.") + 2 + 1
    for text in (PAGE, "é" * 50, "x1 2y 12345678 ünïcode ½ ٣٤٥"):
        assert count_prompt_tokens(text) <= len(text.encode())


def test_the_estimate_counts_every_message_text_part_with_the_template_and_the_margin():
    plain = [{"role": "user", "content": "hello there"}]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 90_000}}
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello there"}, image]}]
    assert estimate_prompt_tokens(plain) == estimate_prompt_tokens(parts)  # the image is the server's to judge
    assert estimate_prompt_tokens(plain * 2) > estimate_prompt_tokens(plain)
    assert estimate_prompt_tokens(grounded(PAGE)) > count_prompt_tokens(PAGE) * PROMPT_TOKEN_MARGIN


def test_over_budget_says_by_how_much_and_counts_max_tokens():
    messages = grounded(PAGE)
    why = over_budget(messages, 1024, 4096)
    assert why == f"~{estimate_prompt_tokens(messages)} prompt tokens + 1024 max_tokens > 4096 context tokens"
    small = grounded("A short source.")
    assert over_budget(small, 1024, 4096) is None
    n = estimate_prompt_tokens(small)
    assert over_budget(small, 4096 - n, 4096) is None and over_budget(small, 4096 - n + 1, 4096) is not None


# -- the cut ---------------------------------------------------------------------------------
def test_fit_text_keeps_what_fits_and_cuts_at_a_line_then_a_sentence_then_a_word():
    assert fit_text(PAGE, None) == PAGE and fit_text("short", 100) == "short"
    assert fit_text(PAGE, 0) == "" and fit_text(PAGE, -5) == ""
    for tokens in (7, 50, 333, 1000, 2500):
        cut = fit_text(PAGE, tokens)
        assert PAGE.startswith(cut) and 0 < count_prompt_tokens(cut) <= tokens
    # a whole line where that keeps at least half of the budget
    lines = PAGE.split("\n")
    cut = fit_text(PAGE, 1000)
    assert cut in ["\n".join(lines[:k]) for k in range(1, len(lines))]
    assert count_prompt_tokens("\n".join(lines[: cut.count("\n") + 2])) > 1000  # the longest such
    # one line longer than the budget: cut after a sentence
    cut = fit_text(lines[0], 60)
    assert cut.endswith(".") and count_prompt_tokens(cut) * 2 >= 60
    # no sentence end in reach: after a word; one word over the budget alone: by tokens
    assert fit_text("alpha beta gamma delta epsilon zeta eta theta", 4) in ("alpha beta gamma", "alpha beta gamma delta")
    word = "x" * 400
    assert word.startswith(fit_text(word, 10)) and 0 < count_prompt_tokens(fit_text(word, 10)) <= 10
    assert 0 < count_prompt_tokens(fit_text("9" * 100, 10)) <= 10


def test_a_source_cut_to_the_tokens_left_fits_its_request():
    for context, max_tokens in ((4096, 1024), (8192, 2048), (2048, 256)):
        without = grounded("")
        tokens = tokens_for_sources(without, max_tokens, context)
        assert 0 < tokens < context - max_tokens
        assert over_budget(grounded(fit_text(PAGE, tokens)), max_tokens, context) is None
    assert tokens_for_sources(grounded(""), 4050, 4096) <= 0  # the rest alone does not fit


# -- the client --------------------------------------------------------------------------------
def test_a_request_over_the_context_is_never_sent_nor_retried(fault_server):
    client = make_client(fault_server, context_tokens=4096)
    with pytest.raises(LLMError) as err:
        run_chat(client, grounded(PAGE))
    assert err.value.kind == "prompt_too_long"
    assert str(err.value).startswith("prompt_too_long: ~") and str(err.value).endswith(
        " prompt tokens + 1024 max_tokens > 4096 context tokens")
    assert fault_server.requests == [] and client.usage.retries == 0 and client.usage.requests == 0


def test_a_request_under_the_context_is_sent(fault_server):
    client = make_client(fault_server, context_tokens=4096)
    assert run_chat(client, grounded("A short source.")).text.startswith("Student 1")
    assert len(fault_server.requests) == 1


def test_without_a_known_context_nothing_is_checked(fault_server):
    client = make_client(fault_server, context_tokens=None)
    assert client.prompt_budget(grounded(""), 1024) is None
    run_chat(client, grounded(PAGE))
    assert len(fault_server.requests) == 1  # sent: the server judges


def test_a_source_cut_to_the_clients_prompt_budget_is_sent(fault_server):
    """The hook a method uses: the tokens left for its sources, then each source cut to them."""
    client = make_client(fault_server, context_tokens=4096)
    tokens = client.prompt_budget(grounded(""), SAMPLING.max_tokens)
    source = fit_text(PAGE, tokens)
    assert len(source) < len(PAGE) / 2 and source.endswith(".")
    run_chat(client, grounded(source))
    assert len(fault_server.requests) == 1


class Answer(BaseModel):
    answer: str


def test_on_a_prompt_endpoint_the_budget_leaves_room_for_the_schema(fault_server):
    plain = make_client(fault_server, context_tokens=4096)
    prompt = make_client(fault_server, context_tokens=4096, structured_output="prompt")
    assert prompt.prompt_budget(grounded(""), 512, Answer) < plain.prompt_budget(grounded(""), 512, Answer)
    assert prompt.prompt_budget(grounded(""), 512) == plain.prompt_budget(grounded(""), 512)
    fault_server.script.extend(['text:{"answer": "yes"}'])
    source = fit_text(PAGE, prompt.prompt_budget(grounded(""), 512, Answer))
    sampling = SAMPLING.model_copy(update={"max_tokens": 512})
    assert run_chat(prompt, grounded(source), sampling, response_model=Answer).parsed == Answer(answer="yes")


def test_a_repair_over_the_context_fails_as_the_invalid_answer_it_repairs(fault_server):
    """The prompt fits, the answer does not validate, and the prompt with the answer added would
    not fit: the answer's own error, with its text, and no second request."""
    client = make_client(fault_server, context_tokens=4096)
    tokens = client.prompt_budget(grounded(""), SAMPLING.max_tokens)
    fault_server.script.extend(["text:" + "not json " * 400])
    with pytest.raises(LLMError) as err:
        run_chat(client, grounded(fit_text(PAGE, tokens)), response_model=Answer)
    assert err.value.kind == "invalid_structured_output" and "not sent back for repair: prompt_too_long" in str(err.value)
    assert err.value.raw.startswith("not json") and len(fault_server.requests) == 1


def test_raw_completions_have_the_same_budget(fault_server):
    client = make_client(fault_server, context_tokens=4096)

    async def go():
        try:
            return await client.raw_completion(grounded(PAGE), SAMPLING)
        finally:
            await client.aclose()

    with pytest.raises(LLMError, match="prompt_too_long"):
        asyncio.run(go())
    assert fault_server.requests == []


def test_a_cached_answer_is_served_whatever_the_budget(fault_server, store):
    """The check guards sending: an answer the endpoint already gave (before its context was
    known) is an answer."""
    cache = ResponseCache(store, store.join("_cache"))
    run_chat(make_client(fault_server, context_tokens=None, cache=cache), grounded(PAGE))
    result = run_chat(make_client(fault_server, context_tokens=4096, cache=cache), grounded(PAGE))
    assert result.cached and len(fault_server.requests) == 1
