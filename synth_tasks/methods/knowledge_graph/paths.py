"""Multi-hop paths through the graph, the relation types they follow, and the rules a question
written along one must pass.

**Relation types.** A hop's type is the predicate of a sentence of its relation's description:
the words between the two entities' names ("Ownership is enforced by the borrow checker" gives
"is enforced by" from ownership to the borrow checker, and "is enforced by (reversed)" the other
way), lower-cased, articles at its ends dropped, at most ``MAX_PREDICATE_WORDS`` words. A
relation with no such sentence (names not both in one sentence, only "and" or a comma between them,
a long clause) has the generic type ``related to``, and a hop of that type follows any relation.

**Uniqueness.** A path's answer is the only entity reachable from its start by following, hop
after hop, only relations of the path's types (``reachable``). A path with several such entities
would give a question with several right answers (``not_unique``).

A path A-B-C (2 hops) or A-B-C-D (3 hops) is sampled with its edges taken from different chunks
(from different documents where the graph allows it), without a one-hop shortcut (no edge joins two
entities of the path that are not next to each other: then the question would not need every
hop), and never through an entity whose name is no name ("and", "1, 2, 3", a clause fragment:
``entity_name_problem``).

**Questions are composed, not written whole** (MuSiQue's construction). A small model asked for a
question along a chain writes a one-hop question about its last fact. So the model writes only
one-hop pieces: per hop but the last, a *clue*, a noun phrase naming the hop's first entity that
describes its second ("the type that the variable s is an instance of"); for the last hop, a
question naming its first entity ("Where are the contents of String stored?"). ``compose_question``
puts each clue in place of the entity it describes, from the last hop back ("Where are the contents
of the type that the variable s is an instance of stored?"); a piece that does not name the entity
it is built on cannot be composed (``piece_missing_name``, ``piece_count``). The answer is the end
entity's title and the reasoning is one step per hop (``path_steps``), both from the path.

A composed question is kept only when
- the path has no shortcut edge and its answer is unique (``shortcut_edge``, ``not_unique``);
- the answer occurs in the last hop's chunk (``answer_not_in_chunk``);
- it names the start entity (``start_missing``), and no bridge entity nor the answer
  (``bridge_in_question``, ``answer_in_question``): entity names matched as whole words, with
  chunk ids and document names masked first (an entity "rc" is not named by "ch15-04-rc.md#3");
- it copies no hop's evidence sentence (``evidence_in_question``)."""

from __future__ import annotations

import itertools
import random
import re

from synth_tasks.quality.filters import KEEP, Verdict, drop

GENERIC_RELATION = "related to"
REVERSED = " (reversed)"
MAX_PREDICATE_WORDS = 6
EVIDENCE_RUN_WORDS = 8  # a question sharing this many consecutive words with an evidence sentence copies it
MAX_NAME_WORDS = 6
MAX_LABEL_COMBINATIONS = 27

# Words that make no entity on their own, nor open or close one ("and", "produced by").
FUNCTION_WORDS = frozenset("""
a an the and or but nor so yet if then else than of in on at by for from to with without into onto over under
about as via per is are was were be been being it its this that these those which who whom whose what when where
while how why not no instead also only just we you they he she i me us them our your their his her my can will
would should could may might must do does did has have had there here such some any each every all both either
neither other another same own very more most less least""".split())
_ARTICLES = frozenset({"a", "an", "the", "its", "their", "this", "that", "these", "those", "his", "her", "our",
                       "your", "my"})
# Between two names these say only that both are listed, not how they relate.
_CONNECTIVES = frozenset({"and", "or", "nor", "with", "as", "well", "also", "plus", "vs", "versus", "both"})
_PLAIN_NAME = re.compile(r"^[\w\s'’-]+$")
_CHUNK_ID = re.compile(r"[\w./-]+#\d+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*(?:[-*]|\d+\.)\s)")


def names_of(g, node: str) -> list[str]:
    """The entity's title, then its aliases."""
    d = g.nodes[node]
    return [d["title"], *(d.get("aliases") or [])]


