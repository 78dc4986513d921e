"""What the LLM answers to an extraction prompt, read tolerantly.

Two formats: JSON (structured output, where the endpoint constrains decoding to the schema) and
GraphRAG's delimited tuples (``("entity"<|>NAME<|>TYPE<|>DESCRIPTION)##("relationship"<|>SOURCE
<|>TARGET<|>DESCRIPTION<|>STRENGTH)<|COMPLETE|>``) for endpoints without it. Small models break
both; what can be repaired is repaired:

- prose before, between or after the records is skipped;
- a missing record separator (``)(`` or a record per line) and garbled field delimiters
  (``<|``, ``|>``, ``|``, ``<||>``) are read as the real ones;
- a JSON answer wrapped in a code fence or in prose is taken from its outermost braces, raw line
  breaks inside its strings are accepted, and one cut off by the token limit is closed after its
  last complete entity or relation;
- a last record cut off by the token limit is kept when what it has is usable (an entity with a
  name and a type, a relation with both ends), else dropped and counted;
- items with a missing name, a strength outside 1-10 (clamped) or an unknown type ("other") are
  repaired where they can be and skipped where not, each counted.

Nothing usable at all raises ``ExtractionParseError`` carrying the raw text, so the chunk fails with
it in the ledger. ``ground_in_chunk`` then drops entities whose names the chunk does not contain
(copied from the prompt's example, invented)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

TUPLE_DELIMITER = "<|>"
RECORD_DELIMITER = "##"
COMPLETION_DELIMITER = "<|COMPLETE|>"
OTHER_TYPE = "other"
MAX_NAME_CHARS = 120


class ExtractionParseError(ValueError):
    def __init__(self, message: str, raw: str):
        super().__init__(message)
        self.raw = raw


@dataclass
class Extraction:
    entities: list[dict] = field(default_factory=list)  # {name, type, description}
    relations: list[dict] = field(default_factory=list)  # {source, target, description, strength}
    repairs: Counter = field(default_factory=Counter)  # what was repaired or skipped, by kind

    def merge(self, other: "Extraction") -> int:
        """Add ``other``'s items that are new (by name; by both ends for relations); return how many."""
        names = {e["name"].lower() for e in self.entities}
        pairs = {(r["source"].lower(), r["target"].lower()) for r in self.relations}
        added = 0
        for e in other.entities:
            if e["name"].lower() not in names:
                names.add(e["name"].lower())
                self.entities.append(e)
                added += 1
        for r in other.relations:
            if (r["source"].lower(), r["target"].lower()) not in pairs:
                pairs.add((r["source"].lower(), r["target"].lower()))
                self.relations.append(r)
                added += 1
        self.repairs.update(other.repairs)
        return added


def clean_name(name: str) -> str:
    return " ".join(str(name).strip().strip("\"'`*").split())[:MAX_NAME_CHARS]


def _entity(name, etype, description, types: tuple[str, ...], repairs: Counter) -> dict | None:
    name = clean_name(name or "")
    if not name:
        repairs["entity_without_name"] += 1
        return None
    etype = clean_name(etype or "").lower().replace(" ", "_")
    if etype not in types:
        repairs["unknown_type"] += 1
        etype = OTHER_TYPE
    return {"name": name, "type": etype, "description": " ".join(str(description or "").split())}


def _strength(value, repairs: Counter) -> int:
    try:
        s = int(round(float(str(value).strip().strip("\"'()"))))
    except (TypeError, ValueError, OverflowError):  # OverflowError: "inf", "Infinity"
        repairs["strength_missing"] += 1
        return 1
    if not 1 <= s <= 10:
        repairs["strength_clamped"] += 1
    return min(max(s, 1), 10)


def _relation(source, target, description, strength, repairs: Counter) -> dict | None:
    source, target = clean_name(source or ""), clean_name(target or "")
    if not source or not target:
        repairs["relation_without_ends"] += 1
        return None
    if source.lower() == target.lower():
        repairs["self_relation"] += 1
        return None
    return {"source": source, "target": target, "description": " ".join(str(description or "").split()),
            "strength": _strength(strength, repairs)}


