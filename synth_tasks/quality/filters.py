"""Keep/drop filters. Each is a small callable taking the record's text (and, where it needs one, the
prompt it came from) and returning a Verdict; a drop always carries its reason for the ledger."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from synth_tasks.text.tokens import count_tokens


@dataclass(frozen=True)
class Verdict:
    keep: bool
    reason: str | None = None


KEEP = Verdict(True)


def drop(reason: str) -> Verdict:
    return Verdict(False, reason)


def _words(text: str) -> list[str]:
    return text.lower().split()


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


@dataclass(frozen=True)
class MinTokens:
    min_tokens: int
    name: str = "too_short"

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        n = count_tokens(text)
        return KEEP if n >= self.min_tokens else drop(f"{self.name}: {n} tokens < {self.min_tokens}")


@dataclass(frozen=True)
class Repetition:
    """Degenerate loops, after Gopher's repetition rules: too many characters in duplicated lines,
    or in repeated word n-grams."""

    max_dup_line_char_frac: float = 0.3
    ngram: int = 10
    max_dup_ngram_word_frac: float = 0.3
    name: str = "repetition_loop"

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        counts = Counter(lines)
        dup_chars = sum(len(ln) * (c - 1) for ln, c in counts.items() if c > 1)
        total_chars = sum(len(ln) for ln in lines) or 1
        if dup_chars / total_chars > self.max_dup_line_char_frac:
            return drop(f"{self.name}: {dup_chars / total_chars:.0%} of characters in repeated lines")
        words = _words(text)
        grams = _ngrams(words, self.ngram)
        if grams:
            gram_counts = Counter(grams)
            covered = set()
            for i, g in enumerate(grams):
                if gram_counts[g] > 1:
                    covered.update(range(i, i + self.ngram))
            frac = len(covered) / len(words)
            if frac > self.max_dup_ngram_word_frac:
                return drop(f"{self.name}: {frac:.0%} of words in repeated {self.ngram}-grams")
        return KEEP


@dataclass(frozen=True)
class PromptEcho:
    """Output that mostly copies its prompt (the instruction or the source text) instead of
    transforming it."""

    ngram: int = 8
    max_copied_frac: float = 0.6
    name: str = "echoes_prompt"

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        out = _ngrams(_words(text), self.ngram)
        if not out or not prompt:
            return KEEP
        source = set(_ngrams(_words(prompt), self.ngram))
        frac = sum(g in source for g in out) / len(out)
        if frac > self.max_copied_frac:
            return drop(f"{self.name}: {frac:.0%} of {self.ngram}-grams copied from the prompt")
        return KEEP


# A model declining its task, as the text's opening: "I'm sorry, but I can't assist with that.",
# "I cannot help with this request", "As an AI language model, ...". Anchored at the very start, with
# no quotation mark before it, so a story whose character apologises ('"I'm sorry, but I can't
# come," said Tom.') is not one.
_REFUSAL = re.compile(
    r"\s*(?:(?:I'm|I am|I’m) (?:sorry|afraid),? but I (?:can't|can’t|cannot|am unable to|won't|won’t)\b"
    r"|I (?:can't|can’t|cannot|am unable to|won't|won’t)"
    r" (?:assist|help|comply|fulfil|fulfill|provide|write|create)\b"
    r"|As an AI\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Refusal:
    """A reply that declines the task instead of doing it: the quality model wrote "I'm sorry, but
    I can't assist with that." for a curriculum story in 2 of the 5 samples read by hand here. Not
    instruct's ``ApologyResponse``, Evol-Instruct's own rule (any "sorry" in a short response), which
    would drop a short story whose character says sorry."""

    name: str = "refusal"

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        opening = _REFUSAL.match(text)
        return drop(f"{self.name}: {opening.group(0).strip()!r}") if opening else KEEP


def first_drop(filters, text: str, prompt: str = "") -> Verdict:
    """Run filters in order; the first drop decides (and names the reason)."""
    for f in filters:
        verdict = f(text, prompt)
        if not verdict.keep:
            return verdict
    return KEEP


_TERM = re.compile(r"[a-z][a-z0-9]+")


def content_terms(text: str) -> list[str]:
    """The text's content words in order: lower case, English stop words and words under 3 letters
    left out, a plural "s" cut (so "deviations" counts as "deviation")."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    terms = []
    for word in _TERM.findall(text.lower()):
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        if len(word) >= 3 and word not in ENGLISH_STOP_WORDS:
            terms.append(word)
    return terms


def key_terms(source: str, k: int) -> list[str]:
    """The source's ``k`` most frequent content terms (ties: first seen first)."""
    counts = Counter(content_terms(source))
    return [t for t, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:k]]


def topic_overlap(text: str, source: str, k: int = 20) -> float:
    """Share of the source's ``k`` key terms that the text uses: 0 when it talks about something
    else, near 1 when it covers what the source is about."""
    keys = key_terms(source, k)
    if not keys:
        return 1.0
    used = set(content_terms(text))
    return sum(t in used for t in keys) / len(keys)


@dataclass(frozen=True)
class OnTopic:
    """An output meant to stay on its source (the ``prompt`` argument: the source text itself, not
    the instruction around it) must use enough of the source's key terms. Calibrated on MIND
    conversations of both embedded models on a context they were not tuned on (docs/quality.md):
    the quality model's dialogues, all on topic, used 50-70 % of their context's 20 key terms; the
    135M model's nonsense 5-20 %, its answers about probability in general 15 %, its one answer on
    topic 40 %."""

    min_overlap: float = 0.3
    k: int = 20
    name: str = "off_topic"

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        if not prompt:
            return KEEP
        overlap = topic_overlap(text, prompt, self.k)
        if overlap < self.min_overlap:
            return drop(f"{self.name}: uses {overlap:.0%} of its source's {self.k} key terms < {self.min_overlap:.0%}")
        return KEEP


# A template slot left unfilled: "[name]", "<topic>", "{persona}", "XXX", "lorem ipsum".
_PLACEHOLDER = re.compile(r"\[[A-Za-z][A-Za-z _/-]{0,30}\]|<[a-z][a-z _-]{0,30}>|\{[a-z_][a-z_ ]{0,30}\}|\bX{2,}\b"
                          r"|\b(?:lorem ipsum|insert [a-z]+ here|your name)\b", re.IGNORECASE)


@dataclass(frozen=True)
class NoPlaceholders:
    """Text that is a template rather than content: an unfilled slot ("This is a [name] who has been
    studying [field]"), or too few words once ellipses and punctuation are gone ("...")."""

    min_words: int = 5
    name: str = "placeholder"

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        slot = _PLACEHOLDER.search(text)
        if slot:
            return drop(f"{self.name}: unfilled slot {slot.group(0)!r}")
        words = re.findall(r"[^\W\d_]{2,}", text)
        if len(words) < self.min_words:
            return drop(f"{self.name}: {len(words)} words < {self.min_words}")
        return KEEP