def _pattern(name: str) -> str:
    """A lower-cased name as whole words, plural or possessive forms included ("vectors",
    "vector's" name "vector": entity resolution merges them)."""
    return r"(?<!\w)" + re.escape(name) + r"(?:e?s|['’]s)?(?!\w)"


def _names_in(text: str, names: list[str]) -> str | None:
    """The first of ``names`` (longest first) that occurs in ``text`` as whole words, case-insensitive."""
    low = text.lower()
    for n in sorted(names, key=len, reverse=True):
        n = n.strip().lower()
        if n and re.search(_pattern(n), low):
            return n
    return None


def _first_span(low: str, names: list[str]) -> tuple[int, int] | None:
    """Where the earliest of ``names`` occurs in the lower-cased ``low`` (the longest at one start)."""
    best = None
    for n in names:
        n = n.strip().lower().replace("`", "")
        m = re.search(_pattern(n), low) if n else None
        if m and (best is None or (m.start(), -m.end()) < (best[0], -best[1])):
            best = (m.start(), m.end())
    return best


def mask_ids(text: str, chunk_ids: list[str]) -> str:
    """``text`` with chunk ids ("ch15-04-rc.md#3"), the job's document names ("ch15-04-rc.md") and
    anything shaped like a chunk id replaced by spaces: entity names are matched in what is left."""
    ids = set(chunk_ids) | {c.split("#", 1)[0] for c in chunk_ids}
    for i in sorted(ids, key=len, reverse=True):
        text = text.replace(i, " ")
    return _CHUNK_ID.sub(" ", text)


def sentences(text: str) -> list[str]:
    """Sentences of a description or a chunk (on . ! ?, blank lines and list items), markup of inline
    code removed, whitespace collapsed."""
    return [s for s in (" ".join(p.replace("`", "").split()) for p in _SENTENCE_BREAK.split(text)) if s]


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'’]+", text.lower())


def entity_name_problem(name: str) -> str | None:
    """Why ``name`` is no entity name, or None: no word ("1, 2, 3"), only function words ("and"), or a
    plain-word phrase that opens or closes on one ("but instead the new future produced by") or is
    over ``MAX_NAME_WORDS`` words. Names with code punctuation ("let...else", "Vec<T>") are only
    checked for words."""
    words = _words(name)
    if not any(any(ch.isalpha() for ch in w) for w in words):
        return "has no word"
    if all(w in FUNCTION_WORDS for w in words):
        return "is a function word, not a name"
    if _PLAIN_NAME.match(name.strip()):
        while len(words) > 1 and words[0] in _ARTICLES:
            words = words[1:]
        if words[0] in FUNCTION_WORDS or words[-1] in FUNCTION_WORDS:
            return "is a phrase fragment, not a name"
        if len(words) > MAX_NAME_WORDS:
            return f"is a phrase of {len(words)} words, not a name"
    return None


def predicate(between: str) -> str | None:
    """The relation type the words between two names give: lower-cased, articles at the ends dropped;
    None when nothing is left, only connectives ("and", ",") or more than ``MAX_PREDICATE_WORDS``."""
    words = _words(between)
    while words and words[0] in _ARTICLES:
        words = words[1:]
    while words and words[-1] in _ARTICLES:
        words = words[:-1]
    if not words or len(words) > MAX_PREDICATE_WORDS or all(w in _CONNECTIVES for w in words):
        return None
    return " ".join(words)


def relation_labels(description: str, names_a: list[str], names_b: list[str]) -> tuple[set[str], set[str]]:
    """The types of a relation read from a to b and from b to a: the predicate of each sentence of
    its description that names both, "(reversed)" when read against the sentence's order;
    ``{GENERIC_RELATION}`` both ways when no sentence gives one."""
    a_to_b, b_to_a = set(), set()
    for s in sentences(description):
        low = s.lower()
        sa, sb = _first_span(low, names_a), _first_span(low, names_b)
        if sa is None or sb is None or (sa[0] < sb[1] and sb[0] < sa[1]):
            continue
        first, second = (sa, sb) if sa[0] < sb[0] else (sb, sa)
        pred = predicate(low[first[1]:second[0]])
        if pred is None:
            continue
        forward, backward = (a_to_b, b_to_a) if first is sa else (b_to_a, a_to_b)
        forward.add(pred)
        backward.add(pred + REVERSED)
    if not a_to_b:
        return {GENERIC_RELATION}, {GENERIC_RELATION}
    return a_to_b, b_to_a


