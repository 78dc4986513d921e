"""The knowledge-graph method's stage functions (declared in
``synth_tasks.methods.knowledge_graph.METHOD``) and its export hook. Heavy imports (pyarrow, the
input readers, the LLM client; networkx, graspologic and rapidfuzz inside the helper modules'
functions) happen inside functions."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
from collections import Counter
from enum import Enum
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, create_model

from synth_tasks.llm.embedded import SMOLLM2
from synth_tasks.method import llm_seconds
from synth_tasks.methods.knowledge_graph import graph as G
from synth_tasks.methods.knowledge_graph.config import ExtractionFormat, KnowledgeGraphConfig
from synth_tasks.methods.knowledge_graph.cooccurrence import extract as cooccur
from synth_tasks.methods.knowledge_graph.parse import (ExtractionParseError, ground_in_chunk, link_relations,
                                                       parse_extraction)
from synth_tasks.methods.knowledge_graph.paths import (GENERIC_RELATION, check_path_qa, compose_question,
                                                       entity_name_problem, hop_evidence, names_of, path_steps,
                                                       sample_paths, sentences, state_hop, typed_edges)
from synth_tasks.methods.knowledge_graph.resolve import Mention, resolve
from synth_tasks.methods.knowledge_graph.retrieval import global_reports, local_chunks, mentions, name_index
from synth_tasks.prompts import load_prompt, render
from synth_tasks.quality.filters import KEEP, drop
from synth_tasks.text.chunking import chunk_text
from synth_tasks.text.tokens import count_tokens, encoding

if TYPE_CHECKING:  # the stage runner imports pyarrow: not at DAG parse time
    from synth_tasks.export import ExportContext
    from synth_tasks.stage import StageRun

log = logging.getLogger(__name__)

GRAPH_FILES = ("entities.parquet", "relationships.parquet", "communities.parquet", "community_reports.parquet",
               "text_units.parquet", "graph.graphml")
PAPER_COLUMNS = {"paper_id", "block_id", "kind", "text"}


def _prompt(prompt_name: str, /, **values: str) -> list[dict]:
    return [{"role": "user", "content": render(load_prompt(f"knowledge_graph/{prompt_name}"), **values)}]


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def doc_names(urls: list[str]) -> dict[str, str]:
    """A short name per file (its file name), with a hash of the URL where two share one."""
    names = {u: re.sub(r"[^A-Za-z0-9_.-]", "-", u.rsplit("/", 1)[-1]) or "doc" for u in urls}
    counts = Counter(names.values())
    return {u: n if counts[n] == 1 else f"{n}-{hashlib.sha256(u.encode()).hexdigest()[:6]}" for u, n in names.items()}


def chunk_document(text: str, chunk_tokens: int, overlap: int) -> list[tuple[str, int]]:
    """Token chunks of a document (the core chunker, on paragraphs then sentences, at most
    ``chunk_tokens - overlap`` new tokens each), each after the first starting with the last
    ``overlap`` tokens of the one before. Returns (text, n_tokens)."""
    pieces = chunk_text(text, max_tokens=chunk_tokens - overlap, min_tokens=min(50, (chunk_tokens - overlap) // 4))
    out: list[tuple[str, int]] = []
    prev = None
    for c in pieces:
        body = c.text
        if prev is not None and overlap:
            ids = encoding().encode(prev, disallowed_special=())
            body = encoding().decode(ids[-overlap:]).lstrip() + "\n\n" + body
        out.append((body, count_tokens(body)))
        prev = c.text
    return out


def paper_documents(rows: list[dict]) -> list[tuple[str, str]]:
    """The papers DAG's extraction (one row per block) as (paper_id, markdown text) per paper:
    headings as markdown headings, references and front matter left out."""
    papers: dict[str, list[str]] = {}
    for r in rows:
        kind = (r.get("kind") or "").lower()
        text = (r.get("text") or "").strip()
        path = r.get("section_path") or []
        if not text or kind.startswith("reference") or (path[:1] == ["Front matter"] and kind != "title"):
            continue
        line = f"{'#' * min(int(r.get('level') or 2), 6)} {text}" if kind == "heading" else text
        if kind == "figure_caption" and r.get("figure_description"):
            line += "\n" + r["figure_description"]
        papers.setdefault(str(r["paper_id"]), []).append(line)
    return [(pid, "\n\n".join(lines)) for pid, lines in papers.items()]


def _parquet_columns(store, url: str) -> set[str] | None:
    import pyarrow.parquet as pq

    try:
        return set(pq.read_schema(io.BytesIO(store.read_bytes(url))).names)
    except Exception:  # noqa: BLE001 - read_inputs names the problem when it reads the file
        return None


def prepare(run: StageRun[KnowledgeGraphConfig], files: list[str]) -> None:
    """Read the documents (markdown and text files whole; JSONL/Parquet rows by `text_column`; the
    papers DAG's papers.parquet one paper per document, its paper.md beside it skipped) and cut them into token chunks of
    `chunk_tokens` with `chunk_overlap`. A bad file or row fails alone; an empty document is
    filtered; with `max_chunks`, documents past it are filtered."""
    import pyarrow.parquet as pq

    from synth_tasks.inputs import InputError, read_text_file

    cfg = run.cfg
    names = doc_names(files)
    docs: list[tuple[str, str, str, str]] = []  # (ledger id, document name, source url, text)
    records_files = []
    extracted = {u.rsplit("/", 1)[0] for u in files if u.endswith("/papers.parquet")}
    for url in sorted(files):
        if url.endswith("/paper.md") and url.rsplit("/", 1)[0] in extracted:
            run.filtered(url, "duplicate_document: the papers extraction beside it (papers.parquet) is read instead")
        elif url.lower().endswith((".md", ".txt", ".markdown")):
            try:
                docs.append((url, names[url], url, read_text_file(run.input_store, url)))
            except (InputError, OSError) as exc:
                run.failed(url, f"bad_file: {exc}")
        elif url.lower().endswith(".parquet") and PAPER_COLUMNS <= (_parquet_columns(run.input_store, url) or set()):
            try:
                rows = pq.read_table(io.BytesIO(run.input_store.read_bytes(url))).to_pylist()
            except Exception as exc:  # noqa: BLE001 - a schema that reads over a table that does not
                run.failed(url, f"bad_file: {url}: {type(exc).__name__}: {exc}")
                continue
            papers = paper_documents(rows)
            if not papers:
                run.filtered(url, "empty_file: no text blocks in the papers extraction")
            for pid, text in papers:
                docs.append((f"{url}#{pid}", pid, url, text))
            run.counts["papers"] += len(papers)
        else:
            records_files.append(url)
    if records_files:
        for rec in run.read_inputs(records_files, cfg.text_column, cfg.id_column):
            docs.append((rec.id, rec.id, rec.source, rec.text))
    # Chunk ids are "{document name}#{i}": names must be unique across files, papers and records (the
    # same paper_id in two partitions' extractions, a record id equal to a file name)
    seen = Counter(name for _, name, _, _ in docs)
    docs = [(rid, name if seen[name] == 1 else f"{name}-{hashlib.sha256(rid.encode()).hexdigest()[:8]}", source, text)
            for rid, name, source, text in docs]
    budget = cfg.max_chunks
    for rid, name, source, text in sorted(docs, key=lambda d: (d[1], d[0])):
        if not text.strip():
            run.filtered(rid, "empty_document: no text")
            continue
        if budget is not None and budget <= 0:
            run.filtered(rid, f"max_chunks: the run's {cfg.max_chunks} chunks were taken by earlier documents")
            continue
        chunks = chunk_document(text, cfg.chunk_tokens, cfg.chunk_overlap)
        if budget is not None:
            chunks, budget = chunks[:budget], budget - len(chunks[:budget])
        run.kept(rid, *({"id": f"{name}#{i}", "document": name, "source_file": source, "chunk_index": i,
                         "text": body, "n_tokens": n} for i, (body, n) in enumerate(chunks)))
        run.counts["documents"] += 1
        run.counts["chunks"] += len(chunks)


# --------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------
def extraction_model(types: tuple[str, ...]) -> type[BaseModel]:
    """The JSON schema of an extraction: the type an enum of the configured types, at least one
    entity and one relationship (a chunk with nothing to relate still ends kept with its entities
    once the parser has dropped what is not in the chunk); what a constrained decoder cannot enforce is left to the tolerant parser. No maxLength on
    the strings: llama.cpp expands a bound of n characters into n nested grammar rules; the token
    limit bounds the answer instead, and the tolerant parser closes an answer it cut off."""
    etype = Enum("EntityType", {t: t for t in types}, type=str)
    entity = create_model("EntityOut", name=(str, Field(min_length=1)), type=(etype, ...), description=(str, ...))
    # strength unbounded here: llama.cpp's grammar does not enforce minimum/maximum, and a 0 from the
    # model would cost a repair request; the parser clamps it to 1-10. minLength does reach the
    # grammar (without it SmolLM2-135M answered names "").
    relation = create_model("RelationshipOut", source=(str, Field(min_length=1)), target=(str, Field(min_length=1)),
                            description=(str, ...), strength=(int, ...))
    return create_model("Extraction", entities=(list[entity], Field(min_length=1)),
                        relationships=(list[relation], Field(min_length=1)))


_MODELS: dict[tuple[str, ...], type[BaseModel]] = {}


def _model_for(types: tuple[str, ...]) -> type[BaseModel]:
    if types not in _MODELS:  # one class per type list, so the client builds its schema once
        _MODELS[types] = extraction_model(types)
    return _MODELS[types]


def extraction_format(run: StageRun[KnowledgeGraphConfig]) -> str:
    fmt = run.cfg.extraction_format
    if fmt != ExtractionFormat.AUTO:
        return str(fmt)
    return "tuples" if run.endpoint.structured_output == "prompt" else "json"


def gleaning_rounds(cfg: KnowledgeGraphConfig, endpoint) -> int:
    """The Param, else 1 (GraphRAG's default), or 0 on the embedded 135M model."""
    if cfg.gleaning_rounds is not None:
        return cfg.gleaning_rounds
    return 0 if endpoint.model == SMOLLM2.alias else 1


async def extract_chunk(llm, cfg: KnowledgeGraphConfig, chunk: dict, fmt: str, rounds: int = 0) -> dict:
    """One chunk's extraction with its gleaning rounds; the tolerant parser reads every answer. An
    answer with nothing usable raises LLMError("unparseable_extraction") with the raw text."""
    from synth_tasks.llm.client import LLMError

    types = cfg.types
    name = "extract_json" if fmt == "json" else "extract_tuples"
    messages = _prompt(name, entity_types=", ".join(types), chunk_id=chunk["id"], text=chunk["text"])
    tokens, cached, raws = 0, True, []
    found = None
    for round_ in range(rounds + 1):
        if round_:
            messages = [*messages, {"role": "assistant", "content": raws[-1]},
                        {"role": "user", "content": _prompt("glean")[0]["content"]}]
        sampling = cfg.sampling(f"{chunk['id']}:extract:{round_}", cfg.extraction_max_tokens)
        try:
            if fmt == "json":
                result = await llm.chat(messages, sampling, response_model=_model_for(types))
            else:
                result = await llm.chat(messages, sampling)
            text = result.text
            tokens += 0 if result.cached else result.completion_tokens
            cached = cached and result.cached
        except LLMError as exc:
            if exc.kind != "invalid_structured_output" or not exc.raw:
                if found is not None:  # a failed gleaning round keeps what the first rounds found
                    found.repairs["gleaning_failed"] += 1
                    break
                raise
            text = exc.raw  # schema-invalid (cut off, a bad type): the tolerant parser reads it
            cached = False
        raws.append(text)
        try:
            parsed = parse_extraction(text, types, fmt)
        except ExtractionParseError as exc:
            if found is None:
                raise LLMError("unparseable_extraction", str(exc).split(": ", 1)[-1], raw=text) from None
            found.repairs["gleaning_unparseable"] += 1
            break
        if found is None:
            found = parsed
        elif found.merge(parsed) == 0:
            break
    link_relations(found)
    ground_in_chunk(found, chunk["text"], cfg.entity_grounding_threshold)
    return {"extraction": found, "raw": "\n\n---\n\n".join(raws), "cached": cached, "completion_tokens": tokens}


def extract(run: StageRun[KnowledgeGraphConfig], chunks: list[dict]) -> None:
    """Per chunk, the entities (name, type from `entity_types`, description) and relations (source,
    target, description, strength 1-10): JSON with the endpoint's structured output, or GraphRAG's
    delimited tuples, read by a tolerant parser; `gleaning_rounds` more rounds ask for what was
    missed. Entities whose names the chunk does not contain (`entity_grounding_threshold`) are
    dropped with their relations. An answer with nothing usable fails the chunk with its raw text;
    a chunk left without entities is filtered. With no_llm, co-occurrence extraction."""
    cfg = run.cfg
    if cfg.no_llm:
        done = [(c, {"extraction": cooccur(c["text"], cfg.types), "raw": None}) for c in chunks]
    else:
        fmt = extraction_format(run)
        run.info["extraction_format"] = fmt
        rounds = run.info["gleaning_rounds"] = gleaning_rounds(cfg, run.endpoint)
        done = run.llm_calls(chunks, lambda c: extract_chunk(run.llm, cfg, c, fmt, rounds))
    for c, out in done:
        ex = out["extraction"]
        for kind, n in ex.repairs.items():
            run.counts[f"repair_{kind}"] += n
        if not ex.entities:
            run.filtered(c["id"], "no_entities: the extraction found no entity", raw=out["raw"])
            continue
        run.counts["entities"] += len(ex.entities)
        run.counts["relations"] += len(ex.relations)
        run.kept(c["id"], c | {"entities": json.dumps(ex.entities, ensure_ascii=False),
                               "relations": json.dumps(ex.relations, ensure_ascii=False),
                               "repairs": json.dumps(dict(ex.repairs)), "raw": out["raw"]})


# --------------------------------------------------------------------------------------------
# graph
# --------------------------------------------------------------------------------------------
def _join(descriptions: list[str], limit: int) -> str:
    text = " ".join(descriptions)
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def build_graph(run: StageRun[KnowledgeGraphConfig], extractions: list[dict]) -> None:
    """Resolve the entities of all chunks into one set (normalised names, possessives, rapidfuzz
    within a type, `fuzzy_threshold`; aliases and source chunks kept), merge relations per entity
    pair, summarise merged descriptions longer than `summary_min_chars` (LLM), build the networkx
    graph and its hierarchical Leiden communities (graspologic-native, seeded with `seed`). Writes
    entities, relationships, communities and text_units .parquet and graph.graphml under graph/;
    its records are the communities to report on (at most `max_reports`)."""
    cfg, store = run.cfg, run.store
    found, relations = [], []
    for x in sorted(extractions, key=lambda x: x["id"]):
        for e in json.loads(x["entities"]):
            found.append(Mention(e["name"], e["type"], e["description"], x["id"]))
        for r in json.loads(x["relations"]):
            relations.append(r | {"chunk_id": x["id"]})
        run.kept(x["id"])
    resolved, key_to_id, rules = resolve(found, cfg.fuzzy_threshold)
    merged, rel_counts = G.merge_relations(relations, key_to_id)
    run.counts.update(rel_counts)

    # descriptions: joined, or summarised by the LLM when long
    entities = [{"id": e.id, "title": e.title, "type": e.type, "aliases": e.aliases,
                 "text_unit_ids": e.text_unit_ids, "descriptions": e.descriptions} for e in resolved]
    title = {e["id"]: e["title"] for e in entities}
    items = [{"id": e["id"], "what": f"{e['type']} entity", "name": e["title"], "descriptions": e["descriptions"]}
             for e in entities] + \
            [{"id": r["id"], "what": "relationship", "name": f"{title[r['source_id']]} - {title[r['target_id']]}",
              "descriptions": r["descriptions"]} for r in merged]
    long_ = [i for i in items if len(" ".join(i["descriptions"])) > cfg.summary_min_chars and len(i["descriptions"]) > 1]
    summaries: dict[str, str] = {}
    if long_ and not cfg.no_llm:
        answered = run.llm_calls(long_, lambda i: run.llm.chat(_prompt(
            "summarize", what=i["what"], name=i["name"], descriptions="\n".join(f"- {d}" for d in i["descriptions"])),
            cfg.sampling(f"{i['id']}:summary", 256)),
            # a failed summary falls back to the joined text: an audit row, the entity goes on
            on_failure=lambda i, exc: run.audit(i["id"], reason=f"summary_failed: {exc}", raw=exc.raw))
        summaries = {i["id"]: " ".join(r.text.split()) for i, r in answered if r.text.strip()}
        run.counts["descriptions_summarised"] += len(summaries)
    for e in entities:
        e["description"] = summaries.get(e["id"]) or _join(e["descriptions"], max(cfg.summary_min_chars, 300))
    for r in merged:
        r["description"] = summaries.get(r["id"]) or _join(r["descriptions"], max(cfg.summary_min_chars, 300))

    ent_rows, rel_rows = G.tables(entities, merged)
    g = G.to_networkx(ent_rows, rel_rows)
    comm_rows = G.communities(g, cfg.max_cluster_size, cfg.seed, G.ingest_period(run.layout.partition))
    community_of = G.finest_community(comm_rows)
    in_chunk: dict[str, tuple[set, set]] = {x["id"]: (set(), set()) for x in extractions}
    for e in ent_rows:
        for u in e["text_unit_ids"]:
            in_chunk[u][0].add(e["id"])
    for r in rel_rows:
        for u in r["text_unit_ids"]:
            in_chunk[u][1].add(r["id"])
    units = [{"id": x["id"], "human_readable_id": k, "text": x["text"], "n_tokens": x["n_tokens"],
              "document_id": x["document"], "entity_ids": sorted(in_chunk[x["id"]][0]),
              "relationship_ids": sorted(in_chunk[x["id"]][1]), "covariate_ids": [],  # no claim extraction
              "document_ids": [x["document"]], "source_file": x["source_file"]}
             for k, x in enumerate(sorted(extractions, key=lambda x: x["id"]))]
    folder = run.artifact("graph")
    # explicit schemas: a table with no rows (a run without relations) keeps GraphRAG's columns
    store.write_parquet(f"{folder}/entities.parquet", ent_rows, G.table_schema("entities"))
    store.write_parquet(f"{folder}/relationships.parquet", rel_rows, G.table_schema("relationships"))
    store.write_parquet(f"{folder}/communities.parquet", comm_rows, G.table_schema("communities"))
    store.write_parquet(f"{folder}/text_units.parquet", units, G.table_schema("text_units"))
    store.write_bytes(f"{folder}/graph.graphml", G.graphml(g, community_of))

    ref = {e["id"]: f"e{e['human_readable_id']}" for e in ent_rows}
    rref = {r["id"]: f"r{r['human_readable_id']}" for r in rel_rows}
    by_id = {e["id"]: e for e in ent_rows}
    rel_by_id = {r["id"]: r for r in rel_rows}
    reportable = sorted((c for c in comm_rows if c["size"] >= 2), key=lambda c: (c["level"], -c["size"], c["community"]))
    for c in reportable[: cfg.max_reports]:
        ents = sorted(c["entity_ids"], key=lambda e: -by_id[e]["degree"])
        rels = sorted(c["relationship_ids"], key=lambda r: -rel_by_id[r]["weight"])
        run.emit({"id": f"community-{c['community']}", "community": c["community"], "level": c["level"],
                  "parent": c["parent"], "children": c["children"], "size": c["size"],
                  "entity_ids": c["entity_ids"], "relationship_ids": c["relationship_ids"],
                  "text_unit_ids": c["text_unit_ids"],
                  "entities": json.dumps([{"ref": ref[e], "id": e, "title": by_id[e]["title"], "type": by_id[e]["type"],
                                           "description": by_id[e]["description"][:300]} for e in ents[:40]],
                                         ensure_ascii=False),
                  "relationships": json.dumps([{"ref": rref[r], "id": r, "source": rel_by_id[r]["source"],
                                                "target": rel_by_id[r]["target"],
                                                "description": rel_by_id[r]["description"][:300],
                                                "weight": rel_by_id[r]["weight"]} for r in rels[:60]],
                                              ensure_ascii=False)})
    run.counts["communities_without_report"] += len(comm_rows) - min(len(reportable), cfg.max_reports)
    run.info["graph"] = {"mentions": len(found), "entities": len(ent_rows), "relationships": len(rel_rows),
                         "communities": len(comm_rows), "levels": len({c["level"] for c in comm_rows}),
                         "merges": dict(sorted(rules.items())), "isolated_entities": sum(
                             1 for e in ent_rows if e["degree"] == 0), "url": folder}


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
# No maxLength on strings in these schemas (see extraction_model); small list bounds stay.
class Finding(BaseModel):
    summary: str = Field(min_length=1)
    explanation: str
    entity_ids: list[str] = Field(default_factory=list)
    relationship_ids: list[str] = Field(default_factory=list)


class CommunityReportOut(BaseModel):
    title: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    rating: float = Field(ge=0, le=10)
    rating_explanation: str
    findings: list[Finding] = Field(min_length=1, max_length=5)


def template_report(community: dict) -> dict:
    """The no-LLM report: the community's best-connected entities and its strongest relations."""
    ents = json.loads(community["entities"])
    rels = json.loads(community["relationships"])
    names = [e["title"] for e in ents[:4]]
    findings = [{"summary": f"{r['source']} is related to {r['target']}", "explanation": r["description"],
                 "entity_ids": [e["ref"] for e in ents if e["title"] in (r["source"], r["target"])],
                 "relationship_ids": [r["ref"]]} for r in rels[:3]]
    return {"title": "Community of " + ", ".join(names), "summary": f"{community['size']} entities, among them "
            f"{', '.join(names)}, joined by {len(json.loads(community['relationships']))} relationships.",
            "rating": min(10.0, float(community["size"])), "rating_explanation": "Rated by the community's size.",
            "findings": findings}


def ground_report(community: dict, out: dict) -> tuple[dict | None, Counter]:
    """The report with its findings' ids turned from prompt refs (e3, r7) into entity and relation
    ids; unknown refs dropped, a finding left with none dropped; None when no finding is left."""
    ents = {e["ref"]: e["id"] for e in json.loads(community["entities"])}
    rels = {r["ref"]: r["id"] for r in json.loads(community["relationships"])}
    dropped: Counter = Counter()
    findings = []
    for f in out["findings"]:
        eids = [ents[x.strip().lower()] for x in f["entity_ids"] if x.strip().lower() in ents]
        rids = [rels[x.strip().lower()] for x in f["relationship_ids"] if x.strip().lower() in rels]
        dropped["unknown_ref"] += len(f["entity_ids"]) + len(f["relationship_ids"]) - len(eids) - len(rids)
        if not eids and not rids:
            dropped["ungrounded_finding"] += 1
            continue
        findings.append({"summary": f["summary"].strip(), "explanation": f["explanation"].strip(),
                         "entity_ids": list(dict.fromkeys(eids)), "relationship_ids": list(dict.fromkeys(rids))})
    if not findings:
        return None, dropped
    return out | {"findings": findings}, dropped


def _report_record(c: dict, out: dict, model: str) -> dict:
    full = {"title": out["title"], "summary": out["summary"], "rating": out["rating"],
            "rating_explanation": out["rating_explanation"], "findings": out["findings"]}
    content = f"# {out['title']}\n\n{out['summary']}\n\n" + "\n\n".join(
        f"## {f['summary']}\n\n{f['explanation']}" for f in out["findings"])
    return {"id": c["id"], "community": c["community"], "level": c["level"], "parent": c["parent"],
            "children": c["children"], "size": c["size"], "title": out["title"], "summary": out["summary"],
            "full_content": content, "rank": float(out["rating"]), "rating_explanation": out["rating_explanation"],
            "findings": json.dumps(out["findings"], ensure_ascii=False),
            "full_content_json": json.dumps(full, ensure_ascii=False), "entity_ids": c["entity_ids"],
            "text_unit_ids": c["text_unit_ids"], "entities": c["entities"], "model": model}


def report(run: StageRun[KnowledgeGraphConfig], communities: list[dict]) -> None:
    """A report per community (structured output, validated by its schema): title, summary, rating,
    and 1-5 findings each naming the entity and relationship ids it rests on. Ids not in the
    community are dropped; a report left without a grounded finding is filtered."""
    cfg = run.cfg
    if cfg.no_llm:
        answered = [(c, {"out": template_report(c), "model": "template"}) for c in communities]
    else:
        def ask(c: dict):
            ents = "\n".join(f"{e['ref']}, {e['title']}, {e['type']}, {e['description']}" for e in json.loads(c["entities"]))
            rels = "\n".join(f"{r['ref']}, {r['source']}, {r['target']}, {r['description']}"
                             for r in json.loads(c["relationships"]))
            return run.llm.chat(_prompt("community_report", entities=ents, relationships=rels or "(none)"),
                                cfg.sampling(f"{c['id']}:report"), response_model=CommunityReportOut)

        answered = [(c, {"out": r.parsed.model_dump(), "model": r.model, "raw": r.text})
                    for c, r in run.llm_calls(communities, ask)]
    for c, a in answered:
        grounded, dropped = ground_report(c, a["out"])
        for k, n in dropped.items():
            run.counts[k] += n
        if grounded is None:
            run.filtered(c["id"], "no_grounded_findings: no finding names an entity or relationship of the community",
                         raw=a.get("raw"))
            continue
        run.kept(c["id"], _report_record(c, grounded, a["model"]))


# --------------------------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------------------------
def load_graph(store, folder: str):
    ents = store.read_parquet(f"{folder}/entities.parquet")
    rels = store.read_parquet(f"{folder}/relationships.parquet")
    return G.to_networkx(ents, rels), ents, rels


def _short(eid: str) -> str:
    return eid[:8]


# Every plan job has these fields (a global job leaves the path ones empty, a path job the report ones).
EMPTY_JOB = {"hops": None, "path": None, "path_titles": None, "path_names": None, "hop_chunk_ids": None,
             "hop_relations": None, "hop_types": None, "hop_evidence": None,
             "end_candidates": None, "last_chunk_text": None, "report_title": None, "report_summary": None,
             "report_findings": None, "report_entities": None, "split_group": None}


def plan(run: StageRun[KnowledgeGraphConfig], reports: list[dict]) -> None:
    """Write community_reports.parquet; plan a global question per report (`global_questions`) and
    sample `paths_per_length` paths of each of `path_hops` hops whose edges come from different
    chunks (from different documents where the graph allows), never through an entity whose name is
    no name ("and", "1, 2, 3"). A path with a one-hop shortcut edge is filtered (shortcut_edge); with
    an LLM, so is a path whose answer is not the only entity reachable from its start along its
    relation types (not_unique), before any question is written. With no_llm the paths become
    graph-walk records, not questions."""
    cfg, store = run.cfg, run.store
    folder = run.artifact("graph")
    g, _, _ = load_graph(store, folder)
    units = {u["id"]: u for u in store.read_parquet(f"{folder}/text_units.parquet")}
    comm_rows = store.read_parquet(f"{folder}/communities.parquet")
    community_of = G.finest_community(comm_rows)
    root_of = G.root_community(comm_rows)
    store.write_parquet(f"{folder}/community_reports.parquet",
                        G.report_rows(reports, G.ingest_period(run.layout.partition)),
                        G.table_schema("community_reports"))
    chunk_doc = {u: units[u]["document_id"] for u in units}

    def doc_of(chunk_ids: list[str]) -> str:
        docs = Counter(chunk_doc[c] for c in chunk_ids if c in chunk_doc)
        return sorted(docs, key=lambda d: (-docs[d], d))[0] if docs else "unknown"

    for r in sorted(reports, key=lambda r: r["id"]):
        if not cfg.global_questions:
            run.kept(r["id"])
            continue
        # a report overlaps its parent's and children's: all questions under one top-level community
        # go to the same side of the split
        run.kept(r["id"], EMPTY_JOB | {
            "id": f"{r['id']}:global", "kind": "global", "community": r["community"],
            "source_document": doc_of(r["text_unit_ids"]), "report_title": r["title"],
            "report_summary": r["summary"], "report_findings": r["findings"], "report_entities": r["entities"],
            "split_group": f"community-{root_of.get(r['community'], r['community'])}"})

    typed = typed_edges(g)
    not_names = {n for n in g.nodes if entity_name_problem(g.nodes[n]["title"]) is not None}
    run.counts["entities_not_names"] += len(not_names)
    kind = "graph_walk" if cfg.no_llm else "multi_hop"
    for hops in cfg.path_hops:
        kept = 0
        for p in sample_paths(g, hops, cfg.paths_per_length, cfg.seed, chunk_doc, typed=typed,
                              require_unique=kind == "multi_hop", excluded=not_names):
            path, chunks, labels = p["path"], p["chunks"], p["labels"]
            pid = f"path{hops}:" + "-".join(_short(n) for n in path)
            titles = [g.nodes[n]["title"] for n in path]
            shown = " -> ".join(titles)
            run.created(pid)
            if p["shortcut"] is not None:
                a, b = p["shortcut"]
                run.filtered(pid, f"shortcut_edge: {g.nodes[a]['title']!r} and {g.nodes[b]['title']!r} are one hop "
                                  f"apart", path=shown)
                continue
            if kind == "multi_hop" and p["reachable"] != [path[-1]]:
                run.filtered(pid, f"not_unique: {len(p['reachable'])} entities are reachable from {titles[0]!r} "
                                  f"along {' / '.join(labels)}", path=shown)
                continue
            if kept >= cfg.paths_per_length:
                run.filtered(pid, f"not_sampled: {cfg.paths_per_length} paths of {hops} hops already planned",
                             path=shown)
                continue
            kept += 1
            edges = list(zip(path, path[1:]))
            run.kept(pid, EMPTY_JOB | {
                "id": pid, "kind": kind, "hops": hops, "community": community_of.get(path[0], -1),
                "source_document": chunk_doc[chunks[0]], "path": path, "path_titles": titles,
                "path_names": [names_of(g, n) for n in path], "hop_chunk_ids": chunks,
                "hop_relations": [g.edges[a, b]["description"] for a, b in edges], "hop_types": labels,
                "hop_evidence": [hop_evidence(units[c]["text"], names_of(g, a), names_of(g, b),
                                              g.edges[a, b]["description"]) for c, (a, b) in zip(chunks, edges)],
                "end_candidates": len(p["reachable"]), "last_chunk_text": units[chunks[-1]]["text"]})
        run.counts[f"paths_{hops}_hops"] += kept


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------
PIECE_MAX_TOKENS = 64  # a clue or a one-hop question: a line, never a paragraph


class GlobalQAOut(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    supporting_entity_ids: list[str] = Field(default_factory=list)


def _facts(job: dict) -> list[str]:
    titles = job["path_titles"]
    return [state_hop(titles[k], label, titles[k + 1]) for k, label in enumerate(job["hop_types"])]


def piece_messages(job: dict, k: int) -> list[dict]:
    """The prompt for hop k's piece (paths.py): a clue describing the hop's second entity through
    its first, or, for the last hop, a question naming its first entity and answered by its second.
    The hop is given as the fact its type states (its relation's description where the type is
    the generic one) and its evidence sentence."""
    titles = job["path_titles"]
    label = job["hop_types"][k]
    fact = (state_hop(titles[k], label, titles[k + 1]) if label != GENERIC_RELATION
            else (sentences(job["hop_relations"][k]) or [""])[0])
    last = k == len(titles) - 2
    return _prompt("path_question" if last else "path_clue", fact=fact, evidence=job["hop_evidence"][k],
                   source=titles[k], target=titles[k + 1])


def piece_text(text: str) -> str:
    """A piece as the model wrote it: its first line, without a label ("Description:") or quotes
    around it."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"^(?:description|question)\s*:\s*", "", line.strip(), flags=re.IGNORECASE)
    return " ".join(line.split()).strip('"\'“”')


async def ask_pieces(llm, cfg: KnowledgeGraphConfig, job: dict) -> dict:
    """A path's pieces, one short call per hop: {"pieces": [clue, ..., question], "truncated": the
    hops whose answer was cut at ``PIECE_MAX_TOKENS``, "model", "raw", and the token counts the
    stage's progress reads}."""
    results = await asyncio.gather(*(
        llm.chat(piece_messages(job, k), cfg.sampling(f"{job['id']}:{k}", max_tokens=PIECE_MAX_TOKENS))
        for k in range(len(job["path"]) - 1)))
    texts = [piece_text(r.text) for r in results]
    return {"pieces": texts, "truncated": [k + 1 for k, r in enumerate(results) if r.finish_reason == "length"],
            "model": results[0].model, "raw": json.dumps([r.text for r in results], ensure_ascii=False),
            "cached": all(r.cached for r in results), "completion_tokens": sum(r.completion_tokens for r in results)}


def global_messages(job: dict) -> list[dict]:
    findings = "\n".join(f"- {f['summary']}: {f['explanation']}" for f in json.loads(job["report_findings"]))
    ents = "\n".join(f"{e['ref']}, {e['title']}" for e in json.loads(job["report_entities"]))
    return _prompt("global_question", title=job["report_title"], summary=job["report_summary"], findings=findings,
                   entities=ents)


def template_global_qa(job: dict) -> dict:
    """The no-LLM question about a community report (deterministic)."""
    ents = json.loads(job["report_entities"])
    findings = json.loads(job["report_findings"])
    return {"question": f"What are the main themes around {', '.join(e['title'] for e in ents[:2])} in these "
                        "documents, and how do they relate?",
            "answer": job["report_summary"] + " " + " ".join(f["summary"] + "." for f in findings),
            "supporting_entity_ids": [e["ref"] for e in ents[:5]]}


def generate(run: StageRun[KnowledgeGraphConfig], jobs: list[dict]) -> None:
    """Compose a question along each path from one-hop pieces the model writes, one short call per
    hop (paths.py: a clue per hop but the last, a question about the last hop; a piece cut at its
    token limit, or that does not name the entity it is built on, is filtered), its answer the end
    entity and one reasoning step per hop naming its chunk; or write a question about each
    community report (with the ids of the entities it rests on; structured output). With no_llm,
    template questions about the reports, and the paths pass on as graph walks without a question."""
    cfg = run.cfg
    asked = [j for j in jobs if j["kind"] != "graph_walk"]
    if cfg.no_llm:
        done = [(j, template_global_qa(j), "template", None) for j in asked]
    else:
        def ask(job: dict):
            if job["kind"] == "multi_hop":
                return ask_pieces(run.llm, cfg, job)
            return run.llm.chat(global_messages(job), cfg.sampling(job["id"]), response_model=GlobalQAOut)

        done = []
        for job, r in run.llm_calls(asked, ask):
            if job["kind"] == "multi_hop":
                done.append((job, r, r["model"], r["raw"]))
            else:
                done.append((job, r.parsed.model_dump(), r.model, r.text))
    answered = {job["id"]: (qa, model, raw) for job, qa, model, raw in done}
    # In the shard's order, so the published order does not depend on where the shards are cut.
    for job in jobs:
        if job["kind"] == "graph_walk":  # no question is written along a walk: it is published as what it is
            run.kept(job["id"], job | {"question": None, "answer": None, "qa": None, "model": None, "raw": None})
            continue
        if job["id"] not in answered:  # its call failed: llm_calls accounted for it
            continue
        qa, model, raw = answered[job["id"]]
        if job["kind"] == "multi_hop":
            *clues, last = qa["pieces"]
            pieces = {"clues": clues, "question": last}
            if qa["truncated"]:
                run.filtered(job["id"], f"truncated: the piece of hop {qa['truncated'][0]} was cut at "
                                        f"{PIECE_MAX_TOKENS} tokens",
                             pieces=json.dumps(pieces, ensure_ascii=False), raw=raw)
                continue
            question, problem = compose_question(job["path_names"], clues, last)
            if problem is not None:
                run.filtered(job["id"], problem, pieces=json.dumps(pieces, ensure_ascii=False), raw=raw)
                continue
            qa = {"question": question, "answer": job["path_titles"][-1], "pieces": pieces,
                  "reasoning_steps": path_steps(job["path_titles"], job["hop_chunk_ids"], clues, last)}
        if not qa["question"].strip() or not qa["answer"].strip():
            run.failed(job["id"], "invalid_structured_output: blank question or answer", raw=raw)
            continue
        run.kept(job["id"], job | {"question": " ".join(qa["question"].split()), "answer": qa["answer"].strip(),
                                   "qa": json.dumps(qa, ensure_ascii=False), "model": model, "raw": raw})


# --------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------
def check_global(job: dict, qa: dict):
    refs = {e["ref"]: e["id"] for e in json.loads(job["report_entities"])}
    given = [x.strip().lower() for x in qa.get("supporting_entity_ids") or []]
    unknown = [x for x in given if x not in refs and x not in refs.values()]
    if not given:
        return drop("no_supporting_entities: the answer names no entity of the report"), []
    if unknown:
        return drop(f"unknown_entities: {unknown[:3]} are not entities of community {job['community']}"), []
    return KEEP, list(dict.fromkeys(refs.get(x, x) for x in given))


def walk_text(job: dict) -> str:
    """A graph walk written out: its facts in order, then each hop's evidence with its chunk id."""
    evidence = [f"[{c}] {e}" for c, e in zip(job["hop_chunk_ids"], job["hop_evidence"])]
    return "\n".join([" ; ".join(_facts(job)), *evidence])


def check(run: StageRun[KnowledgeGraphConfig], candidates: list[dict]) -> None:
    """Keep a composed path question only when it passes the path rules (paths.py: no shortcut
    edge, the answer the only entity reachable along the path's relation types and occurring in the
    last hop's chunk, the start named, no bridge entity nor the answer named, no hop's evidence
    copied); a global question must rest on entities of its report; a graph walk was checked when it
    was planned. Local retrieval (personalised PageRank from the entities the question names, or
    from a walk's start: the top `retrieval_k` chunks) and global retrieval (the best-matching
    community reports) are recorded with each kept record, and how many hop chunks (own reports)
    they find counted."""
    cfg = run.cfg
    g, _, _ = load_graph(run.store, run.artifact("graph")) if candidates else (None, None, None)
    typed = typed_edges(g) if any(c["kind"] == "multi_hop" for c in candidates) else None
    index = name_index(g) if g is not None else []
    reports = run.store.read_parquet(f"{run.artifact('graph')}/community_reports.parquet") if candidates else []
    for c in candidates:
        qa = json.loads(c["qa"]) if c["qa"] else None
        if c["kind"] == "multi_hop":
            verdict = check_path_qa(c, c["question"], g, typed)
            support = list(c["path"])
        elif c["kind"] == "graph_walk":
            verdict, support = KEEP, list(c["path"])
        else:
            verdict, support = check_global(c, qa)
        if not verdict.keep:
            run.filtered(c["id"], verdict.reason, question=c["question"], answer=c["answer"], raw=c["raw"])
            continue
        seeds = [c["path"][0]] if c["kind"] == "graph_walk" else mentions(c["question"], index)
        retrieved = [u for u, _ in local_chunks(g, seeds, cfg.retrieval_k)]
        query = c["question"] or " ".join(c["path_titles"])
        communities = [int(r["community"]) for r in global_reports(reports, query, cfg.retrieval_k)]
        if c["kind"] == "global":
            run.counts["global_report_found"] += c["community"] in communities
            steps, chunk_ids = [], []
        else:
            steps = qa["reasoning_steps"] if qa else []
            chunk_ids = list(c["hop_chunk_ids"])
            hits = sum(u in retrieved for u in chunk_ids)
            run.counts["ppr_hop_chunks"] += len(chunk_ids)
            run.counts["ppr_hop_chunks_found"] += hits
            run.counts["ppr_all_hops_found"] += hits == len(chunk_ids)
        run.counts[f"kept_{c['kind']}"] += 1
        if c["kind"] == "graph_walk":
            messages, text = [], walk_text(c)
        else:
            answer = c["answer"] if not steps else " ".join(s.split("] ", 1)[1] for s in steps) + f"\n\n{c['answer']}"
            messages = [{"role": "user", "content": c["question"]}, {"role": "assistant", "content": answer}]
            text = f"{c['question']}\n\n{answer}"
        run.kept(c["id"], {
            "id": c["id"], "kind": c["kind"], "hops": c["hops"], "question": c["question"], "answer": c["answer"],
            "reasoning_steps": steps, "path": c["path"], "path_titles": c["path_titles"],
            "relation_types": c["hop_types"], "evidence": c["hop_evidence"], "end_candidates": c["end_candidates"],
            "chunk_ids": chunk_ids, "community": c["community"], "supporting_entity_ids": support,
            "source_document": c["source_document"], "split_group": c["split_group"], "local_context": retrieved,
            "global_context": communities, "messages": messages, "text": text, "model": c["model"]})


# --------------------------------------------------------------------------------------------
# export: the split groups, and the graph files beside the records
# --------------------------------------------------------------------------------------------
def with_split_groups(records: list[dict]) -> list[dict]:
    """The final records with ``split_group``, the export's group key: records that share a hop chunk,
    directly or through others (union-find over chunk ids), are one group, so every chunk lies on one
    side of the split. A global question keeps the group plan gave it (its top-level community)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in records:
        for c in r["chunk_ids"][1:]:
            a, b = find(r["chunk_ids"][0]), find(c)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the smallest chunk id names the group: order-independent
    return [r | {"split_group": f"chunks-{find(r['chunk_ids'][0])}"} if r["chunk_ids"] else r for r in records]


def export_graph_files(ctx: ExportContext, train: list[dict], validation: list[dict]) -> dict[str, str]:
    """entities / relationships / communities / community_reports / text_units .parquet and
    graph.graphml, copied from the run's graph/ folder into final/graph/."""
    folder = ctx.artifact("graph")
    out = {}
    for name in GRAPH_FILES:
        src = f"{folder}/{name}"
        if ctx.store.exists(src):
            out[f"graph_{name.split('.')[0]}"] = ctx.store.write_bytes(f"{ctx.final_dir}/graph/{name}",
                                                                       ctx.store.read_bytes(src))
    return out


# --------------------------------------------------------------------------------------------
# the shard plan: seconds of work per record of a shard (Stage(cost=...) in METHOD)
# --------------------------------------------------------------------------------------------
# Seconds of work per record of a shard, for the shard plan. The text figures are no-LLM runs of
# the shipped sample on 2 loaded cores (12 chunks, 4 communities, 9 paths); check's includes its
# retrieval (personalised PageRank over the graph) for every record.
EXTRACT_HEURISTIC_SECONDS = 0.0015
REPORT_TEMPLATE_SECONDS = 0.0013
GENERATE_WALK_SECONDS = 0.0008
CHECK_SECONDS = 0.011


def extract_cost(cfg: KnowledgeGraphConfig) -> float:
    if cfg.no_llm:
        return EXTRACT_HEURISTIC_SECONDS
    rounds = 1 + (cfg.gleaning_rounds if cfg.gleaning_rounds is not None else 1)  # the first answer, then gleaning
    return llm_seconds(cfg, requests=rounds, max_tokens=cfg.extraction_max_tokens)


def report_cost(cfg: KnowledgeGraphConfig) -> float:
    return REPORT_TEMPLATE_SECONDS if cfg.no_llm else llm_seconds(cfg, requests=1)


def generate_cost(cfg: KnowledgeGraphConfig) -> float:
    return GENERATE_WALK_SECONDS if cfg.no_llm else llm_seconds(cfg, requests=1)
