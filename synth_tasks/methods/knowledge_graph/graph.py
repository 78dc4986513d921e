"""The graph: resolved entities and merged relations as GraphRAG's tables, a networkx graph of them,
hierarchical Leiden communities (graspologic-native, seeded) and GraphML.

The tables follow GraphRAG's documented output schema (``docs/index/outputs.md`` and
``graphrag/data_model/schemas.py``, GraphRAG 3.x): ``GRAPHRAG_COLUMNS`` lists each table's columns
in GraphRAG's order with the types its docs give, and ``EXTRA_COLUMNS`` the columns this method
adds after them (``aliases`` on entities; ``source_id`` / ``target_id``, entity ids, on
relationships; ``document_ids``, GraphRAG 2.x's name, and ``source_file`` on text units). Every
table is written with ``table_schema(name)``, so an empty table keeps its columns. As in GraphRAG, a
relationship's source and target are entity titles; the graph is undirected; a community's and a
community report's ``human_readable_id`` is its community number, and ``period`` the ingest date."""

from __future__ import annotations

import io
import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timezone

from synth_tasks.methods.knowledge_graph.resolve import normalize, stable_id

# GraphRAG's columns per output table, in its order, with the types of its docs: str, int, float,
# str[], int[], and findings' dict[] (a list of {summary, explanation}); full_content_json is "json",
# a JSON string.
GRAPHRAG_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "entities": (("id", "str"), ("human_readable_id", "int"), ("title", "str"), ("type", "str"),
                 ("description", "str"), ("text_unit_ids", "str[]"), ("frequency", "int"), ("degree", "int")),
    "relationships": (("id", "str"), ("human_readable_id", "int"), ("source", "str"), ("target", "str"),
                      ("description", "str"), ("weight", "float"), ("combined_degree", "int"),
                      ("text_unit_ids", "str[]")),
    "communities": (("id", "str"), ("human_readable_id", "int"), ("community", "int"), ("level", "int"),
                    ("parent", "int"), ("children", "int[]"), ("title", "str"), ("entity_ids", "str[]"),
                    ("relationship_ids", "str[]"), ("text_unit_ids", "str[]"), ("period", "str"), ("size", "int")),
    "community_reports": (("id", "str"), ("human_readable_id", "int"), ("community", "int"), ("level", "int"),
                          ("parent", "int"), ("children", "int[]"), ("title", "str"), ("summary", "str"),
                          ("full_content", "str"), ("rank", "float"), ("rating_explanation", "str"),
                          ("findings", "dict[]"), ("full_content_json", "json"), ("period", "str"), ("size", "int")),
    "text_units": (("id", "str"), ("human_readable_id", "int"), ("text", "str"), ("n_tokens", "int"),
                   ("document_id", "str"), ("entity_ids", "str[]"), ("relationship_ids", "str[]"),
                   ("covariate_ids", "str[]")),
}
# What this method adds after GraphRAG's columns (readers that select GraphRAG's columns ignore them).
EXTRA_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "entities": (("aliases", "str[]"),),
    "relationships": (("source_id", "str"), ("target_id", "str")),
    "communities": (),
    "community_reports": (),
    "text_units": (("document_ids", "str[]"), ("source_file", "str")),
}
REPORT_COLUMNS = tuple(name for name, _ in GRAPHRAG_COLUMNS["community_reports"])
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def arrow_type(doc_type: str):
    """The pyarrow type of a type as GraphRAG's docs write it."""
    import pyarrow as pa

    finding = pa.struct([("summary", pa.string()), ("explanation", pa.string())])
    return {"str": pa.string(), "json": pa.string(), "int": pa.int64(), "float": pa.float64(),
            "str[]": pa.list_(pa.string()), "int[]": pa.list_(pa.int64()), "dict[]": pa.list_(finding)}[doc_type]


def graphrag_schema(table: str):
    """GraphRAG's documented columns of ``table`` as a pyarrow schema (without this method's extras)."""
    import pyarrow as pa

    return pa.schema([(name, arrow_type(t)) for name, t in GRAPHRAG_COLUMNS[table]])


