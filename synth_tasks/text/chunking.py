"""Token-bounded chunking that cuts on paragraph boundaries where it can, then on sentences, and only
as a last resort inside a sentence (by tokens). Units marked atomic (code blocks, tables) are never
cut, even when one alone is over the budget."""

from __future__ import annotations

import re
from dataclasses import dataclass

from synth_tasks.text.tokens import count_tokens, encoding

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    n_tokens: int


@dataclass(frozen=True)
class Unit:
    """A piece of text to pack; ``atomic`` units (code blocks, tables) are kept whole."""

    text: str
    atomic: bool = False


def _split_long(unit: str, max_tokens: int) -> list[str]:
    """Split one paragraph that is over budget: by sentences, then by raw token windows."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(unit):
        if count_tokens(sentence) <= max_tokens:
            pieces.append(sentence)
            continue
        ids = encoding().encode(sentence, disallowed_special=())
        pieces.extend(encoding().decode(ids[i : i + max_tokens]) for i in range(0, len(ids), max_tokens))
    return pieces


def pack_units(units: list[Unit], max_tokens: int, min_tokens: int = 0) -> list[Chunk]:
    """Greedily pack units into chunks of at most ``max_tokens`` tokens, joined by blank lines.

    A trailing chunk shorter than ``min_tokens`` is merged into the one before it (which may then
    exceed ``max_tokens`` by less than ``min_tokens``), so no context is too small to be useful.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    pieces: list[tuple[str, str]] = []  # (text, separator placed before it)
    for unit in units:
        if unit.atomic or count_tokens(unit.text) <= max_tokens:
            pieces.append((unit.text, "\n\n"))
        else:
            parts = _split_long(unit.text, max_tokens)
            pieces.extend((s, "\n\n" if i == 0 else " ") for i, s in enumerate(parts))

    chunks: list[str] = []
    current = ""
    for piece, sep in pieces:
        candidate = f"{current}{sep}{piece}" if current else piece
        if current and count_tokens(candidate) > max_tokens:
            chunks.append(current)
            current = piece
        else:
            current = candidate
    if current:
        chunks.append(current)
    if len(chunks) > 1 and min_tokens and count_tokens(chunks[-1]) < min_tokens:
        tail = chunks.pop()
        chunks[-1] = f"{chunks[-1]}\n\n{tail}"
    return [Chunk(index=i, text=c, n_tokens=count_tokens(c)) for i, c in enumerate(chunks)]


def chunk_text(text: str, max_tokens: int, min_tokens: int = 0) -> list[Chunk]:
    """Chunk plain text whose paragraphs are separated by blank lines."""
    paragraphs = [Unit(p.strip()) for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    return pack_units(paragraphs, max_tokens, min_tokens)
