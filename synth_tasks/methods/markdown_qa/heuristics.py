"""Deterministic, model-free fact extraction and question writing: the no-LLM mode of markdown_qa,
so its DAG can run, and be tested byte for byte, without any model."""

from __future__ import annotations

import hashlib
import re

from synth_tasks.text.markdown import plain_text

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_NEGATABLE = ("is", "are", "was", "were", "can", "will", "must", "should", "may", "could", "would")
STOPWORDS = frozenset(
    "the a an and or but of to in on for with by from as at is are was were be been being this that these "
    "those it its they them their there which who whom what when where why how not no can will would should "
    "could may might must do does did has have had than then so such also into over under about more most "
    "other some any each only very just you your we our".split())


def heuristic_facts(markdown: str, max_facts: int = 8) -> list[str]:
    """Declarative sentences of 6-40 words from the prose (no code, tables or headings)."""
    facts: list[str] = []
    for para in plain_text(markdown).split("\n\n"):
        for sentence in _SENTENCE.split(" ".join(para.split())):
            s = sentence.strip()
            words = s.split()
            if 6 <= len(words) <= 40 and s.endswith(".") and s[0].isupper() and s not in facts:
                facts.append(s)
    return facts[:max_facts]


_PRONOUNS = frozenset("it its they this these that those there he she we you".split())


def subject_of(fact: str) -> str | None:
    """The noun phrase before the first auxiliary verb ("the batch_size setting" in "The batch_size
    setting is ..."), or None when there is none within six words or it is only a pronoun."""
    words = fact.rstrip(".").split()
    for i, w in enumerate(words[:7]):
        if i and w.lower() in _NEGATABLE + ("has", "have", "does", "do"):
            subject = words[:i]
            if subject[0].lower() in _PRONOUNS:
                return None
            if subject[0] in ("The", "A", "An"):
                subject[0] = subject[0].lower()
            return " ".join(subject)
    return None


def negate(fact: str) -> str | None:
    """The fact with its first auxiliary negated ("is" -> "is not", "can" -> "cannot"), or None."""
    words = fact.split()
    for i, w in enumerate(words):
        if w.lower() in _NEGATABLE and i + 1 < len(words) and words[i + 1].lower() != "not":
            words[i] = "cannot" if w.lower() == "can" else f"{w} not"
            return " ".join(words)
    return None


def key_term(fact: str) -> str | None:
    """The longest content word (>= 5 letters, first on ties): the blank of a cloze question."""
    candidates = [w.strip(".,;:()\"'") for w in fact.split()]
    candidates = [w for w in candidates if len(w) >= 5 and w.isalpha() and w.lower() not in STOPWORDS]
    return max(candidates, key=len) if candidates else None


def _stable_bit(text: str) -> int:
    return hashlib.sha256(text.encode()).digest()[0] & 1


def heuristic_pair(qa_type: str, fact: str, title: str) -> dict | None:
    """A grounded QA pair of a heuristic type (factual_recall, true_false, fill_in_blank) built from
    one fact, or None when that fact cannot make one (nothing to negate or to blank out)."""
    subject = subject_of(fact)
    term = key_term(fact)
    topic = subject or (f'"{term}"' if term else None)
    locate = f'Find the part of the section "{title}" that discusses {topic or "this"}.'
    if qa_type == "factual_recall":
        if topic is None:
            return None
        return {"question": f'According to the section "{title}", what is stated about {topic}?',
                "answer": fact, "reasoning_steps": [locate, f'The section states: "{fact}"'], "quotes": [fact]}
    if qa_type == "true_false":
        negated = negate(fact)
        if negated is not None and _stable_bit(fact):
            return {"question": f"True or false: {negated}", "answer": "False",
                    "reasoning_steps": [locate, f'The section states: "{fact}"',
                                        "The statement says the opposite, so it is false."], "quotes": [fact]}
        return {"question": f"True or false: {fact}", "answer": "True",
                "reasoning_steps": [locate, f'The section states: "{fact}"',
                                    "The statement matches it, so it is true."], "quotes": [fact]}
    if qa_type == "fill_in_blank":
        if term is None:
            return None
        blanked = re.sub(rf"\b{re.escape(term)}\b", "____", fact, count=1)
        return {"question": f"Fill in the blank: {blanked}", "answer": term,
                "reasoning_steps": [locate, f'The section states: "{fact}"',
                                    f'The missing word is "{term}".'], "quotes": [fact]}
    raise ValueError(f"no heuristic for QA type {qa_type!r}")
