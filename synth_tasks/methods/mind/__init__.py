"""MIND: math informed synthetic dialogues (Akter et al., 2024, arXiv 2410.12881).

Raw math text is cut into ~500-token contexts; each context is rewritten by the LLM into a
multi-turn conversation in one of seven styles, with the instruction to add nothing that is not in
the context. Short and degenerate conversations are dropped with their reason.

Stages (declared in ``METHOD`` below):
    prepare   input files -> generation jobs (one per context x style)
    generate  jobs        -> raw model outputs                          (mapped, LLM)
    filter    outputs     -> MIND conversations, or dropped with reasons (mapped)
    export    (core)      -> train/validation grouped by source document, and the run summary

Modules: ``config`` (Params, styles, dialogue formats), ``stages`` (the stage functions),
``dialogue`` ("Speaker: text" turns and their chat form). Heavy imports (pyarrow, openai) happen
inside the stage functions: the DAG file imports this package at parse time for its declaration.
"""

from __future__ import annotations

from synth_tasks.method import Export, Method, Stage
from synth_tasks.methods.mind.config import MindConfig
from synth_tasks.methods.mind.stages import FILTER_SECONDS, filter_conversations, generate, prepare

METHOD = Method(
    dag_id="mind",
    config=MindConfig,
    input_files=("*.jsonl", "*.parquet"),
    stages=(
        Stage("prepare", prepare, mapped=False),
        Stage("generate", generate, llm="llm_conn_id"),
        Stage("filter", filter_conversations, cost=FILTER_SECONDS),
    ),
    export=Export(group_key="source_id", text_field="text", license="cc-by-nc-nd-4.0",
                  task_categories=("text-generation",),
                  input_source="the shipped sample, four sections of *Probability for Data Science* (Prob 140, "
                  "Adhikari and Pitman), CC BY-NC-ND 4.0 (include/sample_data/mind/ATTRIBUTION.md)."),
    tags=("math", "pretraining"),
)
