"""Retrieval over the graph, for generation and for checking what was generated.

- Local (HippoRAG-style): the entities a text names are the seeds; personalised PageRank from them
  over the weighted graph scores every entity, and a chunk scores the sum of its entities' scores.
- Global (GraphRAG-style, without the map-reduce LLM step): community reports ranked by how well
  their title, summary and findings match the query (rapidfuzz token-set ratio), then by rank.

No learned scorer (GNN): personalised PageRank is the baseline, and a learned one would have to beat
it on a retrieval check first (see the method's README section)."""

from __future__ import annotations

import json
import re


def name_index(g) -> list[tuple[str, str]]:
    """(lower-cased surface form, entity id) for every title and alias, longest first."""
    forms = {}
    for n, d in g.nodes(data=True):
        for form in [d["title"], *(d.get("aliases") or [])]:
            form = form.strip().lower()
            if len(form) >= 2:
                forms.setdefault(form, n)
    return sorted(forms.items(), key=lambda kv: (-len(kv[0]), kv[0]))


def mentions(text: str, index: list[tuple[str, str]]) -> list[str]:
    """Entity ids whose title or alias occurs in ``text`` as whole words (longest forms first; a
    shorter form inside a longer one already found does not count again)."""
    low = text.lower()
    taken: list[tuple[int, int]] = []
    found: list[str] = []
    for form, eid in index:
        for m in re.finditer(r"(?<!\w)" + re.escape(form) + r"(?!\w)", low):
            if any(a <= m.start() < b or a < m.end() <= b for a, b in taken):
                continue
            taken.append((m.start(), m.end()))
            if eid not in found:
                found.append(eid)
    return found


def personalized_pagerank(g, seeds: list[str], alpha: float = 0.85) -> dict[str, float]:
    import networkx as nx

    seeds = [s for s in seeds if s in g]
    if not seeds or g.number_of_edges() == 0:
        return {s: 1.0 / len(seeds) for s in seeds} if seeds else {}
    # A few-node graph whose walk bounces between two sides converges slowly: 100 iterations (the
    # default) raised PowerIterationFailedConvergence on a 3-node chain; 1,000 do.
    return nx.pagerank(g, alpha=alpha, personalization={s: 1.0 for s in seeds}, weight="weight", tol=1e-8,
                       max_iter=1000)


def local_chunks(g, seeds: list[str], k: int, alpha: float = 0.85) -> list[tuple[str, float]]:
    """The ``k`` best chunks for the seed entities: personalised PageRank, summed per chunk."""
    scores = personalized_pagerank(g, seeds, alpha)
    chunk_score: dict[str, float] = {}
    for n, s in scores.items():
        for u in g.nodes[n]["text_unit_ids"]:
            chunk_score[u] = chunk_score.get(u, 0.0) + s
    return sorted(chunk_score.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def global_reports(reports: list[dict], query: str, k: int) -> list[dict]:
    """The ``k`` community reports (community_reports.parquet rows) that match ``query`` best."""
    from rapidfuzz import fuzz

    def score(r: dict) -> float:
        findings = r.get("findings") or "[]"
        findings = json.loads(findings) if isinstance(findings, str) else findings
        text = " ".join([r["title"], r["summary"], *(f.get("summary", "") for f in findings)])
        return fuzz.token_set_ratio(query.lower(), text.lower())

    return sorted(reports, key=lambda r: (-score(r), -float(r.get("rank") or 0), r["community"]))[:k]
