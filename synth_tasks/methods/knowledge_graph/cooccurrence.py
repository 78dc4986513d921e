"""A deterministic extraction without an LLM (``no_llm``), for tests and demos: the terms of a
chunk are its inline code spans (`Vec<T>`, `push`) and its capitalised phrases not at the start of
a sentence (Rust, Cargo, Hash Map; headings and HTML tags are skipped); two terms in one sentence are related, the sentence is the
relation's description and the number of sentences they share its strength (1-10). A term's
description is the first sentence naming it. Same text in, same graph out."""

from __future__ import annotations

import re
from collections import Counter

from synth_tasks.methods.knowledge_graph.parse import Extraction

_CODE_SPAN = re.compile(r"`([^`\n]{1,40})`")
_FENCE = re.compile(r"```.*?```", re.DOTALL)
_CAPITALISED = re.compile(r"\b([A-Z][a-zA-Z0-9]+(?:[ -][A-Z][a-zA-Z0-9]+)*)\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"(])|\n\s*\n|\n(?=#|\s*[-*] )")
_STOP = {"The", "This", "That", "These", "Those", "It", "In", "If", "We", "You", "When", "For", "A", "An", "As",
         "Note", "Listing", "Figure", "Chapter", "Here", "Then", "But", "And", "Or", "So", "To", "Let", "Now",
         "Because", "However", "With", "Some", "Each", "One", "Also", "Instead", "Rather", "Another", "What",
         "Why", "How", "Our", "My", "Its", "Using", "See", "Recall", "Like", "Unlike", "All", "Any", "No", "Not",
         "On", "Of", "At", "By", "From", "Be", "Is", "Are", "There", "They", "Both", "Even", "Only", "First",
         "Next", "Finally", "After", "Before", "While", "Once", "Until", "Since", "Although", "Ok", "Err", "I"}
MAX_TERMS_PER_SENTENCE = 6


def _terms(sentence: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for m in _CODE_SPAN.finditer(sentence):
        code = m.group(1).strip()
        if len(code) >= 2 and not code.isdigit() and not re.search(r"[;{}=]", code):
            found.append((code, "technology"))
    plain = _CODE_SPAN.sub(" ", sentence)
    plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", plain)
    for m in _CAPITALISED.finditer(plain):
        phrase = m.group(1)
        words = phrase.split()
        if m.start() == len(plain) - len(plain.lstrip()) and len(words) == 1:
            continue  # one capitalised word opening the sentence is just the sentence's first word
        while words and words[0] in _STOP:
            words = words[1:]
        if not words or len(" ".join(words)) < 3:
            continue
        phrase = " ".join(words)
        found.append((phrase, "concept"))
    seen, out = set(), []
    for name, t in found:
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append((name, t))
    return out[:MAX_TERMS_PER_SENTENCE]


def sentences(text: str) -> list[str]:
    text = _FENCE.sub(" ", text)
    text = re.sub(r"^#+\s.*$", "", text, flags=re.MULTILINE)  # headings capitalise every word
    text = re.sub(r"<[^>\n]*>", " ", text)  # HTML tags and comments
    return [" ".join(s.split()) for s in _SENTENCE.split(text) if len(s.split()) >= 3]


def extract(text: str, types: tuple[str, ...]) -> Extraction:
    out = Extraction()
    descriptions: dict[str, str] = {}
    kinds: dict[str, str] = {}
    names: dict[str, str] = {}
    pairs: Counter = Counter()
    pair_text: dict[tuple[str, str], str] = {}
    for s in sentences(text):
        terms = _terms(s)
        for name, kind in terms:
            key = name.lower()
            names.setdefault(key, name)
            kinds.setdefault(key, kind if kind in types else "other")
            descriptions.setdefault(key, s[:300])
        keys = sorted({n.lower() for n, _ in terms})
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                pairs[(a, b)] += 1
                pair_text.setdefault((a, b), s[:300])
    for key in sorted(names):
        out.entities.append({"name": names[key], "type": kinds[key], "description": descriptions[key]})
    for (a, b), n in sorted(pairs.items()):
        out.relations.append({"source": names[a], "target": names[b], "description": pair_text[(a, b)],
                              "strength": min(10, n)})
    return out
