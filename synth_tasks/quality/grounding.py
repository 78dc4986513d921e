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
    threshold: float = 85.0
    name: str = "ungrounded_evidence"

    def __call__(self, evidence: str, source: str) -> Verdict:
        if not evidence or not evidence.strip():
            return drop("no_evidence: the answer quotes no evidence")
        score = evidence_score(evidence, source)
        if score < self.threshold:
            return drop(f"{self.name}: match {score:.0f} < {self.threshold:.0f}")
        return KEEP
