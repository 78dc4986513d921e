"""The instruct method's filters for generated instructions and for the responses that vet them.

Self-Instruct (Wang et al., 2023, arXiv 2212.10560) keeps a new instruction only if it is novel
(ROUGE-L against every instruction already in the pool at most 0.7), has 4 to 150 words, avoids
tasks a text model cannot do (images, files, plots ...) and does not start with punctuation or a
non-ASCII character. Evol-Instruct (Xu et al., 2023, WizardLM, arXiv 2304.12244) eliminates an
evolved instruction whose response apologises briefly or says nothing, or which leaks words of the
rewriting template. (Its fourth rule, "no information gain", needs a model: see ``generate.py``.)

Every filter is a callable ``(text, prompt="") -> Verdict`` like those in ``synth_tasks.quality.filters``."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import process
from rapidfuzz.distance import Indel

from synth_tasks.methods.instruct.config import SELF_INSTRUCT_BLOCKLIST
from synth_tasks.quality.filters import KEEP, Verdict, drop

TEMPLATE_MARKERS = ("#given prompt#", "#rewritten prompt#", "#created prompt#",
                    "given prompt", "rewritten prompt", "created prompt")

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's tokenizer without stemming (what Self-Instruct used): lower case, every run
    of characters other than a-z and 0-9 separates tokens."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 of two texts. Indel similarity over token lists is 1 - (|a| + |b| - 2 LCS) /
    (|a| + |b|) = 2 LCS / (|a| + |b|), which is ROUGE-L's F1 (beta 1): the same number as
    rouge-score's, computed in C++ by rapidfuzz (the tests check the two agree)."""
    ta, tb = rouge_tokens(a), rouge_tokens(b)
    return Indel.normalized_similarity(ta, tb) if ta and tb else 0.0


@dataclass
class RougeNovelty:
    """The pool of instructions so far; a candidate whose ROUGE-L against any of them exceeds
    ``threshold`` is dropped, naming the closest one. ``add`` grows the pool with kept ones."""

    threshold: float = 0.7
    name: str = "too_similar"
    _ids: list[str] = field(default_factory=list, repr=False)
    _tokens: list[list[str]] = field(default_factory=list, repr=False)

    def add(self, record_id: str, text: str) -> None:
        tokens = rouge_tokens(text)
        if tokens:
            self._ids.append(record_id)
            self._tokens.append(tokens)

    def __len__(self) -> int:
        return len(self._ids)

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        tokens = rouge_tokens(text)
        if not tokens or not self._tokens:
            return KEEP
        best = process.extractOne(tokens, self._tokens, scorer=Indel.normalized_similarity, processor=None,
                                  score_cutoff=self.threshold)
        if best is not None and best[1] > self.threshold:
            return drop(f"{self.name}: ROUGE-L {best[1]:.2f} > {self.threshold} against {self._ids[best[2]]}")
        return KEEP


@dataclass(frozen=True)
class WordCount:
    """Self-Instruct's length rule: drop instructions of 3 words or fewer, or over 150."""

    min_words: int = 4
    max_words: int = 150

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        n = len(text.split())
        if n < self.min_words:
            return drop(f"too_few_words: {n} < {self.min_words}")
        if n > self.max_words:
            return drop(f"too_many_words: {n} > {self.max_words}")
        return KEEP


@dataclass(frozen=True)
class KeywordBlocklist:
    """Instructions about things a text-only model cannot see or make. Whole words (and their
    plural), case-insensitive; "go to" matches as a phrase."""

    keywords: tuple[str, ...] = SELF_INSTRUCT_BLOCKLIST
    name: str = "blocklisted_keyword"

    @property
    def _pattern(self) -> re.Pattern:
        return _keyword_pattern(self.keywords)

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        m = self._pattern.search(text)
        return drop(f"{self.name}: {m.group(1).lower()}") if m else KEEP


@lru_cache(maxsize=8)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern:
    alternatives = "|".join(r"\s+".join(map(re.escape, k.split())) for k in keywords)
    return re.compile(rf"\b({alternatives})s?\b", re.IGNORECASE)


@dataclass(frozen=True)
class CleanStart:
    """Self-Instruct drops instructions starting with punctuation or a non-ASCII character
    (list debris, stray quotes, another language)."""

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        first = text.lstrip()[:1]
        if not first:
            return drop("empty_instruction: nothing left after parsing")
        if first in string.punctuation:
            return drop(f"starts_with_punctuation: {first!r}")
        if not first.isascii():
            return drop(f"starts_with_non_ascii: {first!r}")
        return KEEP


@dataclass(frozen=True)
class TemplateLeak:
    """An evolved instruction that copies words of the rewriting prompt ("#Rewritten Prompt#")."""

    markers: tuple[str, ...] = TEMPLATE_MARKERS
    name: str = "template_leak"

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        lowered = text.lower()
        hit = next((m for m in self.markers if m in lowered), None)
        return drop(f"{self.name}: contains {hit!r}") if hit else KEEP


@dataclass(frozen=True)
class ApologyResponse:
    """A response that says "sorry" in under ``max_words`` words: the instruction was too hard or
    malformed for the model, so the evolution is eliminated."""

    max_words: int = 80
    name: str = "apology_response"

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        n = len(text.split())
        if "sorry" in text.lower() and n < self.max_words:
            return drop(f"{self.name}: says sorry in {n} words")
        return KEEP


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@dataclass(frozen=True)
class ContentlessResponse:
    """A response made only of punctuation and stop words (or nothing at all)."""

    name: str = "contentless_response"

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        words = re.findall(r"[^\W_]+", text.lower())
        if all(w in _stop_words() for w in words):
            return drop(f"{self.name}: only punctuation and stop words ({len(words)} words)")
        return KEEP
