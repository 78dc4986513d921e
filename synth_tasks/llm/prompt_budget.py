"""Prompt budgets: how many tokens a chat request's prompt takes, estimated before it is sent, so
that no request over its endpoint's context length is sent only to fail (HTTP 400), and so that a
method can cut its sources to fit (``tokens_for_sources`` and ``fit_text``).

The estimate is made here, without the endpoint's tokenizer: tiktoken's cl100k_base (offline) counts
the messages' text, with every run of digits counted as one token per digit (Qwen2.5, SmolLM2 and
Llama 2 split numbers into single digits; cl100k groups them by three), plus the chat template's
own tokens, all times a safety margin. Measured on the shipped samples (prose, markdown, GSM8K,
Python), the digit-aware count matched Qwen2.5's vocabulary (the quality model) to within 0.1 %;
SmolLM2's vocabulary takes 2-14 % more tokens (24 % on one Python file), hence the 15 % margin. A
prompt it underestimates is sent as before and the server judges it.

Image parts of a message are not counted: what an image costs depends on the model, and the
server judges it."""

from __future__ import annotations

import math
import re

from synth_tasks.text.tokens import count_tokens, encoding

# The estimate is multiplied by this: the endpoint's tokenizer is not cl100k (see the docstring).
PROMPT_TOKEN_MARGIN = 1.15
# Per request: the template's default system prompt (Qwen2.5 adds "You are Qwen, created by
# Alibaba Cloud..." where the messages have none) and the assistant header the answer follows.
TEMPLATE_TOKENS = 32
# Per message: its role markers and separators (<|im_start|>user\n ... <|im_end|>\n).
MESSAGE_TOKENS = 8

_DIGITS = re.compile(r"[0-9]+")  # ASCII: what the byte bound in over_budget holds for
# Where a cut text may end: before a line break (trafilatura separates paragraphs with one), after
# a sentence's end, before any whitespace.
_PARAGRAPH_END = re.compile(r"\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_WORD_END = re.compile(r"\s")


def count_prompt_tokens(text: str) -> int:
    """Tokens ``text`` takes in a prompt, as estimated here: cl100k_base, but one token per digit.
    Never more than the text's UTF-8 bytes (every token holds at least one byte)."""
    n = count_tokens(text)
    for digits in _DIGITS.findall(text):
        n += len(digits) - math.ceil(len(digits) / 3)  # cl100k took ceil(len / 3) tokens for them
    return n


def _message_texts(message: dict) -> list[str]:
    """The text of a message: its content, or the text parts of a content given as parts."""
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part.get("text") or "" for part in content if isinstance(part, dict) and part.get("type") == "text"]
    return []


def _unmargined(messages: list[dict], count) -> int:
    return TEMPLATE_TOKENS + sum(MESSAGE_TOKENS + sum(count(t) for t in _message_texts(m)) for m in messages)


def estimate_prompt_tokens(messages: list[dict]) -> int:
    """The tokens ``messages`` are estimated to take as a prompt, the safety margin included."""
    return math.ceil(_unmargined(messages, count_prompt_tokens) * PROMPT_TOKEN_MARGIN)


def over_budget(messages: list[dict], max_tokens: int, context_tokens: int) -> str | None:
    """Why ``messages`` with ``max_tokens`` for the answer do not fit in ``context_tokens``, or None
    where they fit. Nothing is tokenized where the prompt's bytes alone show that it fits (an upper
    bound on its tokens): most requests cost nothing here."""
    if math.ceil(_unmargined(messages, lambda t: len(t.encode())) * PROMPT_TOKEN_MARGIN) + max_tokens <= context_tokens:
        return None
    prompt_tokens = estimate_prompt_tokens(messages)
    if prompt_tokens + max_tokens <= context_tokens:
        return None
    return f"~{prompt_tokens} prompt tokens + {max_tokens} max_tokens > {context_tokens} context tokens"


# Left unspent by tokens_for_sources: a text put into a message can tokenize a token or two longer
# than on its own (a word cut at its joins), and it may come as one more message.
_JOIN_TOKENS = 2 * MESSAGE_TOKENS


def tokens_for_sources(messages: list[dict], max_tokens: int, context_tokens: int) -> int:
    """Tokens (as ``count_prompt_tokens`` counts them) that sources may take in a request of
    ``messages``, which hold everything but the sources, with ``max_tokens`` for the answer; 0 or
    less where even the messages alone do not fit. Texts cut to it with ``fit_text`` pass the
    client's check."""
    usable = math.floor((context_tokens - max_tokens) / PROMPT_TOKEN_MARGIN)
    return usable - _unmargined(messages, count_prompt_tokens) - _JOIN_TOKENS


def _longest_fitting_prefix(text: str, ends: list[int], tokens: int) -> str:
    """The longest ``text[:end].rstrip()`` over ``ends`` (ascending) that takes at most ``tokens``
    tokens; "" where none does. A binary search: a longer prefix takes no fewer tokens, but for a
    word that tokenizes differently once the next is added."""
    best, lo, hi = "", 0, len(ends) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        prefix = text[: ends[mid]].rstrip()
        if count_prompt_tokens(prefix) <= tokens:
            best, lo = prefix, mid + 1
        else:
            hi = mid - 1
    return best


def fit_text(text: str, tokens: int | None) -> str:
    """``text`` cut to at most ``tokens`` tokens (as ``count_prompt_tokens`` counts them), whole
    where it fits or where ``tokens`` is None (the endpoint's context length is unknown). It is cut
    at the end of a paragraph (a line) where that keeps at least half of the budget, else at the end
    of a sentence where that does, else after a word; a first word over the budget alone is cut by
    tokens. "" where ``tokens`` is 0 or less."""
    if tokens is None or count_prompt_tokens(text) <= tokens:
        return text
    if tokens <= 0:
        return ""
    best = ""
    for boundary in (_PARAGRAPH_END, _SENTENCE_END, _WORD_END):
        cut = _longest_fitting_prefix(text, [m.start() for m in boundary.finditer(text)], tokens)
        if count_prompt_tokens(cut) * 2 >= tokens:
            return cut
        best = max(best, cut, key=len)
    if best:
        return best
    # One word (a URL, a number) longer than the whole budget: cut it by tokens, fewer where its
    # digits count more than cl100k's tokens do.
    ids = encoding().encode(text, disallowed_special=())
    keep = tokens
    while keep > 0 and count_prompt_tokens(cut := encoding().decode(ids[:keep])) > tokens:
        keep -= max(1, keep // 10)
    return cut if keep > 0 else ""