def typed_edges(g) -> dict[tuple[str, str], set[str]]:
    """(u, v) -> the types of the edge u-v read from u to v, for both directions of every edge."""
    typed = {}
    for a, b, d in g.edges(data=True):
        typed[(a, b)], typed[(b, a)] = relation_labels(d.get("description") or "", names_of(g, a), names_of(g, b))
    return typed


def reachable(g, typed: dict[tuple[str, str], set[str]], start: str, labels: list[str]) -> set[str]:
    """The entities reached from ``start`` by following, at step i, only edges of type ``labels[i]``
    (any edge for the generic type); the start itself never counts."""
    frontier = {start}
    for label in labels:
        frontier = {v for u in frontier for v in g.neighbors(u)
                    if v != start and (label == GENERIC_RELATION or label in typed[(u, v)])}
    return frontier


def orient(g, typed: dict[tuple[str, str], set[str]], path: list[str]) -> dict:
    """The reading of ``path`` (as given or reversed) and the hop types that make its end the only
    entity reachable from its start; when none does, the reading with the fewest reachable entities.
    Returns {path, labels, reachable (sorted), reversed}."""
    best = None
    for flipped, p in ((False, list(path)), (True, list(reversed(path)))):
        options = [sorted(typed[(a, b)]) for a, b in zip(p, p[1:])]
        for labels in itertools.islice(itertools.product(*options), MAX_LABEL_COMBINATIONS):
            ends = reachable(g, typed, p[0], list(labels))
            candidate = {"path": p, "labels": list(labels), "reachable": sorted(ends), "reversed": flipped}
            if ends == {p[-1]}:
                return candidate
            if best is None or len(ends) < len(best["reachable"]):
                best = candidate
    return best


def state_hop(a: str, label: str, b: str) -> str:
    """A hop from entity a to entity b of type ``label`` as the fact it states, in the order its
    sentence reads ("borrow checker" "is enforced by (reversed)" "ownership": ownership is enforced
    by the borrow checker)."""
    if label == GENERIC_RELATION:
        return f'"{a}" is related to "{b}"'
    if label.endswith(REVERSED):
        return f'"{b}" {label[:-len(REVERSED)]} "{a}"'
    return f'"{a}" {label} "{b}"'


def hop_evidence(chunk_text: str, names_a: list[str], names_b: list[str], description: str) -> str:
    """The sentence of the hop's chunk that names both ends (the first one), else the first sentence
    of the relation's description: what the question is written from, and must not copy."""
    for s in sentences(chunk_text):
        low = s.lower()
        if _first_span(low, names_a) and _first_span(low, names_b):
            return s[:600]
    return (sentences(description) or [""])[0][:600]


def copies_evidence(question: str, evidence: str) -> bool:
    """Whether the question repeats ``EVIDENCE_RUN_WORDS`` consecutive words of the evidence (all of
    it when the evidence is shorter, and at least 3)."""
    ev, q = _words(evidence), _words(question)
    n = min(EVIDENCE_RUN_WORDS, len(ev))
    if n < 3 or len(q) < n:
        return False
    runs = {tuple(q[i:i + n]) for i in range(len(q) - n + 1)}
    return any(tuple(ev[i:i + n]) in runs for i in range(len(ev) - n + 1))


def shortcut(g, path: list[str]) -> tuple[str, str] | None:
    """Two entities of the path, not next to each other on it, that one edge joins."""
    for i in range(len(path)):
        for j in range(i + 2, len(path)):
            if g.has_edge(path[i], path[j]):
                return path[i], path[j]
    return None


