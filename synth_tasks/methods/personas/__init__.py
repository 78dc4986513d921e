"""Persona hub, after Chan et al. 2024 ("Scaling Synthetic Data Creation with 1,000,000,000
Personas", arXiv 2406.20094): personas from texts and from each other, a hub that grows between
runs, persona agents that gather sources, and persona-conditioned generation.

Stages (declared in ``METHOD`` at the end):
    prepare          input texts      -> text records                                      (one task)
    text_to_persona  texts            -> personas: who reads, writes, likes, dislikes it    (mapped, LLM)
    expand           personas         -> plus their close relations, to ``expand_depth``    (mapped, LLM)
    dedup            all personas     -> new personas only: placeholders dropped, then MinHash
                                         over words and MiniLM cosine against the whole hub; the
                                         new ones staged as this run's pending hub part     (one task)
    select           new personas     -> the personas to write with (this run's, or the hub's
                                         in a created-date range), at most ``max_personas`` (one task)
    gather           personas         -> topics and queries per persona, sources retrieved
                                         from a folder corpus (BM25) or the web; one job per
                                         template                                         (mapped, LLM)
    generate         jobs             -> math problems, user prompts, articles, dialogues   (mapped, LLM)
    filter           outputs          -> prefix, persona restated, evidence grounded in the
                                         sources, benchmark decontamination (math)          (mapped)
    dedup_outputs    all outputs      -> near-duplicates across personas removed (MinHash)  (one task)
    respond          outputs          -> optional (`respond`): responses to math problems and
                                         user prompts, HelpSteer2 scores by the shared judge (mapped, LLM)
    export           (core)           -> train/validation grouped by root persona; the pending
                                         hub part joins the hub (``{root}/_hub/personas/``), so
                                         only a run that gets this far adds to it
"""

from __future__ import annotations

from synth_tasks.method import Export, Method, Stage
from synth_tasks.methods.personas.config import PersonasConfig
from synth_tasks.methods.personas.stages import (
    HUB_PENDING, dedup_outputs, dedup_personas, expand, expand_cost, filter_cost, filter_outputs, gather, gather_cost,
    generate, generate_cost, prepare, publish_hub_part, respond_and_judge, respond_cost, select, text_to_persona)

METHOD = Method(
    dag_id="personas",
    config=PersonasConfig,
    input_files=("*.jsonl", "*.parquet"),
    stages=(
        Stage("prepare", prepare, mapped=False),
        Stage("text_to_persona", text_to_persona, llm="llm_conn_id"),
        Stage("expand", expand, llm="llm_conn_id", cost=expand_cost),
        Stage("dedup", dedup_personas, mapped=False, artifacts=(HUB_PENDING,)),
        Stage("select", select, mapped=False),
        Stage("gather", gather, llm="llm_conn_id", cost=gather_cost),
        Stage("generate", generate, llm="llm_conn_id", cost=generate_cost),
        Stage("filter", filter_outputs, cost=filter_cost),
        Stage("dedup_outputs", dedup_outputs, mapped=False),
        Stage("respond", respond_and_judge, llm="llm_conn_id", cost=respond_cost),
    ),
    export=Export(group_key="root_persona_id", after_publish=publish_hub_part),
    tags=("personas", "fine-tuning"),
)
