"""Entity resolution, which GraphRAG lacks: mentions of one entity extracted from different chunks
under different surface forms become one entity, keeping every alias and every source chunk.

A name is either prose ("the Borrow Checker", "Rust's ownership") or a code identifier: a name
with code syntax (`thread::spawn`, `Rc<T>`, `vec!`, `&mut T`, `*const T`, `borrow_mut`, `'static`,
`asyncio.run`), or a plain word its description quotes as code (`` `send` ``: the no-LLM
extractor's description is the sentence that quotes it). The key of a name (``normalize``):

- code: case, sigils (``& &mut * *mut dyn impl``), ``!`` and ``self``/``Self`` kept; generic
  arguments (``Rc<RefCell<i32>>`` is ``Rc``), call parentheses and the crate root (``std::``,
  ``core::``, ``alloc::``, ``crate::``) dropped: in code these change the meaning or do not;
- prose: lower case (one word keeps its case: ``Send`` and ``send`` are two Rust items, and the
  key alone must tell them apart), possessive owner, punctuation, markup and leading articles gone,
  the last word singular.

Two mentions are the same entity when
1. their keys are equal, across types (small models type one thing differently in two chunks; the
   merged type is the most frequent one), or
2. their keys differ only in case ("Ownership", "ownership"), unless both are code: then case is
   meaning (`Send`/`send`, `Counter`/`COUNTER`, `Self`/`self`); where two code names of one
   spelling exist, no prose variant joins either, or
3. both are code and one path is the other's last segments (``mpsc::channel`` of
   ``std::sync::mpsc::channel``, ``Arc`` of ``std::sync::Arc``), when that suffix belongs to one
   path only (``drop`` stays alone beside both ``mem::drop`` and ``Drop::drop``), or
4. one is a possessive-qualified form of the other ("Rust's ownership" of "ownership") of the
   same type, or
5. both are prose, their keys (spaces removed, lower case) are at least ``threshold`` similar
   (rapidfuzz ratio, 0-100), they have the same type, differ by at most one word and neither is
   under 4 characters ("hash map" and "hashmap"; never "String" and "String slice", 70). Code
   names never merge by similarity: `Mutex`/`MutexGuard`, `pin!`/`Pin` are different items.

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
# code syntax: a path (`a::b`, `a.b`), generics, a sigil, a macro's `!`, call parentheses, snake
# case, a lifetime
_CODE_SYNTAX = re.compile(r"::|\w\.\w|[<>&*_]|\w\(|\w!$|^'\w")
_GENERIC_ARGS = re.compile(r"<[^<>]*>")
_CRATE_ROOT = re.compile(r"^(?:::)?(?:std|core|alloc|crate)::(?=\w)")
_SIGIL_SPACE = re.compile(r"^(&|\*)\s+")
_PATH_SEPARATOR = re.compile(r"::|\.")


def singular(word: str) -> str:
    if len(word) <= 3 or word.isdigit() or word.lower().endswith(_NO_SINGULAR):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def has_code_syntax(name: str) -> bool:
    """Whether ``name`` is written as code: a path, generics, a sigil, a macro, call parentheses,
    snake case or a lifetime (`thread::spawn`, `Rc<T>`, `&mut T`, `vec!`, `borrow_mut`, `'static`)."""
    return bool(_CODE_SYNTAX.search(name.strip()))


def quoted_as_code(name: str, description: str) -> bool:
    """Whether ``description`` writes ``name`` as inline code (`` `send` ``, `` `Rc<T>` ``)."""
    return bool(description) and re.search("`" + re.escape(name.strip()) + r"(?:<[^`]*>|\(\))?`", description) is not None


def code_key(name: str) -> str:
    """The comparison key of a code identifier: case, sigils and ``!`` kept; generic arguments,
    call parentheses, the crate root and spacing after a sigil dropped
    (``std::sync::Arc<Mutex<i32>>`` -> ``sync::Arc``, ``& mut T`` -> ``&mut T``)."""
    text = " ".join(unicodedata.normalize("NFKC", name).split()).replace("->", "\x00")
    while _GENERIC_ARGS.search(text):
        text = _GENERIC_ARGS.sub("", text)
    text = text.replace("\x00", "->").strip()
    text = _SIGIL_SPACE.sub(r"\1", text)
    text = _CRATE_ROOT.sub("", text.removesuffix("()"))
    return text or name.strip()


def normalize(name: str, drop_owner: bool = False) -> str:
    """The comparison key of a name. A name with code syntax: ``code_key``. Prose: NFKC, possessive
    owner dropped (when asked), markup and punctuation gone, no leading article, the last word
    singular, lower case except a name of one word, whose case is kept (`Send` and `send` must
    keep apart keys; "Ownership" and "ownership" join by the case rule of ``resolve``)."""
    if has_code_syntax(name):
        return code_key(name)
    text = unicodedata.normalize("NFKC", name).strip().replace("’", "'")
    if drop_owner:
        m = _POSSESSIVE.match(text)
        if m:
            text = m.group("rest")
    text = re.sub(r"['’]s\b", "", text)
    words = _NON_WORD.sub(" ", text).split()
    if len(words) > 1 or len(text.split()) > 1:
        words = [w.lower() for w in words]
    while len(words) > 1 and words[0].lower() in _ARTICLES:
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


class KeyIndex(dict):
    """Normalised mention name -> entity id. A name no mention had, looked up with ``get`` (a
    relation end an LLM cased differently from its entity: "Ownership" for "ownership"), finds the
    entity of the names that differ from it only in case, when they all are one entity."""

    def get(self, key, default=None):
        if key in self:
            return self[key]
        if not hasattr(self, "_by_folded"):
            self._by_folded: dict[str, set[str]] = {}
            for k, v in self.items():
                self._by_folded.setdefault(k.casefold(), set()).add(v)
        ids = self._by_folded.get(str(key).casefold(), set())
        return next(iter(ids)) if len(ids) == 1 else default


def _path_suffix_pairs(code_keys: list[str]) -> list[tuple[str, str]]:
    """(shorter, longer) code keys where the shorter is the longer's last path segments, kept only
    when every longer key ending in it lies on one path (each the suffix of the next)."""
    segments = {k: tuple(_PATH_SEPARATOR.split(k)) for k in code_keys}
    pairs = []
    for short in code_keys:
        s = segments[short]
        if not all(s):
            continue
        longer = sorted((k for k in code_keys if len(segments[k]) > len(s) and segments[k][-len(s):] == s),
                        key=lambda k: (len(segments[k]), k))
        if not longer:
            continue
        chain = all(segments[b][-len(segments[a]):] == segments[a] for a, b in zip(longer, longer[1:]))
        if chain:
            pairs += [(short, k) for k in longer]
    return pairs


def resolve(mentions: list[Mention], threshold: float = 90.0) -> tuple[list[ResolvedEntity], dict[str, str], Counter]:
    """(the resolved entities, a map from every normalised mention name to its entity id, how many
    merges each rule made). Deterministic: the same mentions in any order give the same entities."""
    from rapidfuzz import fuzz

    mentions = sorted(mentions, key=lambda m: (m.name, m.type, m.chunk_id, m.description))
    # one node per distinct (key, type); a key is code when any of its mentions is
    keys: list[tuple[str, str]] = []
    index: dict[tuple[str, str], int] = {}
    code: set[str] = set()
    for m in mentions:
        k = (normalize(m.name), m.type)
        if not k[0]:
            continue
        if k not in index:
            index[k] = len(keys)
            keys.append(k)
        if has_code_syntax(m.name) or quoted_as_code(m.name, m.description):
            code.add(k[0])
    uf = _UnionFind(len(keys))
    rules: Counter = Counter()

    def join(a: int, b: int, rule: str) -> None:
        if uf.union(a, b):
            rules[rule] += 1

    by_name: dict[str, list[int]] = {}
    for i, (name, _) in enumerate(keys):
        by_name.setdefault(name, []).append(i)
    for ids in by_name.values():
        for j in ids[1:]:
            join(ids[0], j, "same_name_across_types")
    # names that differ only in case: one entity unless case is meaning (two of them are code)
    by_folded: dict[str, list[str]] = {}
    for name in sorted(by_name):
        by_folded.setdefault(name.casefold(), []).append(name)
    for names in by_folded.values():
        if len(names) > 1 and sum(n in code for n in names) < 2:
            for n in names[1:]:
                join(by_name[names[0]][0], by_name[n][0], "same_name_ignoring_case")
    # a code path and its last segments
    for short, long_ in _path_suffix_pairs(sorted(code)):
        join(by_name[short][0], by_name[long_][0], "code_path_suffix")
    # possessive-qualified forms join the unqualified name of the same type
    for m in mentions:
        owner_dropped = normalize(m.name, drop_owner=True)
        k = (normalize(m.name), m.type)
        if owner_dropped != k[0] and (owner_dropped, m.type) in index and k in index:
            join(index[k], index[(owner_dropped, m.type)], "possessive")
    # fuzzy within one type, prose only
    by_type: dict[str, list[int]] = {}
    for i, (name, t) in enumerate(keys):
        if name not in code:
            by_type.setdefault(t, []).append(i)
    for ids in by_type.values():
        names = [keys[i][0].lower() for i in ids]
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                na, nb = names[a], names[b]
                if abs(len(na.split()) - len(nb.split())) > 1 or min(len(na), len(nb)) < 4:
                    continue  # fuzzy only between names of about as many words, never tiny ones
                if fuzz.ratio(na.replace(" ", ""), nb.replace(" ", "")) >= threshold:
                    join(ids[a], ids[b], "fuzzy")
    groups: dict[int, list[Mention]] = {}
    for m in mentions:
        k = (normalize(m.name), m.type)
        if k in index:
            groups.setdefault(uf.find(index[k]), []).append(m)
    entities: list[ResolvedEntity] = []
    key_to_id = KeyIndex()
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
