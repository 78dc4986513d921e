"""Knowledge graph, after Edge et al. 2024 ("From Local to Global: A Graph RAG Approach to
Query-Focused Summarization", arXiv 2404.16130) and HippoRAG (Gutiérrez et al. 2024): entities and
relations from documents, resolved into one graph, hierarchical communities with LLM reports, and
multi-hop question-answer data whose reasoning path is a path in that graph, each hop grounded in
the chunk it came from, its answer the only entity the path's relation types lead to.

Stages (declared in ``METHOD`` at the end):
    prepare   .md / .txt files, text JSONL/Parquet rows, the papers DAG's papers.parquet
                           -> token chunks (chunk_tokens, chunk_overlap)                 (one task)
    extract   chunks       -> entities {name, type, description} and relations {source, target,
                              description, strength}: JSON where the endpoint constrains output,
                              else GraphRAG's tuples, read tolerantly; gleaning rounds   (mapped, LLM)
    graph     extractions  -> entity resolution (normalised names, possessives, rapidfuzz within a
                              type; aliases and source chunks kept), long merged descriptions
                              summarised, networkx graph, hierarchical Leiden (seeded); writes
                              entities / relationships / communities / text_units .parquet in
                              GraphRAG's schema and graph.graphml                        (one task, LLM)
    report    communities  -> a report per community: title, summary, rating, findings with the
                              entity and relationship ids they rest on (checked)        (mapped, LLM)
    plan      reports      -> community_reports.parquet; 2- and 3-hop paths (edges from different
                              chunks, no shortcut edge, no entity that is no name; with an LLM, the
                              answer the only entity reachable along the path's relation types)
                              and global jobs                                           (one task)
    generate  jobs         -> a question along each path / about each report            (mapped, LLM)
    check     questions    -> the path rules (paths.py: unique answer that is the end entity's
                              name, in the last hop's chunk, start named, no bridge named, no
                              evidence copied, every hop cited, no shortcut); local retrieval
                              (personalised PageRank) recorded per record               (mapped)
    export    (core)       -> train/validation grouped by split_group (records sharing a hop chunk,
                              transitively, are one group: every chunk on one side), and the graph
                              files in final/graph/

``no_llm``: extraction by capitalised-term and code-span co-occurrence and template reports: a
deterministic graph without a model (tests, demos). Its paths are published as ``graph_walk``
records (start entity, relation types, evidence chunks, end entity), never as questions. The LLM
path is the default. Heavy imports (networkx, graspologic-native, rapidfuzz, the LLM client,
pyarrow) happen inside the stages.
"""

from __future__ import annotations

from synth_tasks.method import Export, Method, Stage, llm_seconds
from synth_tasks.methods.knowledge_graph.config import KnowledgeGraphConfig
from synth_tasks.methods.knowledge_graph.stages import (build_graph, check, export_graph_files, extract, generate,
                                                        plan, prepare, report, with_split_groups)

# Seconds of work per record of a shard, for the shard plan. The text figures are no-LLM runs of
# the shipped sample on 2 loaded cores (12 chunks, 4 communities, 9 paths); check's includes its
# retrieval (personalised PageRank over the graph) for every record.
EXTRACT_HEURISTIC_SECONDS = 0.0015
REPORT_TEMPLATE_SECONDS = 0.0013
GENERATE_WALK_SECONDS = 0.0008
CHECK_SECONDS = 0.011


def _extract_cost(cfg: KnowledgeGraphConfig) -> float:
    if cfg.no_llm:
        return EXTRACT_HEURISTIC_SECONDS
    rounds = 1 + (cfg.gleaning_rounds if cfg.gleaning_rounds is not None else 1)  # the first answer, then gleaning
    return llm_seconds(cfg, requests=rounds, max_tokens=cfg.extraction_max_tokens)


METHOD = Method(
    dag_id="knowledge_graph",
    config=KnowledgeGraphConfig,
    input_files=("**/*.md", "**/*.txt", "**/*.jsonl", "**/*.parquet"),
    stages=(
        Stage("prepare", prepare, mapped=False),
        Stage("extract", extract, llm="llm_conn_id", cost=_extract_cost),
        Stage("graph", build_graph, mapped=False, llm="llm_conn_id", artifacts=("graph",)),
        Stage("report", report, llm="llm_conn_id",
              cost=lambda cfg: REPORT_TEMPLATE_SECONDS if cfg.no_llm else llm_seconds(cfg, requests=1)),
        Stage("plan", plan, mapped=False),
        Stage("generate", generate, llm="llm_conn_id",
              cost=lambda cfg: GENERATE_WALK_SECONDS if cfg.no_llm else llm_seconds(cfg, requests=1)),
        Stage("check", check, cost=CHECK_SECONDS),
    ),
    export=Export(group_key="split_group", records=with_split_groups, extra_files=export_graph_files, text_field="text",
                  license=("mit", "apache-2.0"), task_categories=("question-answering", "text-generation"),
                  input_source="the shipped sample, three chapters of *The Rust Programming Language*, MIT / "
                  "Apache-2.0 (include/sample_data/markdown_qa/ATTRIBUTION.md), and a service guide."),
    tags=("qa", "knowledge-graph", "fine-tuning"),
    # Daily, and whenever the papers DAG publishes an extraction. Such a run reads input_path like any
    # other: point it at the papers DAG's publish/ folder (its papers.parquet files) and list that
    # folder's root in $SYNTH_INPUT_ROOTS.
    triggered_by=("papers/extracted",),
)
