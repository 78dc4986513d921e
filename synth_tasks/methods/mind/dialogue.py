"""Dialogues written as "Speaker: utterance" turns, and their chat-messages form."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A speaker label at the start of a line: "Student 1:", "**Teacher**:", "Professor Smith:". At most
# three words, so a sentence that happens to end in a colon ("Now that we know what it means:")
# is not taken for a speaker.
_TURN = re.compile(r"^\s*(?:\*\*)?([A-Z][A-Za-z0-9.'\-]{0,20}(?: [A-Za-z0-9.'\-]{1,20}){0,2})(?:\*\*)?\s*:"
                   r"\s*(?:\*\*)?\s*(.*)$")


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str


def strip_own_label(speaker: str, text: str) -> str:
    """A turn's text without its own speaker label repeated at its start ("Student 1: Student 1: In
    statistics ..." -> "In statistics ..."), as models write it in JSON turns that already name the
    speaker."""
    label = re.compile(rf"^\s*(?:\*\*)?{re.escape(speaker)}(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)
    while (m := label.match(text)) and m.end() < len(text):
        text = text[m.end():]
    return text


def parse_turns(text: str) -> list[Turn]:
    """Split a dialogue into turns; lines without a label continue the current turn. Text before the
    first label (a preamble such as "Here is the conversation:") is not a turn. A turn that repeats
    its own label ("Teacher: Teacher: ...") keeps one."""
    turns: list[list[str]] = []
    for line in text.splitlines():
        m = _TURN.match(line)
        if m and m.group(1).strip():
            turns.append([m.group(1).strip(), m.group(2).strip()])
        elif turns and line.strip():
            turns[-1][1] = f"{turns[-1][1]}\n{line.strip()}".strip()
    return [Turn(s, strip_own_label(s, t)) for s, t in turns if t]


def format_turns(turns: list[Turn]) -> str:
    return "\n\n".join(f"{t.speaker}: {t.text}" for t in turns)


def to_messages(turns: list[Turn]) -> list[dict]:
    """Chat form: the first speaker is the user, every other speaker the assistant; consecutive turns
    of one role are merged so roles alternate, as chat templates require."""
    if not turns:
        return []
    first = turns[0].speaker
    messages: list[dict] = []
    for t in turns:
        role = "user" if t.speaker == first else "assistant"
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += f"\n\n{t.text}"
        else:
            messages.append({"role": role, "content": t.text})
    return messages
