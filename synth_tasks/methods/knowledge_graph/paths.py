"""Multi-hop paths through the graph and the rules a question written along one must pass.

A path A-B-C (2 hops) or A-B-C-D (3 hops) is sampled with its edges taken from different chunks
(from different documents where the graph allows it), and without a one-hop shortcut: no edge
joins two entities of the path that are not next to each other (then the question would not need
every hop). A question written along a path is kept only when
- its answer names the answer entity (its title or an alias), and that name occurs in the last
  hop's chunk (``answer_not_in_chunk``, ``answer_mismatch``);
- no bridge entity (nor the answer) is named in the question (``bridge_in_question``,
  ``answer_in_question``);
- its reasoning has one step per hop and every hop's chunk is cited (``missing_citation``,
  ``steps_mismatch``);
- the path has no shortcut edge (``shortcut_edge``)."""

from __future__ import annotations

import random
import re

from synth_tasks.quality.filters import KEEP, Verdict, drop


def names_of(g, node: str) -> list[str]:
    d = g.nodes[node]
    return [d["title"], *(d.get("aliases") or [])]


def _names_in(text: str, names: list[str]) -> str | None:
    """The first of ``names`` that occurs in ``text`` as whole words (case-insensitive), plural or
    possessive forms included ("vectors", "vector's" name "vector": entity resolution merges them)."""
    low = text.lower()
    for n in sorted(names, key=len, reverse=True):
        n = n.strip().lower()
        if n and re.search(r"(?<!\w)" + re.escape(n) + r"(?:e?s|'s)?(?!\w)", low):
            return n
    return None


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


def sample_paths(g, hops: int, n: int, seed: int, chunk_doc: dict[str, str], max_tries: int | None = None
                 ) -> list[dict]:
    """Up to ``n`` distinct paths of ``hops`` edges, by seeded random walks that never revisit an
    entity, whose edges have different source chunks and no one chunk holds every edge. Every path found is returned with its
    ``shortcut`` (or None), so the caller can account for the rejected ones; paths whose hops span
    more documents come first."""
    rng = random.Random(f"{seed}:{hops}")
    nodes = sorted(n_ for n_ in g.nodes if g.degree(n_) > 0)
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
            nxt = sorted(x for x in g.neighbors(path[-1]) if x not in path)
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
        cut = shortcut(g, list(key))
        found[key] = {"path": list(key), "chunks": chunks, "shortcut": cut,
                      "documents": len({chunk_doc.get(c, c) for c in chunks})}
        good += cut is None
    return sorted(found.values(), key=lambda p: (p["shortcut"] is not None, -p["documents"], p["path"]))


def check_path_qa(job: dict, qa: dict, has_edge=None) -> Verdict:
    """The rules of the module's docstring. ``job``: path (entity ids), path_names (per entity of the
    path: [title, *aliases]), hop_chunk_ids, last_chunk_text; ``qa``: question, answer,
    reasoning_steps [{chunk_id, step}], cited_chunk_ids; ``has_edge(a, b)`` (the graph's) for the
    shortcut rule."""
    path = job["path"]
    names = {node: list(n) for node, n in zip(path, job["path_names"])}
    question, answer = qa["question"], qa["answer"]
    if has_edge is not None:
        for i in range(len(path)):
            for j in range(i + 2, len(path)):
                if has_edge(path[i], path[j]):
                    return drop(f"shortcut_edge: {names[path[i]][0]!r} and {names[path[j]][0]!r} are one hop apart")
    answer_names = names[path[-1]]
    said = _names_in(answer, answer_names)
    if said is None:
        return drop(f"answer_mismatch: the answer {answer[:60]!r} does not name {answer_names[0]!r}")
    if _names_in(job["last_chunk_text"], answer_names) is None:
        return drop(f"answer_not_in_chunk: {answer_names[0]!r} does not occur in the last hop's chunk "
                    f"{job['hop_chunk_ids'][-1]}")
    for bridge in path[1:-1]:
        found = _names_in(question, names[bridge])
        if found is not None:
            return drop(f"bridge_in_question: the question names the bridge entity {found!r}")
    found = _names_in(question, answer_names)
    if found is not None:
        return drop(f"answer_in_question: the question names the answer {found!r}")
    steps = qa["reasoning_steps"]
    if len(steps) != len(job["hop_chunk_ids"]):
        return drop(f"steps_mismatch: {len(steps)} reasoning steps for {len(job['hop_chunk_ids'])} hops")
    cited = set(qa.get("cited_chunk_ids") or []) | {s["chunk_id"] for s in steps}
    for k, c in enumerate(job["hop_chunk_ids"]):
        if c not in cited:
            return drop(f"missing_citation: hop {k + 1}'s chunk {c} is not cited")
    for k, (s, c) in enumerate(zip(steps, job["hop_chunk_ids"])):
        if s["chunk_id"] != c:
            return drop(f"missing_citation: step {k + 1} names chunk {s['chunk_id']}, hop {k + 1} is in {c}")
    return KEEP
