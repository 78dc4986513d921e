"""Research papers to grounded QA: PDFs become a structured extraction (blocks in reading order with
their pages and bounding boxes: headings, paragraphs, tables as grids, figure captions with the
figure's region and a PNG of it, equations, references), published for other DAGs, then
question-answer pairs whose every answer cites the pages and quotes that support it.

Stages (declared in ``METHOD`` at the end):
    extract   .pdf files    -> one record per paper: its blocks and figure crops; a bad PDF fails alone
                               (encrypted, not a PDF, truncated, no text layer, no pages)   (one task)
    describe  papers        -> figure descriptions from a vision endpoint (describe_figures)  (mapped, LLM)
    publish   papers        -> {partition}/publish/{paper}/papers.parquet, paper.md, figures/*.png;
                               updates the Airflow Asset "papers/extracted"                  (one task)
    plan      papers        -> QA jobs: per section context the types drawn by weight, plus
                               multi-hop jobs over two sections                              (mapped)
    generate  jobs          -> question, answer, citations [{page, block_id, quote}], steps   (mapped, LLM)
    ground    pairs         -> pairs whose every quote is on its cited page (and, for numeric
                               questions, whose numbers are in the cited table)              (mapped)
    dedup     all pairs     -> near-duplicate questions removed per paper                   (one task)
    render    unique pairs  -> chat records, citations rendered as "(p. 4)"                  (mapped)
    export    (core)        -> train/validation grouped by paper

Heavy imports (pdfplumber, pypdfium2, the LLM client) happen inside the stage functions: the DAG
file imports this module when Airflow parses it.
"""

from __future__ import annotations

from synth_tasks.method import Export, Method, Stage
from synth_tasks.methods.papers.config import PapersConfig
from synth_tasks.methods.papers.stages import (ASSET, PLAN_SECONDS, RENDER_SECONDS, dedup, describe, describe_cost,
                                               extract_papers, generate, generate_cost, ground, ground_cost, plan,
                                               publish, render_pairs)

METHOD = Method(
    dag_id="papers",
    config=PapersConfig,
    input_files=("**/*.pdf",),
    stages=(
        Stage("extract", extract_papers, mapped=False),
        Stage("describe", describe, llm="vision_conn_id", cost=describe_cost),
        Stage("publish", publish, mapped=False, asset=ASSET),
        Stage("plan", plan, cost=PLAN_SECONDS),
        Stage("generate", generate, llm="llm_conn_id", cost=generate_cost),
        Stage("ground", ground, cost=ground_cost),
        Stage("dedup", dedup, mapped=False),
        Stage("render", render_pairs, cost=RENDER_SECONDS),
    ),
    export=Export(group_key="paper_id"),
    tags=("qa", "papers", "fine-tuning"),
)
