"""Evidence grounding: a generated answer's quoted evidence must be found in its source text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from synth_tasks.quality.filters import KEEP, Verdict, drop

_SPACE = re.compile(r"\s+")
_MARKUP = re.compile(r"[`*_#>|]")


def _normalize(text: str) -> str:
    return _SPACE.sub(" ", _MARKUP.sub("", text)).strip().lower()


def evidence_score(evidence: str, source: str) -> float:
    """0-100: how well the evidence matches its best-aligned span of the source (fuzzy, so small
    changes in whitespace, markup or punctuation do not count against it)."""
    ev, src = _normalize(evidence), _normalize(source)
    if not ev or not src:
        return 0.0
    return float(fuzz.partial_ratio(ev, src))


@dataclass(frozen=True)
class Grounded:
    """Every quote must be found in the source (fuzzy ``threshold``, 0-100) and be long enough to
    say something (``min_words``): a one-word quote matches any text. A whole field of commentary
    around a quote ("The text states: '...' This supports ...") does not match, which is why
    generators are asked for verbatim quotes in their own list."""

    threshold: float = 85.0
    min_words: int = 3
    name: str = "ungrounded_evidence"

    def __call__(self, quotes: str | list[str], source: str) -> Verdict:
        quotes = [quotes] if isinstance(quotes, str) else list(quotes)
        quotes = [q for q in quotes if q and q.strip()]
        if not quotes:
            return drop("no_evidence: the answer quotes no evidence")
        for i, quote in enumerate(quotes, 1):
            n_words = len(quote.split())
            if n_words < self.min_words:
                return drop(f"short_quote: quote {i} has {n_words} word(s) < {self.min_words}")
            score = evidence_score(quote, source)
            if score < self.threshold:
                return drop(f"{self.name}: quote {i} match {score:.0f} < {self.threshold:.0f}")
        return KEEP


def quotes_score(quotes: list[str], source: str) -> float:
    """The weakest quote's match: how well the whole evidence is grounded."""
    return min((evidence_score(q, source) for q in quotes), default=0.0)
