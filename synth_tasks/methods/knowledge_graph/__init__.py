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

from synth_tasks.method import Export, Method, Stage
from synth_tasks.methods.knowledge_graph.config import KnowledgeGraphConfig
from synth_tasks.methods.knowledge_graph.stages import (CHECK_SECONDS, build_graph, check, export_graph_files, extract,
                                                        extract_cost, generate, generate_cost, plan, prepare, report,
                                                        report_cost, with_split_groups)

METHOD = Method(
    dag_id="knowledge_graph",
    config=KnowledgeGraphConfig,
    input_files=("**/*.md", "**/*.txt", "**/*.jsonl", "**/*.parquet"),
    stages=(
        Stage("prepare", prepare, mapped=False),
        Stage("extract", extract, llm="llm_conn_id", cost=extract_cost),
        Stage("graph", build_graph, mapped=False, llm="llm_conn_id", artifacts=("graph",)),
        Stage("report", report, llm="llm_conn_id", cost=report_cost),
        Stage("plan", plan, mapped=False),
        Stage("generate", generate, llm="llm_conn_id", cost=generate_cost),
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
