"""The instruct method's prompts (under ``include/prompts/instruct/``) and the parsing of the
model's replies."""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import BaseModel

from synth_tasks.methods.instruct.config import EvolOperation
from synth_tasks.prompts import include_dir, load_prompt, render


def _messages(prompt_name: str, **values: str) -> list[dict]:
    return [{"role": "user", "content": render(load_prompt(f"instruct/{prompt_name}"), **values)}]


def self_instruct_messages(examples: list[str], domain: str) -> list[dict]:
    numbered = "\n".join(f"{i}. {' '.join(text.split())}" for i, text in enumerate(examples, start=1))
    return _messages("self_instruct", examples=numbered, domain=domain)


def evol_messages(operation: str, instruction: str) -> list[dict]:
    if operation == EvolOperation.IN_BREADTH:
        return _messages("evol_in_breadth", instruction=instruction)
    return _messages("evol_in_depth", method=evol_methods()[operation], instruction=instruction)


@lru_cache(maxsize=1)
def evol_methods() -> dict[str, str]:
    """The in-depth method sentences, read once (like the prompts: load_prompt caches too)."""
    import yaml

    methods = yaml.safe_load((include_dir() / "prompts" / "instruct" / "evol_methods.yaml").read_text("utf-8"))
    missing = {str(op) for op in EvolOperation} - {str(EvolOperation.IN_BREADTH)} - set(methods)
    if missing:
        raise KeyError(f"evol_methods.yaml lacks {sorted(missing)}")
    return methods


def equality_messages(first: str, second: str) -> list[dict]:
    return _messages("equality_check", first=first, second=second)


# The structured answer to the equality check (Evol-Instruct's "no information gain" rule). No
# docstring: it would become the schema's description, which is sent with the request and so is
# part of the response cache key.
class EqualityJudgement(BaseModel):
    equal: bool


def response_messages(instruction: str) -> list[dict]:
    return [{"role": "user", "content": instruction}]


_LABEL = re.compile(r"^(?:\*\*)?(?:(?:new\s+)?(?:task|instruction|question|prompt)\s*\d*\s*[:.)-]|\d+\s*[:.)])\s*(?:\*\*)?\s*",
                    re.IGNORECASE)
_NEXT_ITEM = re.compile(r"^\s*(?:task\s*)?\d+\s*[:.)]", re.IGNORECASE)
_QUOTES = ('"', "'", "\u201c", "\u201d")


# The header the Evol-Instruct prompts end with, as a model repeats it before its instruction
# ("**Created Prompt:**", "#Rewritten Prompt#:"), often after a note on what it changed (the quality
# model wrote "**Prompt Creator's Note:** ..." first, then its prompt).
_HEADER = re.compile(r"^[#*\s]*(?:given|created|rewritten|new|evolved)\s+(?:prompt|instruction)[#*\s]*:[#*\s]*",
                     re.IGNORECASE | re.MULTILINE)


def parse_instruction(text: str) -> str:
    """The instruction in a model's reply: what follows its last "Created Prompt:"-style header if it
    wrote one, then the first paragraph, up to a following numbered item, without a leading
    "Task 9:"/"9." label or wrapping quotes."""
    headers = list(_HEADER.finditer(text))
    if headers:
        text = text[headers[-1].end():]
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    lines: list[str] = []
    for i, line in enumerate(paragraph.splitlines()):
        if i and _NEXT_ITEM.match(line):
            break
        lines.append(line.strip())
    out = _LABEL.sub("", " ".join(lines).strip(), count=1).strip()
    if len(out) >= 2 and out[0] in _QUOTES and out[-1] in _QUOTES:
        out = out[1:-1].strip()
    return out