# ---------------------------------------------------------------------------------------------
# tuples
# ---------------------------------------------------------------------------------------------
_DELIM_VARIANTS = re.compile(r"<\s*\|\s*>|<\|\|>|<\||\|>|\|")
_RECORD_START = re.compile(r"\(?\s*[\"']?(entity|relationship|relation)[\"']?\s*(?=<|\|)", re.IGNORECASE)


def parse_tuples(text: str, types: tuple[str, ...]) -> Extraction:
    """GraphRAG's delimited records, repaired where they can be (see the module's docstring)."""
    raw = text
    out = Extraction()
    body = text.split(COMPLETION_DELIMITER, 1)[0]
    truncated = COMPLETION_DELIMITER not in text
    starts = [m.start() for m in _RECORD_START.finditer(body)]
    if not starts:
        raise ExtractionParseError("unparseable_extraction: no (\"entity\"...) or (\"relationship\"...) record "
                                   f"in the answer: {raw.strip()[:120]!r}", raw)
    if body[: starts[0]].strip():
        out.repairs["prose_skipped"] += 1
    pieces = [body[a:b] for a, b in zip(starts, starts[1:] + [len(body)])]
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        # the record ends at its closing parenthesis; what follows (## or prose) is not part of it
        stripped = piece.strip()
        closed = ")" in stripped
        inner = stripped.lstrip("(").strip()
        if closed:
            end = inner.rfind(")")
            tail = inner[end + 1:].strip().strip("#").strip()
            if tail:
                out.repairs["prose_skipped"] += 1
            inner = inner[:end]
        elif not last:
            out.repairs["separator_repaired"] += 1
        inner = inner.replace("##", " ").strip()
        fields = [f.strip().strip("\"'").strip() for f in _DELIM_VARIANTS.split(inner)]
        if inner.count(TUPLE_DELIMITER) < len(fields) - 1:
            out.repairs["delimiter_repaired"] += 1
        kind = fields[0].lower()
        cut = last and truncated and not closed
        if kind == "entity":
            if len(fields) < 3 or (cut and len(fields) < 3):
                out.repairs["truncated_record_dropped" if cut else "short_record_skipped"] += 1
                continue
            if len(fields) < 4:
                out.repairs["truncated_record_repaired" if cut else "description_missing"] += 1
            e = _entity(fields[1], fields[2], " ".join(fields[3:]) if len(fields) > 3 else "", types, out.repairs)
            if e:
                out.entities.append(e)
        else:
            if len(fields) < 4:
                out.repairs["truncated_record_dropped" if cut else "short_record_skipped"] += 1
                continue
            if len(fields) < 5:
                out.repairs["truncated_record_repaired" if cut else "strength_missing_field"] += 1
            strength = fields[-1] if len(fields) >= 5 else None
            description = " ".join(fields[3:-1]) if len(fields) >= 5 else fields[3]
            r = _relation(fields[1], fields[2], description, strength, out.repairs)
            if r:
                out.relations.append(r)
    if not out.entities and not out.relations:
        raise ExtractionParseError(f"unparseable_extraction: no usable record ({dict(out.repairs)}): "
                                   f"{raw.strip()[:120]!r}", raw)
    return out


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------
def _close_truncated(text: str) -> str | None:
    """JSON cut off mid-way, closed after its last complete value: walk it, remember the last point
    where an object inside an array ended, and close the open brackets from there."""
    stack: list[str] = []
    in_string = escape = False
    best: tuple[int, list[str]] | None = None
    for i, ch in enumerate(text):
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack:
                return None
            stack.pop()
            if stack and stack[-1] == "]":  # an item of an array ended here
                best = (i + 1, list(stack))
    if best is None:
        return None
    end, open_ = best
    return text[:end] + "".join(reversed(open_))