def _hop_chunks(g, path: list[str], chunk_doc: dict[str, str], rng: random.Random) -> list[str] | None:
    """One source chunk per edge, all different, as many different documents as possible."""
    options = [sorted(g.edges[a, b]["text_unit_ids"]) for a, b in zip(path, path[1:])]
    best: list[str] | None = None
    best_docs = -1

    def walk(i: int, chosen: list[str]):
        nonlocal best, best_docs
        if i == len(options):
            docs = len({chunk_doc.get(c, c) for c in chosen})
            if docs > best_docs:
                best, best_docs = list(chosen), docs
            return
        for c in options[i][:8]:
            if c not in chosen:
                walk(i + 1, chosen + [c])

    for opts in options:
        rng.shuffle(opts)
    walk(0, [])
    return best


def sample_paths(g, hops: int, n: int, seed: int, chunk_doc: dict[str, str], max_tries: int | None = None, *,
                 typed: dict[tuple[str, str], set[str]] | None = None, require_unique: bool = False,
                 excluded: set[str] | frozenset[str] = frozenset()) -> list[dict]:
    """Up to ``n`` good paths of ``hops`` edges, by seeded random walks that never revisit an entity
    nor step on an ``excluded`` one, whose edges have different source chunks and no one chunk holds
    every edge. Every path found is returned with its ``shortcut`` (or None), so the caller can
    account for the rejected ones; with ``typed`` each is read the way that makes its answer unique
    where one does (``orient``: ``labels``, ``reachable``, the hop chunks in the path's order). Good
    paths (no shortcut; with ``require_unique``, a unique answer) come first, then the ones whose
    hops span more documents."""
    rng = random.Random(f"{seed}:{hops}")
    nodes = sorted(n_ for n_ in g.nodes if g.degree(n_) > 0 and n_ not in excluded)
    if not nodes:
        return []
    found: dict[tuple[str, ...], dict] = {}
    tries = max_tries if max_tries is not None else 50 * n + 200
    good = 0
    for _ in range(tries):
        if good >= n:
            break
        path = [rng.choice(nodes)]
        while len(path) < hops + 1:
            nxt = sorted(x for x in g.neighbors(path[-1]) if x not in path and x not in excluded)
            if not nxt:
                break
            path.append(rng.choice(nxt))
        if len(path) < hops + 1:
            continue
        key = tuple(path) if path[0] < path[-1] else tuple(reversed(path))
        if key in found:
            continue
        chunks = _hop_chunks(g, list(key), chunk_doc, rng)
        if chunks is None:
            continue
        edge_chunks = [set(g.edges[a, b]["text_unit_ids"]) for a, b in zip(key, key[1:])]
        if set.intersection(*edge_chunks):  # one passage holds every hop: answerable without hopping
            continue
        entry = {"path": list(key), "chunks": chunks, "shortcut": shortcut(g, list(key)), "labels": None,
                 "reachable": None, "documents": len({chunk_doc.get(c, c) for c in chunks})}
        if typed is not None:
            o = orient(g, typed, list(key))
            entry |= {"path": o["path"], "labels": o["labels"], "reachable": o["reachable"],
                      "chunks": list(reversed(chunks)) if o["reversed"] else chunks}
        entry["good"] = entry["shortcut"] is None and (
            not require_unique or entry["reachable"] == [entry["path"][-1]])
        found[key] = entry
        good += entry["good"]
    return sorted(found.values(), key=lambda p: (not p["good"], p["shortcut"] is not None, -p["documents"], p["path"]))


def _name_span(text: str, names: list[str]) -> tuple[int, int] | None:
    """Where ``text`` first names one of ``names`` (whole words, plural or possessive included), with
    the backticks around it and an article before it."""
    span = _first_span(text.lower(), names)
    if span is None:
        return None
    start, end = span
    if start > 0 and end < len(text) and text[start - 1] == text[end] == "`":
        start, end = start - 1, end + 1
    article = re.search(r"(?:^|(?<=\s))(?:the|an?)\s+$", text[:start], re.IGNORECASE)
    return (article.start() if article else start), end


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _inline(clue: str) -> str:
    """A clue as it reads inside a sentence: trailing punctuation dropped, a leading article or
    function word lower-cased ("The type that..." -> "the type that...")."""
    clue = " ".join(clue.split()).rstrip(" .?!;:,")
    first = clue.split(" ", 1)[0]
    return clue[0].lower() + clue[1:] if first.lower() in FUNCTION_WORDS else clue


