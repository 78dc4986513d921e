"""Keep/drop filters. Each is a small callable taking the record's text (and, where it needs one, the
prompt it came from) and returning a Verdict; a drop always carries its reason for the ledger."""

from __future__ import annotations

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


def first_drop(filters, text: str, prompt: str = "") -> Verdict:
    """Run filters in order; the first drop decides (and names the reason)."""
    for f in filters:
        verdict = f(text, prompt)
        if not verdict.keep:
            return verdict
    return KEEP