def parse_json(text: str, types: tuple[str, ...]) -> Extraction:
    """A JSON object {"entities": [...], "relationships": [...]} (also "relations"), from a code
    fence or prose, closed after its last complete item when it was cut off."""
    raw = text
    out = Extraction()
    start = text.find("{")
    if start < 0:
        raise ExtractionParseError(f"unparseable_extraction: no JSON object in the answer: {raw.strip()[:120]!r}", raw)
    if text[:start].strip().strip("`").strip().removeprefix("json").strip():
        out.repairs["prose_skipped"] += 1
    body = text[start:]
    obj = None
    end = body.rfind("}")
    if end >= 0:
        try:
            obj = json.loads(body[: end + 1], strict=False)  # raw newlines inside strings pass
            if body[end + 1:].strip().strip("`").strip():
                out.repairs["prose_skipped"] += 1
        except json.JSONDecodeError:
            obj = None
    if obj is None:
        closed = _close_truncated(body)
        try:
            obj = json.loads(closed, strict=False) if closed else None
        except json.JSONDecodeError:
            obj = None
        if obj is None:
            raise ExtractionParseError(f"unparseable_extraction: invalid JSON: {raw.strip()[:120]!r}", raw)
        out.repairs["truncated_json_closed"] += 1
    if not isinstance(obj, dict):
        raise ExtractionParseError(f"unparseable_extraction: JSON is not an object: {raw.strip()[:120]!r}", raw)
    def items(*keys) -> list:
        value = next((obj[k] for k in keys if obj.get(k)), [])
        if not isinstance(value, list):  # {"entities": 5}: nothing usable under that key
            out.repairs["bad_list_skipped"] += 1
            return []
        return value

    for item in items("entities"):
        if not isinstance(item, dict):
            out.repairs["bad_item_skipped"] += 1
            continue
        e = _entity(item.get("name") or item.get("title"), item.get("type"), item.get("description"), types,
                    out.repairs)
        if e:
            out.entities.append(e)
    for item in items("relationships", "relations"):
        if not isinstance(item, dict):
            out.repairs["bad_item_skipped"] += 1
            continue
        r = _relation(item.get("source"), item.get("target"), item.get("description"), item.get("strength"),
                      out.repairs)
        if r:
            out.relations.append(r)
    if not out.entities and not out.relations:
        raise ExtractionParseError(f"unparseable_extraction: no usable entity or relation ({dict(out.repairs)}): "
                                   f"{raw.strip()[:120]!r}", raw)
    return out


def parse_extraction(text: str, types: tuple[str, ...], fmt: str) -> Extraction:
    """``fmt`` "json" or "tuples"; an answer in the other format is read too (small models mix them)."""
    first, second = (parse_json, parse_tuples) if fmt == "json" else (parse_tuples, parse_json)
    try:
        return first(text, types)
    except ExtractionParseError as exc:
        try:
            found = second(text, types)
        except ExtractionParseError:
            raise exc from None
        found.repairs["other_format"] += 1
        return found


def link_relations(ex: Extraction) -> Extraction:
    """Relations name their ends as the entities were named; an end no entity of the chunk has
    becomes an entity of type "other" with no description (as GraphRAG does), counted."""
    names = {e["name"].lower() for e in ex.entities}
    for r in ex.relations:
        for end in (r["source"], r["target"]):
            if end.lower() not in names:
                names.add(end.lower())
                ex.entities.append({"name": end, "type": OTHER_TYPE, "description": ""})
                ex.repairs["relation_end_added_as_entity"] += 1
    return ex


def ground_in_chunk(ex: Extraction, text: str, threshold: float) -> Extraction:
    """Keep only the entities whose name occurs in the chunk (rapidfuzz partial ratio on normalised
    text, the shared grounding score, at least ``threshold``), and the relations between kept ones.
    A small model copies the prompt's example or invents names; those are dropped, counted."""
    from synth_tasks.quality.grounding import evidence_score

    if threshold <= 0:
        return ex
    kept, dropped = [], set()
    for e in ex.entities:
        if evidence_score(e["name"], text) >= threshold:
            kept.append(e)
        else:
            dropped.add(e["name"].lower())
            ex.repairs["entity_not_in_chunk"] += 1
    relations = []
    for r in ex.relations:
        if r["source"].lower() in dropped or r["target"].lower() in dropped:
            ex.repairs["relation_end_not_in_chunk"] += 1
        else:
            relations.append(r)
    ex.entities, ex.relations = kept, relations
    return ex