def compose_question(path_names: list[list[str]], clues: list[str], question: str) -> tuple[str | None, str | None]:
    """The question along a whole path from its pieces (the module's docstring): ``question`` names
    the last hop's first entity, and clue k (hop k+1) names entity k and describes entity k+1.
    Returns (question, None), or (None, the reason it cannot be composed)."""
    hops = len(path_names) - 1
    if len(clues) != hops - 1:
        return None, f"piece_count: {len(clues)} clues for a {hops}-hop path ({hops - 1} wanted)"
    text = " ".join(question.split())
    for k in range(hops - 1, 0, -1):  # entity k is named in the text; the clue of hop k describes it
        span = _name_span(text, path_names[k])
        if span is None:
            where = "the question" if k == hops - 1 else f"clue {k + 1}"
            return None, f"piece_missing_name: {where} does not name {path_names[k][0]!r}"
        text = text[:span[0]] + _inline(clues[k - 1]) + text[span[1]:]
    if _name_span(text, path_names[0]) is None:
        where = "clue 1" if hops > 1 else "the question"
        return None, f"piece_missing_name: {where} does not name {path_names[0][0]!r}"
    text = _capitalised(text)
    return (text if text.endswith("?") else text.rstrip(" .") + "?"), None


def path_steps(titles: list[str], chunk_ids: list[str], clues: list[str], question: str) -> list[str]:
    """One reasoning step per hop, each opening with its chunk id: what each clue names, then the
    last hop's question answered."""
    steps = [f"[{c}] {_capitalised(_inline(clue))} is {t}."
             for c, clue, t in zip(chunk_ids, clues, titles[1:])]
    return [*steps, f"[{chunk_ids[-1]}] {' '.join(question.split())} {titles[-1]}."]


def check_path_qa(job: dict, question: str, g=None, typed: dict[tuple[str, str], set[str]] | None = None) -> Verdict:
    """The rules of the module's docstring for a composed ``question`` (its answer is the path's
    end). ``job``: path (entity ids), path_names (per entity of the path: [title, *aliases]),
    hop_chunk_ids, hop_types, hop_evidence, last_chunk_text; ``g`` (the graph) for the shortcut
    rule, and with ``typed`` (``typed_edges(g)``) for the uniqueness rule."""
    path = job["path"]
    names = {node: list(n) for node, n in zip(path, job["path_names"])}
    if g is not None:
        cut = shortcut(g, path)
        if cut is not None:
            return drop(f"shortcut_edge: {names[cut[0]][0]!r} and {names[cut[1]][0]!r} are one hop apart")
        if typed is not None:
            ends = reachable(g, typed, path[0], job["hop_types"])
            if ends != {path[-1]}:
                shown = ", ".join(repr(g.nodes[e]["title"]) for e in sorted(ends)[:3])
                return drop(f"not_unique: {len(ends)} entities are reachable from {names[path[0]][0]!r} along "
                            f"{' / '.join(job['hop_types'])}: {shown}")
    answer_names = names[path[-1]]
    if _names_in(job["last_chunk_text"], answer_names) is None:
        return drop(f"answer_not_in_chunk: {answer_names[0]!r} does not occur in the last hop's chunk "
                    f"{job['hop_chunk_ids'][-1]}")
    asked = mask_ids(question, job["hop_chunk_ids"])
    if _names_in(asked, names[path[0]]) is None:
        return drop(f"start_missing: the question does not name the start entity {names[path[0]][0]!r}")
    for bridge in path[1:-1]:
        found = _names_in(asked, names[bridge])
        if found is not None:
            return drop(f"bridge_in_question: names {found!r}, the bridge entity {names[bridge][0]!r}")
    found = _names_in(asked, answer_names)
    if found is not None:
        return drop(f"answer_in_question: the question names the answer {found!r}")
    for k, evidence in enumerate(job["hop_evidence"]):
        if copies_evidence(question, evidence):
            return drop(f"evidence_in_question: the question copies hop {k + 1}'s evidence {evidence[:80]!r}")
    return KEEP
