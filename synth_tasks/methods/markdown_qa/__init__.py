"""Markdown to QA: question-answer pairs with reasoning from a folder of markdown documents, rendered
at four chain-of-thought levels, for fine-tuning.

Stages (declared in ``METHOD`` below):
    prepare   .md files     -> sections (split on headings; code blocks and tables whole)
    facts     sections      -> facts per section (LLM, structured; or heuristic) and the planned
                               QA jobs (types drawn by the configured weights)         (mapped, LLM)
    generate  jobs          -> QA pairs: question, answer, reasoning steps, quotes     (mapped, LLM)
    ground    pairs         -> pairs each of whose quotes is in their section (fuzzy match) (mapped)
    dedup     all pairs     -> near-duplicate questions removed per document            (one task)
    render    unique pairs  -> every pair at the chosen CoT levels                      (mapped)
    export    (core)        -> train/validation grouped by source file, the conversation files

No-LLM mode uses heuristic facts (``heuristics``) and the factual-recall, true/false and
fill-in-the-blank types only; it is deterministic (same input, byte-identical output).

Modules: ``config`` (Params, QA types, CoT levels), ``stages`` (the stage functions and the export's
conversation files), ``heuristics`` (the no-LLM facts and pairs). Heavy imports happen inside the
stage functions: the DAG file imports this package at parse time for its declaration.
"""

from __future__ import annotations

from synth_tasks.method import Export, Method, Stage
from synth_tasks.methods.markdown_qa.config import MarkdownQAConfig
from synth_tasks.methods.markdown_qa.stages import (dedup, facts, facts_cost, generate, generate_cost, ground,
                                                    ground_cost, prepare, render_cost, render_pairs,
                                                    write_conversations)

METHOD = Method(
    dag_id="markdown_qa",
    config=MarkdownQAConfig,
    input_files=("**/*.md",),
    stages=(
        Stage("prepare", prepare, mapped=False),
        Stage("facts", facts, llm="llm_conn_id", cost=facts_cost),
        Stage("generate", generate, llm="llm_conn_id", cost=generate_cost),
        Stage("ground", ground, cost=ground_cost),
        Stage("dedup", dedup, mapped=False),
        Stage("render", render_pairs, cost=render_cost),
    ),
    export=Export(group_key="source_file", extra_files=write_conversations, text_field="messages",
                  license=("mit", "apache-2.0"), task_categories=("question-answering", "text-generation"),
                  input_source="the shipped sample, three chapters of *The Rust Programming Language*, MIT / "
                  "Apache-2.0 (include/sample_data/markdown_qa/ATTRIBUTION.md)."),
    tags=("qa", "fine-tuning"),
)
