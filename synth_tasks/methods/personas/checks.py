"""Checks of persona-conditioned outputs; each returns the shared layer's Verdict with a
"kind: detail" reason."""

from __future__ import annotations

import re

from synth_tasks.quality.filters import KEEP, Verdict, drop

PREFIXES = {"math_problem": "Math problem:", "user_instruction": "User prompt:", "knowledge_text": "Title:",
            "multi_turn": "User prompt:"}

# An evidence line, as asked ('Evidence: "..."') or as the quality model also writes it: after a list
# marker, a source number or a heading mark ("- Evidence:", "[1] Evidence:", "### Evidence:").
_EVIDENCE = re.compile(r"^\s*(?:[-*]\s+|\[\d+\]\s*)?[#*_\s]*evidence[*_]*\s*:[*_]*\s*(.+?)\s*$",
                       re.IGNORECASE | re.MULTILINE)
_QUOTES = "\"'“”‘’«»"


# A quoted span inside an evidence line that says more than the quote ('"x = 2" is provided in the
# given text as a reference', as the quality model writes it): the span is the quote.
_QUOTED = re.compile(r"[\"“]([^\"”]{8,}?)[\"”]")
# A markdown heading on the first line: the title of an article written without "Title:".
_HEADING = re.compile(r"^\s*#{1,6}\s+(\S.*)$", re.MULTILINE)


def split_evidence(text: str) -> tuple[str, list[str]]:
    """(the output without its ``Evidence: "..."`` lines, the quotes of those lines: the quoted spans
    of a line, or the whole line where it quotes nothing)."""
    quotes = []
    for m in _EVIDENCE.finditer(text):
        line = m.group(1).strip()
        quotes += [q.strip() for q in _QUOTED.findall(line)] or [line.strip(_QUOTES).strip()]
    body = _EVIDENCE.sub("", text).strip()
    return body, [q for q in quotes if q]


def with_title_prefix(text: str) -> str:
    """An article whose first line is a markdown heading ("### Understanding Hash Maps in Rust", as
    the quality model writes them) with that line as its "Title:" line."""
    first = text.lstrip().split("\n", 1)
    m = _HEADING.match(first[0])
    if m is None:
        return text
    return f"Title: {m.group(1).strip()}" + (f"\n{first[1]}" if len(first) > 1 else "")


def has_prefix(text: str, prefix: str) -> Verdict:
    """The output must start with the template's prefix (markdown emphasis and leading space
    forgiven: ``**Math problem:**``)."""
    start = text.lstrip().lstrip("*#_ ").lower()
    if not start.startswith(prefix.lower()):
        return drop(f"missing_prefix: does not start with {prefix!r}: {text.strip()[:40]!r}")
    return KEEP


def strip_prefix(text: str, prefix: str) -> str:
    start = text.lstrip().lstrip("*#_ ")
    rest = start[len(prefix):] if start.lower().startswith(prefix.lower()) else start
    return rest.lstrip("*_ ").strip()


def restates_persona(output: str, persona: str, threshold: float) -> Verdict:
    """An output that only restates its persona says nothing new: its token-sort ratio with the
    persona (0-100, word order ignored, so length differences count) reaches ``threshold``, or it
    adds fewer than 3 words the persona does not have."""
    from rapidfuzz import fuzz

    body = output.strip()
    if not body:
        return drop("empty_output: nothing after the prefix")
    score = fuzz.token_sort_ratio(body.lower(), persona.lower())
    if score >= threshold:
        return drop(f"restates_persona: similarity {score:.0f} >= {threshold:.0f}")
    novel = set(_WORD.findall(body.lower())) - set(_WORD.findall(persona.lower()))
    if len(novel) < 3:
        return drop(f"restates_persona: only {len(novel)} words beyond the persona")
    return KEEP


_WORD = re.compile(r"[a-z0-9]+")


def grounded_in(quotes: list[str], sources: list[dict], threshold: float) -> tuple[Verdict, list[dict]]:
    """Every quote must be found (rapidfuzz partial ratio, as markdown_qa) in one of the sources.
    Returns the verdict and, per quote, the source it was found in: {ref, quote, score}."""
    from synth_tasks.quality.grounding import evidence_score

    if not quotes:
        return drop("no_evidence: the output quotes none of its sources"), []
    found = []
    for q in quotes:
        scored = [(evidence_score(q, s["text"]), s["ref"]) for s in sources]
        score, ref = max(scored) if scored else (0.0, None)
        if score < threshold:
            return drop(f"ungrounded_evidence: {q[:60]!r} matches {score:.0f} < {threshold:.0f}"), []
        found.append({"ref": ref, "quote": q, "score": round(score, 1)})
    return KEEP, found
