"""Entity resolution, which GraphRAG lacks: mentions of one entity extracted from different chunks
under different surface forms become one entity, keeping every alias and every source chunk.

Two mentions are the same entity when
1. their normalised names are equal (case, punctuation, markup, leading articles, plural of the
   last word and a possessive owner are removed: "The Vectors", "vector" and "`Vec`tor" agree), across
   types (small models type one thing differently in two chunks; the merged type is the most
   frequent one), or
2. one is a possessive-qualified form of the other ("Rust's ownership" of "ownership") of the same
   type, or
3. their normalised names, spaces removed, are at least ``threshold`` similar (rapidfuzz ratio,
   0-100), they have the same type, differ by at most one word and neither is under 4 characters
   ("hash map" and "hashmap"; never "String" and "String slice", 70).

Merging is transitive (union-find)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

_ARTICLES = {"the", "a", "an"}
_POSSESSIVE = re.compile(r"^(?P<owner>.+?)['’]s\s+(?P<rest>.+)$")
_NON_WORD = re.compile(r"[^\w\s]+")
_NO_SINGULAR = ("ss", "us", "is", "os", "ys")


def singular(word: str) -> str:
    if len(word) <= 3 or word.isdigit() or word.endswith(_NO_SINGULAR):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def normalize(name: str, drop_owner: bool = False) -> str:
    """The comparison key of a name: NFKC, lower case, possessive owner dropped (when asked), markup
    and punctuation gone, no leading article, the last word singular."""
    text = unicodedata.normalize("NFKC", name).strip().lower().replace("’", "'")
    if drop_owner:
        m = _POSSESSIVE.match(text)
        if m:
            text = m.group("rest")
    text = re.sub(r"['’]s\b", "", text)
    words = _NON_WORD.sub(" ", text).split()
    while len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    if words:
        words[-1] = singular(words[-1])
    return " ".join(words)


def stable_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


@dataclass
class Mention:
    name: str
    type: str
    description: str
    chunk_id: str


@dataclass
class ResolvedEntity:
    id: str
    title: str
    type: str
    aliases: list[str]
    descriptions: list[str]
    text_unit_ids: list[str]
    mention_count: int = 0
    merged_by: list[str] = field(default_factory=list)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True


def resolve(mentions: list[Mention], threshold: float = 90.0) -> tuple[list[ResolvedEntity], dict[str, str], Counter]:
    """(the resolved entities, a map from every normalised mention name to its entity id, how many
    merges each rule made). Deterministic: the same mentions in any order give the same entities."""
    from rapidfuzz import fuzz

    mentions = sorted(mentions, key=lambda m: (m.name, m.type, m.chunk_id, m.description))
    # one node per distinct (normalised name, type); exact-name rule first joins types
    keys: list[tuple[str, str]] = []
    index: dict[tuple[str, str], int] = {}
    for m in mentions:
        k = (normalize(m.name), m.type)
        if k[0] and k not in index:
            index[k] = len(keys)
            keys.append(k)
    uf = _UnionFind(len(keys))
    rules: Counter = Counter()
    by_name: dict[str, list[int]] = {}
    for i, (name, _) in enumerate(keys):
        by_name.setdefault(name, []).append(i)
    for ids in by_name.values():
        for j in ids[1:]:
            if uf.union(ids[0], j):
                rules["same_name_across_types"] += 1
    # possessive-qualified forms join the unqualified name of the same type
    for m in mentions:
        owner_dropped = normalize(m.name, drop_owner=True)
        k = (normalize(m.name), m.type)
        if owner_dropped != k[0] and (owner_dropped, m.type) in index and k in index:
            if uf.union(index[k], index[(owner_dropped, m.type)]):
                rules["possessive"] += 1
    # fuzzy within one type
    by_type: dict[str, list[int]] = {}
    for i, (_, t) in enumerate(keys):
        by_type.setdefault(t, []).append(i)
    for ids in by_type.values():
        names = [keys[i][0] for i in ids]
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                na, nb = names[a], names[b]
                if abs(len(na.split()) - len(nb.split())) > 1 or min(len(na), len(nb)) < 4:
                    continue  # fuzzy only between names of about as many words, never tiny ones
                if fuzz.ratio(na.replace(" ", ""), nb.replace(" ", "")) >= threshold and uf.union(ids[a], ids[b]):
                    rules["fuzzy"] += 1
    groups: dict[int, list[Mention]] = {}
    for m in mentions:
        k = (normalize(m.name), m.type)
        if k in index:
            groups.setdefault(uf.find(index[k]), []).append(m)
    entities: list[ResolvedEntity] = []
    key_to_id: dict[str, str] = {}
    for root, group in groups.items():
        names = Counter(m.name for m in group)
        # the title: the most frequent surface form, then the shortest, then alphabetical
        title = sorted(names, key=lambda n: (-names[n], len(n), n))[0]
        types = Counter(m.type for m in group)
        etype = sorted(types, key=lambda t: (-types[t], t == "other", t))[0]
        eid = stable_id(normalize(title), etype)
        descriptions = list(dict.fromkeys(m.description for m in sorted(group, key=lambda m: m.chunk_id)
                                          if m.description))  # in chunk order
        entities.append(ResolvedEntity(eid, title, etype, sorted(set(names) - {title}), descriptions,
                                       sorted({m.chunk_id for m in group}), len(group)))
        for m in group:
            key_to_id[normalize(m.name)] = eid
    entities.sort(key=lambda e: (e.title.lower(), e.id))
    return entities, key_to_id, rules


def pairwise_scores(predicted: dict[str, str], gold: dict[str, str]) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering (mention -> cluster) against a gold one."""
    items = sorted(gold)
    tp = fp = fn = 0
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            same_p = predicted[a] == predicted[b]
            same_g = gold[a] == gold[b]
            tp += same_p and same_g
            fp += same_p and not same_g
            fn += same_g and not same_p
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall
