"""Markdown documents as sections: split on ATX headings (never inside a fenced code block), keep
code blocks and tables whole, cut very long sections by tokens and merge tiny ones forward."""

from __future__ import annotations

import re
from dataclasses import dataclass

from synth_tasks.text.chunking import Unit, pack_units
from synth_tasks.text.tokens import count_tokens

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_ROW = re.compile(r"^\s*\|")


@dataclass(frozen=True)
class Section:
    index: int
    title: str
    path: tuple[str, ...]  # heading trail, outermost first
    text: str
    n_tokens: int


def _blocks(lines: list[str]) -> list[Unit]:
    """Paragraphs (split on blank lines), fenced code blocks and tables, in order."""
    units: list[Unit] = []
    para: list[str] = []
    i = 0

    def flush():
        if para:
            units.append(Unit("\n".join(para).strip()))
            para.clear()

    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush()
            block = [line]
            i += 1
            while i < len(lines):
                block.append(lines[i])
                if lines[i].strip().startswith(fence.group(1)):
                    i += 1
                    break
                i += 1
            units.append(Unit("\n".join(block), atomic=True))
            continue
        if _TABLE_ROW.match(line):
            flush()
            block = []
            while i < len(lines) and _TABLE_ROW.match(lines[i]):
                block.append(lines[i])
                i += 1
            units.append(Unit("\n".join(block), atomic=True))
            continue
        if line.strip():
            para.append(line)
        else:
            flush()
        i += 1
    flush()
    return [u for u in units if u.text.strip()]


def _raw_sections(text: str, default_title: str) -> list[tuple[str, tuple[str, ...], list[str]]]:
    sections: list[tuple[str, tuple[str, ...], list[str]]] = []
    trail: list[tuple[int, str]] = []
    current: list[str] = []
    title, path = default_title, (default_title,)
    in_fence: str | None = None
    for line in text.splitlines():
        fence = _FENCE.match(line)
        if fence:
            in_fence = None if in_fence == fence.group(1) else (in_fence or fence.group(1))
        heading = None if in_fence or fence else _HEADING.match(line)
        if heading:
            if any(ln.strip() for ln in current):
                sections.append((title, path, current))
            level, title = len(heading.group(1)), heading.group(2).strip()
            trail = [(lv, t) for lv, t in trail if lv < level] + [(level, title)]
            path = tuple(t for _, t in trail)
            current = [line]
        else:
            current.append(line)
    if any(ln.strip() for ln in current):
        sections.append((title, path, current))
    return sections


def split_sections(text: str, *, max_tokens: int = 1000, min_tokens: int = 50,
                   default_title: str = "Document") -> list[Section]:
    """Sections of a markdown document. A section under ``min_tokens`` is merged into the next one
    (or the previous, at the end); one over ``max_tokens`` is cut by tokens on block boundaries.
    A document without headings is one section titled ``default_title``."""
    raw = _raw_sections(text, default_title)
    merged: list[tuple[str, tuple[str, ...], list[str]]] = []
    pending: list[str] = []
    pending_head: tuple[str, tuple[str, ...]] | None = None
    for title, path, lines in raw:
        lines = pending + lines
        head = pending_head or (title, path)
        if count_tokens("\n".join(lines)) < min_tokens:
            pending, pending_head = lines, head
            continue
        merged.append((*head, lines))
        pending, pending_head = [], None
    if pending:
        if merged:
            t, p, lines = merged.pop()
            merged.append((t, p, lines + pending))
        else:
            merged.append((*pending_head, pending))

    sections: list[Section] = []
    for title, path, lines in merged:
        for chunk in pack_units(_blocks(lines), max_tokens, min_tokens=min_tokens):
            sections.append(Section(len(sections), title, path, chunk.text, chunk.n_tokens))
    return sections


_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_INLINE_MARKUP = re.compile(r"`+|\*\*")


def plain_text(markdown: str) -> str:
    """Prose only: code blocks, tables and headings removed; links reduced to their text, code
    ticks and bold markers dropped (underscores stay: they are part of names like batch_size)."""
    units = _blocks(markdown.splitlines())
    prose = [u.text for u in units if not u.atomic and not _HEADING.match(u.text)]
    return _INLINE_MARKUP.sub("", _LINK.sub(r"\1", "\n\n".join(prose)))
