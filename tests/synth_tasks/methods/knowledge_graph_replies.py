"""Deterministic replies of an OpenAI-compatible fake (tests/fault_server.py's ``responder``) for the
knowledge-graph method: each answer depends only on the request.

- Extraction (JSON or tuples): the method's own co-occurrence extraction of the chunk in the prompt,
  in the format the prompt asks for; gleaning rounds answer nothing new.
- Summaries: one sentence.
- Community reports: a finding per strongest relationship, citing its ids (and one unknown id).
- Path question pieces (one request per hop): a clue naming the hop's first entity, and for the
  last hop a question naming its first entity.
- Global questions: rest on the first two entities of the report."""

from __future__ import annotations

import json
import re

from synth_tasks.methods.knowledge_graph.cooccurrence import extract
from synth_tasks.methods.knowledge_graph.parse import COMPLETION_DELIMITER

TYPES = ("concept", "technology", "organization", "person", "geo", "event")


def _chunk_text(prompt: str) -> str:
    m = re.search(r"Text \(chunk [^)]*\):\n(.*?)(?:\n\nReply with one JSON object|\nOutput:\s*$)", prompt, re.DOTALL)
    return m.group(1) if m else ""


def extraction_json(text: str) -> str:
    ex = extract(text, TYPES, every_pair=True)
    ents = [e | {"description": e["description"][:280]} for e in ex.entities[:20]]
    names = {e["name"] for e in ents}
    rels = [r | {"description": r["description"][:280]} for r in ex.relations
            if r["source"] in names and r["target"] in names][:20]
    return json.dumps({"entities": ents, "relationships": rels})


def extraction_tuples(text: str) -> str:
    ex = extract(text, TYPES, every_pair=True)
    records = [f'("entity"<|>{e["name"]}<|>{e["type"]}<|>{e["description"][:200]})' for e in ex.entities[:20]]
    records += [f'("relationship"<|>{r["source"]}<|>{r["target"]}<|>{r["description"][:200]}<|>{r["strength"]})'
                for r in ex.relations[:20]]
    return "Here are the records:\n" + "##\n".join(records) + f"\n{COMPLETION_DELIMITER}"


def report(prompt: str) -> str:
    ents = re.findall(r"^(e\d+), ([^,\n]+), ", prompt, re.MULTILINE)
    rels = re.findall(r"^(r\d+), ([^,\n]+), ([^,\n]+), ", prompt, re.MULTILINE)
    by_title = {t: ref for ref, t in ents}
    findings = [{"summary": f"{s} works with {t}", "explanation": f"The documents relate {s} and {t}.",
                 "entity_ids": [by_title[x] for x in (s, t) if x in by_title] + ["e999"],
                 "relationship_ids": [ref]} for ref, s, t in rels[:3]]
    if not findings:
        findings = [{"summary": "A group", "explanation": "Related entities.", "entity_ids": [ents[0][0]],
                     "relationship_ids": []}]
    return json.dumps({"title": "About " + ", ".join(t for _, t in ents[:2]), "summary": "These entities relate.",
                       "rating": 5, "rating_explanation": "Central to the text.", "findings": findings})


def path_clue(prompt: str) -> str:
    """Names the hop's first entity, not its second."""
    source = re.search(r'in a few words without naming it, using "(.+?)" and the fact\.', prompt).group(1)
    return f"what {source} relates to"


def path_question(prompt: str) -> str:
    """Names the last hop's first entity, not its answer."""
    source = re.search(r'Write one question that contains "(.+?)" and whose answer', prompt).group(1)
    return f"Which entity does {source} lead to?"


def global_question(prompt: str) -> str:
    refs = re.findall(r"^(e\d+), ", prompt, re.MULTILINE)
    return json.dumps({"question": "What are the main themes of these documents and how do they relate?",
                       "answer": "They describe related concepts and how they are used together.",
                       "supporting_entity_ids": refs[:2]})


def reply(body: dict) -> str:
    messages = body["messages"]
    prompt = messages[0]["content"]
    last = messages[-1]["content"]
    if last.startswith("MANY entities"):
        return extraction_json(_chunk_text(prompt)) if "JSON object" in prompt else COMPLETION_DELIMITER
    if "Your reply was not valid JSON" in last:
        return messages[-2]["content"]
    if prompt.startswith("-Goal-"):
        return extraction_tuples(_chunk_text(prompt))
    if prompt.startswith("Read the text below"):
        return extraction_json(_chunk_text(prompt))
    if prompt.startswith("Several descriptions"):
        return "One merged description of the entity."
    if prompt.startswith("You write a report"):
        return report(prompt)
    if prompt.startswith("Fact:") and "Describe" in prompt:
        return path_clue(prompt)
    if prompt.startswith("Fact:"):
        return path_question(prompt)
    if prompt.startswith("Below is a report"):
        return global_question(prompt)
    return "I cannot help with that."