def table_schema(table: str):
    """The schema ``table`` is written with: GraphRAG's columns, then this method's extras."""
    import pyarrow as pa

    return pa.schema([(name, arrow_type(t)) for name, t in GRAPHRAG_COLUMNS[table] + EXTRA_COLUMNS[table]])


def ingest_period(partition: str) -> str:
    """GraphRAG's ``period`` (the ingest date, ISO 8601): a dated partition's day (a scheduled run's
    data interval), else today's date in UTC."""
    return partition if _ISO_DATE.match(partition) else datetime.now(timezone.utc).date().isoformat()


def merge_relations(relations: list[dict], key_to_id: dict[str, str]) -> tuple[list[dict], Counter]:
    """Relations of all chunks, {source, target, description, strength, chunk_id}, merged per
    unordered pair of resolved entities: descriptions kept (distinct), weight = the sum of the
    strengths, every source chunk. Ends that resolve to no entity are dropped, counted."""
    merged: dict[tuple[str, str], dict] = {}
    counts: Counter = Counter()
    for r in sorted(relations, key=lambda r: (r["chunk_id"], r["source"], r["target"])):
        a, b = key_to_id.get(normalize(r["source"])), key_to_id.get(normalize(r["target"]))
        if a is None or b is None:
            counts["relation_end_unresolved"] += 1
            continue
        if a == b:
            counts["relation_within_one_entity"] += 1
            continue
        pair = (a, b) if a < b else (b, a)
        m = merged.setdefault(pair, {"source_id": a, "target_id": b, "descriptions": [], "weight": 0.0,
                                     "text_unit_ids": set(), "mentions": 0})
        if r["description"] and r["description"] not in m["descriptions"]:
            m["descriptions"].append(r["description"])
        m["weight"] += float(r["strength"])
        m["text_unit_ids"].add(r["chunk_id"])
        m["mentions"] += 1
    out = []
    for pair, m in sorted(merged.items()):
        out.append(m | {"id": stable_id(*pair), "text_unit_ids": sorted(m["text_unit_ids"])})
    return out, counts


def tables(entities: list[dict], relations: list[dict]) -> tuple[list[dict], list[dict]]:
    """GraphRAG's entity and relationship rows. ``entities``: {id, title, type, description, aliases,
    text_unit_ids}; ``relations``: merge_relations' output with its ``description`` set."""
    degree: Counter = Counter()
    for r in relations:
        degree[r["source_id"]] += 1
        degree[r["target_id"]] += 1
    title = {e["id"]: e["title"] for e in entities}
    ent_rows = [{"id": e["id"], "human_readable_id": i, "title": e["title"], "type": e["type"],
                 "description": e["description"], "text_unit_ids": list(e["text_unit_ids"]),
                 "frequency": len(e["text_unit_ids"]), "degree": degree[e["id"]], "aliases": list(e["aliases"])}
                for i, e in enumerate(entities)]
    rel_rows = [{"id": r["id"], "human_readable_id": i, "source": title[r["source_id"]],
                 "target": title[r["target_id"]], "description": r["description"], "weight": float(r["weight"]),
                 "combined_degree": degree[r["source_id"]] + degree[r["target_id"]],
                 "text_unit_ids": list(r["text_unit_ids"]), "source_id": r["source_id"], "target_id": r["target_id"]}
                for i, r in enumerate(relations)]
    return ent_rows, rel_rows


def to_networkx(entity_rows: list[dict], relationship_rows: list[dict]):
    import networkx as nx

    g = nx.Graph()
    for e in entity_rows:
        g.add_node(e["id"], title=e["title"], type=e["type"], description=e["description"],
                   aliases=list(e.get("aliases") or []), text_unit_ids=list(e["text_unit_ids"]))
    for r in relationship_rows:
        g.add_edge(r["source_id"], r["target_id"], id=r["id"], description=r["description"], weight=r["weight"],
                   text_unit_ids=list(r["text_unit_ids"]))
    return g


