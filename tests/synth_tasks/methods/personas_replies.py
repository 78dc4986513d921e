"""Deterministic replies of an OpenAI-compatible fake (tests/fault_server.py's ``responder``) for
the personas method: each answer depends only on the request, so the tests can count exactly.

- Text-to-Persona: three personas per text, one of them the same for every text (so the hub's
  MinHash pass has exact duplicates to find).
- Persona-to-Persona: two relations per persona, derived from it.
- Queries: BM25 queries for the shipped markdown corpus.
- Generation: the template's prefix, a body that names the persona, and an evidence line quoting
  the first source passage in the prompt."""

from __future__ import annotations

import hashlib
import json
import re

# Distinct professions and settings, so distinct personas stay far apart in MiniLM space too.
JOBS = ["beekeeper in rural Portugal", "submarine sonar operator", "pediatric nurse in Lagos",
        "medieval manuscript conservator", "esports team manager", "glacier field geologist",
        "bakery owner in Montreal", "commercial airline dispatcher", "violin maker in Cremona",
        "urban beekeeping regulator", "tax auditor for small farms", "wildfire lookout volunteer",
        "sumo wrestling referee", "deep-sea cable engineer", "kindergarten music teacher",
        "forensic accountant", "orchid greenhouse technician", "mountain rescue pilot",
        "competitive crossword setter", "hospital laundry supervisor", "vintage motorcycle restorer",
        "ferry captain in Norway", "sign language interpreter", "cacao farmer in Ghana",
        "railway signal maintainer", "museum night guard", "coral reef surveyor", "hotel sommelier",
        "chess coach for prisoners", "wind turbine technician", "falconer at an airport",
        "court stenographer", "ice road trucker", "perfume evaluator", "puppet theatre director",
        "lighthouse keeper", "bridge inspector", "tea taster in Darjeeling", "rodeo clown",
        "satellite imagery analyst"]
SHARED = "A high school teacher preparing a probability lesson for a class of seventeen year olds."
RELATIONS = ["colleague", "client"]
ANSWER = "Start with the numbers you know, then add the weekly growth step by step."


def _pick(text: str, salt: str) -> str:
    return JOBS[int(hashlib.sha256(f"{salt}:{text}".encode()).hexdigest(), 16) % len(JOBS)]


def _title(text: str) -> str:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    return first.strip("# ").strip()


def _quote(prompt: str) -> str:
    m = re.search(r"\[1\] (.+)", prompt)
    return " ".join(m.group(1).split()[:8]) if m else ""


def _with_evidence(body: str, prompt: str) -> str:
    quote = _quote(prompt)
    return f'{body}\nEvidence: "{quote}"' if quote else body


def reply(body: dict) -> str:
    messages = body["messages"]
    last = messages[-1]["content"]
    if messages[0]["role"] == "system" and "helpful assistant" in messages[0]["content"]:
        turn = len(messages) // 2 + 1
        return _with_evidence(f"Here is what I would suggest for turn {turn}.", messages[0]["content"])
    if "HelpSteer2 attributes" in last:  # the shared judge: problems score higher than prompts
        high = "boxes a day" in last  # the fake's math problems
        return json.dumps({"helpfulness": 4 if high else 1, "correctness": 4 if high else 1, "coherence": 3,
                           "complexity": 2, "verbosity": 2})
    if "Who is likely to read" in last:
        text = last.split("Here is a text:", 1)[1].split("Who is likely to read", 1)[0].strip()
        title = _title(text)
        return json.dumps({"personas": [
            {"description": f"A {_pick(title, 'a')} who reads about {title} on night shifts.", "domain": "work",
             "expertise": "novice"},
            {"description": f"A retired {_pick(title, 'b')} writing a memoir that touches {title}.",
             "domain": "writing", "expertise": "expert"},
            {"description": SHARED, "domain": "education", "expertise": "intermediate"}]})
    if "close relationship" in last:
        persona = last.split("Persona:", 1)[1].split("\n", 1)[0].strip()
        return json.dumps({"personas": [
            {"description": f"The {rel} of one {persona[2:40].strip()}: a {_pick(persona, rel)} they meet weekly.",
             "domain": "work", "expertise": "intermediate", "relation": rel} for rel in RELATIONS]})
    if "search queries" in last:
        return json.dumps({"topics": ["vectors"], "queries": ["comments in code", "if let control flow"]})
    if "Create a challenging math problem" in last:
        return _with_evidence(f"Math problem: {_persona(last)} tracks 17 boxes a day; how many in 23 days if the rate "
                              "grows by 3 each day?", last)
    if "Guess one request" in last:
        return _with_evidence(f"User prompt: As {_persona(last)}, how do I plan my week?", last)
    if "knowledge-rich article" in last:
        return _with_evidence(f"Title: Notes from {_persona(last)}\nA short article on what the job teaches.", last)
    if "talking to an AI assistant" in last:
        follow = "The conversation is empty." not in last
        return f"User prompt: {'And then what' if follow else 'What should I do first'}, as {_persona(last)}?"
    if len(messages) == 1 and "response_format" not in body:  # an assistant answering a generated prompt
        return ANSWER
    return "unexpected request"


def _persona(prompt: str) -> str:
    """The persona's first five words: enough to tie the output to it, not a restatement."""
    return " ".join(prompt.strip().split("\n", 1)[0].split()[:5]).lower()
