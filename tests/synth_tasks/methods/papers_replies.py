"""A scripted "model" for the papers method: reads the passages out of a QA prompt and answers with a
pair that quotes them word for word, citing their real block ids and pages (a numeric question reads
a number from the table). For FaultServer.responder, so tests of the DAG know what must survive
grounding."""

from __future__ import annotations

import json
import re

_PASSAGE = re.compile(r"\[(b\d{4}) \| page (\d+) \| ([a-z ]+)\]\n(.*?)(?=\n\n\[b\d{4} \||\n\nSection \"|\n\nWrite one|\Z)",
                      re.DOTALL)


def passages(prompt: str) -> list[dict]:
    return [{"block_id": m[1], "page": int(m[2]), "kind": m[3], "text": m[4].strip()} for m in _PASSAGE.finditer(prompt)]


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]


def grounded_reply(body: dict) -> str:
    """The JSON answer to one QA request, quoting the prompt's own passages."""
    prompt = body["messages"][-1]["content"]
    if not isinstance(prompt, str):
        return "A figure."  # an image request (describe)
    found = passages(prompt)
    tables = [p for p in found if p["kind"] == "table" and "|" in p["text"]]
    if "number read from one cell" in prompt and tables:
        table = tables[0]
        rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table["text"].splitlines()
                if line.startswith("|") and "---" not in line]
        row = next(r for r in rows[1:] if any(re.fullmatch(r"[\d.,]+", c) for c in r))
        number = next(c for c in row if re.fullmatch(r"[\d.,]+", c))
        pair = {"question": f"What value does the table give for {row[0]} in column {rows[0][row.index(number)]}?",
                "answer": f"It is {number}.",
                "citations": [{"page": table["page"], "block_id": table["block_id"], "quote": " ".join(row)}]}
    else:
        prose = [p for p in found if p["kind"] == "paragraph"] or found
        chosen = [prose[0]]
        if "BOTH sections" in prompt:
            second = prompt.split('\n\nSection "', 2)[-1]
            chosen.append((passages(second) or found)[0])
        quotes = [_first_sentence(p["text"]) for p in chosen]
        kind = next((k for k in ("methodological", "comparison", "limitation", "BOTH") if k in prompt), "factual")
        pair = {"question": f"In the {kind} sense, what does the paper state about: {quotes[0][:60]}?",
                "answer": " ".join(quotes),
                "citations": [{"page": p["page"], "block_id": p["block_id"], "quote": q} for p, q in zip(chosen, quotes)]}
    pair["reasoning_steps"] = ["Find the cited passage.", "Read the answer from it."]
    return json.dumps(pair)