def communities(g, max_cluster_size: int, seed: int, period: str = "") -> list[dict]:
    """Hierarchical Leiden (graspologic-native) over the weighted edges, seeded: the same graph and
    seed give the same communities. Rows in GraphRAG's shape (level 0 the coarsest; parent -1 at the
    top; human_readable_id the community number, as GraphRAG writes it; ``period`` the ingest date).
    Nodes without edges belong to no community."""
    from graspologic_native import hierarchical_leiden

    edges = sorted((a, b, float(d["weight"])) if a < b else (b, a, float(d["weight"]))
                   for a, b, d in g.edges(data=True))
    if not edges:
        return []
    clusters = hierarchical_leiden(edges, max_cluster_size=max_cluster_size, seed=seed, resolution=1.0,
                                   randomness=0.001, use_modularity=True, iterations=1)
    members: dict[int, set[str]] = defaultdict(set)
    level_of: dict[int, int] = {}
    parent_of: dict[int, int] = {}
    for c in clusters:
        members[c.cluster].add(c.node)
        level_of[c.cluster] = c.level
        parent_of[c.cluster] = c.parent_cluster if c.parent_cluster is not None else -1
    children: dict[int, list[int]] = defaultdict(list)
    for c, p in parent_of.items():
        if p != -1:
            children[p].append(c)
    rows = []
    for cid in sorted(members, key=lambda c: (level_of[c], c)):
        nodes = members[cid]
        rel_ids = sorted(d["id"] for a, b, d in g.edges(nodes, data=True) if a in nodes and b in nodes)
        units = sorted({u for n in nodes for u in g.nodes[n]["text_unit_ids"]})
        rows.append({"id": stable_id("community", str(cid), *sorted(nodes)), "human_readable_id": int(cid),
                     "community": int(cid), "level": int(level_of[cid]), "parent": int(parent_of[cid]),
                     "children": sorted(int(c) for c in children[cid]), "title": f"Community {cid}",
                     "entity_ids": sorted(nodes), "relationship_ids": rel_ids, "text_unit_ids": units,
                     "period": period, "size": len(nodes)})
    return rows


def root_community(community_rows: list[dict]) -> dict[int, int]:
    """Community number -> the number of its top-level ancestor (itself at level 0)."""
    parent = {c["community"]: c["parent"] for c in community_rows}
    roots = {}
    for c in parent:
        top = c
        while parent.get(top, -1) != -1:
            top = parent[top]
        roots[c] = top
    return roots


def report_rows(reports: list[dict], period: str) -> list[dict]:
    """community_reports.parquet rows from the report stage's records: GraphRAG's columns, findings
    as a list of {summary, explanation} (the entity and relationship ids each finding rests on stay
    in full_content_json), human_readable_id the community number."""
    rows = []
    for r in sorted(reports, key=lambda r: (r["level"], r["community"])):
        findings = json.loads(r["findings"]) if isinstance(r["findings"], str) else r["findings"]
        rows.append({k: r.get(k) for k in REPORT_COLUMNS} | {
            "human_readable_id": int(r["community"]), "period": period,
            "findings": [{"summary": f["summary"], "explanation": f["explanation"]} for f in findings]})
    return rows


def finest_community(community_rows: list[dict]) -> dict[str, int]:
    """Entity id -> the id of the deepest community holding it."""
    best: dict[str, tuple[int, int]] = {}
    for c in community_rows:
        for e in c["entity_ids"]:
            if e not in best or c["level"] > best[e][0]:
                best[e] = (c["level"], c["community"])
    return {e: c for e, (_, c) in best.items()}


def graphml(g, community_of: dict[str, int] | None = None) -> bytes:
    """The graph as GraphML (list attributes joined with "; ", the finest community per node)."""
    import networkx as nx

    h = nx.Graph()
    for n, d in g.nodes(data=True):
        h.add_node(n, title=d["title"], type=d["type"], description=d["description"],
                   aliases="; ".join(d.get("aliases") or []), text_unit_ids="; ".join(d["text_unit_ids"]),
                   community=int((community_of or {}).get(n, -1)))
    for a, b, d in g.edges(data=True):
        h.add_edge(a, b, id=d["id"], description=d["description"], weight=float(d["weight"]),
                   text_unit_ids="; ".join(d["text_unit_ids"]))
    buf = io.BytesIO()
    nx.write_graphml(h, buf)
    return buf.getvalue()


def report_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, sort_keys=True)
