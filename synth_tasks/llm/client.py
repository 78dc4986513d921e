"""The one LLM client every stage uses: an async OpenAI-compatible chat client with bounded
concurrency, retries with backoff, a per-request deadline, structured output, a response cache,
token accounting, an optional token budget and, where the endpoint's context length is known, a
prompt budget: a request whose estimated prompt plus max_tokens is over the context is never sent
(LLMError kind "prompt_too_long", not retried; ``StageRun.llm_calls`` filters its record).

It talks to llama.cpp's server, vLLM, OpenAI or ZhipuAI's OpenAI-compatible endpoint unchanged;
only ``EndpointConfig`` differs.

The per-request path is kept lean (bench/bench_generation.py measures it against the bare SDK):
the retry loop is written out rather than run through tenacity's AsyncRetrying, whose per-call
setup cost more than the rest of the client's own work together, and a response model's JSON
schema is built once per client, not per request (pydantic takes ~0.35 ms to build one)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Callable

import openai
from pydantic import BaseModel, ValidationError

from synth_tasks.config import EndpointConfig, LLMParams, SamplingParams
from synth_tasks.llm.cache import ResponseCache, cache_key
from synth_tasks.llm.prompt_budget import over_budget, tokens_for_sources

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 300.0


class LLMError(Exception):
    """A request that did not produce a usable answer. ``kind`` is a short machine-readable tag,
    ``raw`` the model's text where there was one, ``result`` the whole answer it came in (its
    tokens and finish reason) for callers that keep part of it."""

    def __init__(self, kind: str, message: str, raw: str | None = None, result: "ChatResult | None" = None):
        super().__init__(f"{kind}: {message}")
        self.kind, self.raw, self.result = kind, raw, result


PROMPT_TOO_LONG = "prompt_too_long"


class BudgetExhausted(LLMError):
    def __init__(self, limit: int):
        super().__init__("token_budget_exhausted", f"the run's budget of {limit} fresh tokens is spent")


@dataclass
class Usage:
    """Counters for one client (one task); summed across tasks into the run summary."""

    requests: int = 0  # answered by the endpoint (fresh)
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def fresh_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ChatResult:
    text: str
    model: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False
    parsed: BaseModel | None = field(default=None, repr=False)
    cache_key: str | None = field(default=None, repr=False)  # where the answer is cached once accepted


class _RetryableResponse(Exception):
    """An answer that is worth asking again for (malformed body, empty choices)."""


def _retry_after_s(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return None  # an HTTP date; rare for LLM APIs, fall back to backoff


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, TimeoutError, _RetryableResponse)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    # A 200 whose body is not JSON (a proxy's error page, a cut-off stream).
    return isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError))


def _classify(exc: BaseException) -> str:
    if isinstance(exc, (openai.APITimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error"
    if isinstance(exc, openai.APIStatusError):
        return f"http_{exc.status_code}"
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError, _RetryableResponse)):
        return "malformed_response"
    return type(exc).__name__


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
# A backslash that is not itself escaped, followed by a word: a JSON escape (\n, \t, \u00e9) or a
# LaTeX command a model wrote with one backslash (\frac, \bar, \sigma).
_BACKSLASH_WORD = re.compile(r"(?<!\\)((?:\\\\)*)\\([A-Za-z]+)")
# LaTeX commands whose first letter is also a JSON escape (\b \f \n \r \t \u): read as JSON, "\bar"
# is a backspace and "ar", "\frac" a form feed and "rac", "\nu" a newline and "u".
LATEX_COMMANDS = frozenset("""
bar beta big Big bigg Bigg bigl bigr binom bf bm boldsymbol bot bullet bmod bigcup bigcap bigoplus
frac forall flat frown
nu neq ne nabla neg not notin nmid nexists newline nolimits nonumber nleq ngeq
rho right rightarrow Rightarrow rangle rceil rfloor rm Re rbrace
times text textbf textit textrm texttt theta Theta tau to top tilde triangle tfrac tan tanh therefore
tbinom textstyle
underline underbrace uparrow Uparrow upsilon Upsilon
""".split())


def _latex_escape(m: re.Match) -> str:
    pairs, word = m.group(1), m.group(2)
    first = word[0]
    if first not in "bfnrtu":  # \sigma, \cdot, \lambda: not a JSON escape at all
        return f"{pairs}\\\\{word}"
    if first == "u" and re.match(r"u[0-9A-Fa-f]{4}", word):
        return m.group(0)
    return f"{pairs}\\\\{word}" if word in LATEX_COMMANDS else m.group(0)


def repair_latex_escapes(text: str) -> str:
    """JSON text whose LaTeX commands are escaped as JSON needs them (one backslash doubled), so
    that "$\bar{X}$" reads back as written instead of a backspace and "ar{X}". A JSON escape that
    starts a word which is no LaTeX command (a newline before "The") is left alone."""
    return _BACKSLASH_WORD.sub(_latex_escape, text) if "\\" in text else text


def _json_text(text: str) -> str:
    """The JSON an answer holds: inside a code fence where the model wrapped it in one, and with its
    LaTeX commands' backslashes escaped (``repair_latex_escapes``)."""
    stripped = text.strip()
    m = _FENCE.match(stripped)
    return repair_latex_escapes(m.group(1) if m else stripped)


class LLMClient:
    def __init__(
        self,
        endpoint: EndpointConfig,
        *,
        concurrency: int = 4,
        request_timeout_s: float = 300.0,
        max_retries: int = 6,
        cache: ResponseCache | None = None,
        token_budget: int | None = None,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        cache_namespace: str | None = None,
    ):
        self.endpoint = endpoint
        # Whose answers the cache holds: this endpoint's, unless the run names a shared namespace.
        self.cache_namespace = cache_namespace or endpoint.base_url
        # Never more in flight than the endpoint can compute at once (where it says).
        self.concurrency = min(concurrency, endpoint.max_concurrency or concurrency)
        if self.concurrency < concurrency:
            log.info("concurrency %d capped at %d: the endpoint computes %d request(s) at once",
                     concurrency, self.concurrency, self.concurrency)
        self.request_timeout_s = request_timeout_s
        self.max_retries = max_retries
        self.cache = cache
        self.token_budget = token_budget
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self.usage = Usage()
        # httpx logs every request at INFO; at thousands of requests that buries the task log.
        for name in ("httpx", "httpx2"):  # openai>=3 ships its transport as httpx2
            logging.getLogger(name).setLevel(logging.WARNING)
        self._openai: openai.AsyncOpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None
        # response model -> (response_format, schema instruction for "prompt" mode); building a
        # JSON schema costs ~0.35 ms, a quarter of a whole request's client-side cost.
        self._formats: dict[type[BaseModel], tuple[dict | None, str]] = {}

    @classmethod
    def for_stage(cls, params: LLMParams, endpoint: EndpointConfig, layout, n_shards: int) -> "LLMClient":
        """The client one mapped task uses: the run's Params, the shared response cache, and its
        even share of the run's token budget."""
        budget = None if params.token_budget is None else max(1, params.token_budget // max(n_shards, 1))
        return cls(endpoint, concurrency=params.concurrency, request_timeout_s=params.request_timeout_s,
                   max_retries=params.max_retries, cache=ResponseCache(layout.store, layout.cache_root),
                   token_budget=budget, cache_namespace=params.cache_namespace)

    # The SDK client and the semaphore bind to the running event loop, so they are made lazily.
    def _client(self) -> openai.AsyncOpenAI:
        if self._openai is None:
            # The SDK's default connection pool: our semaphore bounds concurrency. (A pool sized
            # to the concurrency measured 3-4x slower per request in bench/ at 64 in flight.)
            self._openai = openai.AsyncOpenAI(
                base_url=self.endpoint.base_url,
                api_key=self.endpoint.api_key.get_secret_value(),
                max_retries=0,  # retries are ours: one policy for every backend
                timeout=self.request_timeout_s,
            )
            self._semaphore = asyncio.Semaphore(self.concurrency)
        return self._openai

    async def aclose(self) -> None:
        if self.cache is not None:
            self.cache.close()
        if self._openai is not None:
            await self._openai.close()
            self._openai = None

    def _backoff_s(self, exc: BaseException, attempt: int) -> float:
        """How long to wait after failed attempt number ``attempt`` (1-based): the server's
        Retry-After where it sent one, else exponential backoff with "equal jitter"."""
        retry_after = _retry_after_s(exc)
        if retry_after is not None:
            return retry_after
        exp = self.backoff_initial_s * 2 ** (attempt - 1)
        return min(self.backoff_max_s, exp) * (0.5 + random.random() / 2)

    def _format(self, response_model: type[BaseModel]) -> tuple[dict | None, str]:
        """(response_format, the schema instruction) for ``response_model``, made once per client.
        The dicts are shared between requests: nothing may modify them."""
        made = self._formats.get(response_model)
        if made is None:
            schema = response_model.model_json_schema()
            mode = self.endpoint.structured_output
            if mode == "json_schema":
                fmt = {"type": "json_schema", "json_schema": {"name": response_model.__name__, "schema": schema}}
            elif mode == "json_object_schema":
                fmt = {"type": "json_object", "schema": schema}
            else:
                fmt = None  # "prompt": the schema travels in the messages instead
            made = self._formats[response_model] = (
                fmt, f"Reply with one JSON object that matches this JSON schema:\n{json.dumps(schema)}")
        return made

    def prompt_budget(self, messages: list[dict], max_tokens: int,
                      response_model: type[BaseModel] | None = None) -> int | None:
        """Tokens left for a request's sources: ``messages`` hold everything but them, the answer
        gets ``max_tokens``, and ``response_model`` is the one ``chat`` will be given (on a "prompt"
        endpoint its schema travels in the messages). Cut each source with
        ``synth_tasks.llm.prompt_budget.fit_text`` (several: share the tokens out) and the request
        fits. None where the endpoint's context length is unknown: nothing to cut."""
        if self.endpoint.context_tokens is None:
            return None
        if response_model is not None and self.endpoint.structured_output == "prompt":
            messages = [*messages, {"role": "system", "content": self._format(response_model)[1]}]
        return tokens_for_sources(messages, max_tokens, self.endpoint.context_tokens)

    def _check_prompt_fits(self, messages: list[dict], max_tokens: int | None) -> None:
        """Raise LLMError(prompt_too_long) where the request would not fit the endpoint's context:
        sent, it would only come back as HTTP 400."""
        if self.endpoint.context_tokens is None:
            return
        why = over_budget(messages, max_tokens or 0, self.endpoint.context_tokens)
        if why is not None:
            raise LLMError(PROMPT_TOO_LONG, why)

    async def chat(
        self,
        messages: list[dict],
        sampling: SamplingParams,
        response_model: type[BaseModel] | None = None,
        *,
        repair_cut_off: bool | Callable[[str], bool] = True,
    ) -> ChatResult:
        """One chat completion. Raises LLMError (kind, raw) when no usable answer comes.

        An answer that does not validate against ``response_model`` is sent back once for repair.
        For an answer cut off at max_tokens, ``repair_cut_off`` (or what it returns for the
        answer's text) False skips that and raises at once: a caller that keeps what a cut-off
        answer holds (MIND keeps its whole turns) spares a second request, which has the same
        budget and is mostly cut off again.

        A request over the endpoint's context raises LLMError("prompt_too_long") without being
        sent; a repair request over it (the first answer added to the prompt) raises the
        answer's "invalid_structured_output" instead."""
        if response_model is None:
            return await self._remember(await self._complete(messages, sampling, None))
        response_format, instruction = self._format(response_model)
        if self.endpoint.structured_output == "prompt":
            messages = [*messages, {"role": "system", "content": instruction}]
        result = await self._complete(messages, sampling, response_format)
        try:
            result.parsed = response_model.model_validate_json(_json_text(result.text))
            return await self._remember(result)
        except ValidationError as first_error:
            if result.finish_reason == "length" and not (
                    repair_cut_off(result.text) if callable(repair_cut_off) else repair_cut_off):
                await self._remember(result)  # the caller keeps what the cut-off answer holds
                raise LLMError("invalid_structured_output", f"cut off at max_tokens: {_short_errors(first_error)}",
                               raw=result.text, result=result) from None
            problems = _short_errors(first_error)
            repair = [*messages, {"role": "assistant", "content": result.text},
                      {"role": "user", "content": (
                          "Your reply was not valid JSON for the required schema. Problems: "
                          f"{problems}. Reply again with only the corrected JSON object.")}]
        try:
            repaired = await self._complete(repair, sampling, response_format)
        except LLMError as exc:
            if exc.kind != PROMPT_TOO_LONG:
                raise
            raise LLMError("invalid_structured_output", f"{problems} (not sent back for repair: {exc})",
                           raw=result.text, result=result) from None
        try:
            repaired.parsed = response_model.model_validate_json(_json_text(repaired.text))
            return await self._remember(repaired)
        except ValidationError as second_error:
            raise LLMError("invalid_structured_output", _short_errors(second_error), raw=repaired.text,
                           result=repaired) from None

    async def _complete(self, messages: list[dict], sampling: SamplingParams, response_format: dict | None
                        ) -> ChatResult:
        """The cached answer to this request, else a fresh one (not cached yet: see ``_remember``)."""
        model = self.endpoint.model
        params = sampling.model_dump(exclude_none=True)
        key = cache_key(self.cache_namespace, model, messages, params, response_format)
        if self.cache is not None:
            hit = await self.cache.aget(key)
            if hit is not None:
                self.usage.cache_hits += 1
                return ChatResult(**hit, cached=True, cache_key=key)

        response = await self._send(messages, {**params, **({"response_format": response_format}
                                                             if response_format else {})})
        choice = response.choices[0]
        usage = response.usage
        result = ChatResult(
            text=choice.message.content or "",
            model=response.model or model,
            finish_reason=choice.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cache_key=key,
        )
        self.usage.requests += 1
        self.usage.prompt_tokens += result.prompt_tokens
        self.usage.completion_tokens += result.completion_tokens
        return result

    async def _remember(self, result: ChatResult) -> ChatResult:
        """Cache a fresh answer once it is accepted: a plain-text answer, or a structured one that
        passed its schema (or that its caller keeps). An answer that failed validation is never
        cached, so one bad body from the server does not fail its record in every re-run."""
        if self.cache is not None and not result.cached:
            await self.cache.aput(result.cache_key, {"text": result.text, "model": result.model,
                                                     "finish_reason": result.finish_reason,
                                                     "prompt_tokens": result.prompt_tokens,
                                                     "completion_tokens": result.completion_tokens})
        return result

    async def _send(self, messages: list[dict], kwargs: dict):
        """One chat-completions call under the prompt budget, the concurrency bound, the deadline,
        the token budget and the retry policy; raises LLMError when it cannot get an answer."""
        self._check_prompt_fits(messages, kwargs.get("max_tokens"))
        client = self._client()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._semaphore:
                    # Checked once a slot is free, so requests queued behind the one that spent
                    # the budget see it spent.
                    if self.token_budget is not None and self.usage.fresh_tokens >= self.token_budget:
                        raise BudgetExhausted(self.token_budget)
                    async with asyncio.timeout(self.request_timeout_s):
                        response = await client.chat.completions.create(
                            model=self.endpoint.model, messages=messages, **kwargs)
                if not getattr(response, "choices", None):
                    raise _RetryableResponse("response has no choices")
                return response
            except LLMError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded LLMError
                if attempt > self.max_retries or not _is_retryable(exc):
                    self.usage.failures += 1
                    raise LLMError(_classify(exc), _describe(exc)) from exc
                delay = self._backoff_s(exc, attempt)
                self.usage.retries += 1
                log.warning("LLM request failed (%s), retry %d in %.1fs", _classify(exc), attempt, delay)
            await asyncio.sleep(delay)  # outside the except block: the traceback is not kept alive

    async def raw_completion(self, messages: list[dict], sampling: SamplingParams | None = None) -> dict:
        """The whole response as a dict, for endpoints whose answer is not the message text (reward
        models put their scores in logprobs). Retried and accounted like chat(); not cached."""
        params = sampling.model_dump(exclude_none=True) if sampling else {}
        response = await self._send(messages, params)
        self.usage.requests += 1
        if response.usage:
            self.usage.prompt_tokens += response.usage.prompt_tokens
            self.usage.completion_tokens += response.usage.completion_tokens
        return response.model_dump()


def _describe(exc: BaseException) -> str:
    # Never the request itself: it carries the Authorization header.
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} from the LLM endpoint: {str(exc.message)[:300]}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _short_errors(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in err.errors()[:5])
