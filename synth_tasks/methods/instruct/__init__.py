"""Nemotron-style instruction data: seed instructions in; scored, filtered instruction-response
pairs out, as SFT chat records and preference pairs (after the Nemotron-4 340B alignment recipe,
arXiv 2406.11704).

Stages (declared in ``METHOD`` below; records carry their seed lineage):
    prepare        seed files -> the seed pool, and the seeds with the Self-Instruct jobs
    self_instruct  (mapped, LLM) jobs -> new instructions (Wang et al., 2023: 8 in-context
                   examples, 6 seeds + 2 machine-made; ROUGE-L novelty, length, blocklist and
                   clean-start rules); the shard's seeds pass through
    evolve         (mapped, LLM) instructions -> themselves + their Evol-Instruct descendants
                   (Xu et al., 2023: in-depth and in-breadth rounds; failed evolutions are
                   eliminated with a reason)
    respond        (mapped, LLM) every instruction -> ``n_responses`` sampled responses
    judge          (mapped, judge LLM) every response -> five HelpSteer2 scores and the
                   weighted overall score
    screen         (mapped, judge LLM only with ``llm_safety``) benchmark decontamination,
                   keyword safety, quality threshold, LLM safety
    select         (all shards) exact and MinHash near-duplicate instructions removed, then a
                   cluster-balanced sample and the diversity metrics
    export         (core) SFT chat records split by seed lineage, the preference pairs on their
                   lineage's side, and the run summary

Modules: ``config`` (the Params), ``stages`` (the stage functions and the export's SFT records
and preference pairs), ``prompts`` (prompts and reply parsing), ``records`` (the record shape),
``filters`` (Self-Instruct's and Evol-Instruct's rules).

A Self-Instruct instruction starts its own lineage; an evolved one belongs to its parent's.
Heavy imports happen inside the stage functions: the DAG file imports this package at parse time.
"""

from __future__ import annotations

from synth_tasks.method import Export, Method, Stage
from synth_tasks.methods.instruct.config import InstructConfig
from synth_tasks.methods.instruct.stages import (SEEDS, evolve, judge, prepare, preference_files, respond, screen,
                                                 select, self_instruct, sft_records)

METHOD = Method(
    dag_id="instruct",
    config=InstructConfig,
    input_files=("*.yaml", "*.yml", "*.jsonl", "*.parquet"),
    stages=(
        Stage("prepare", prepare, mapped=False, artifacts=(SEEDS,)),  # the seed pool
        Stage("self_instruct", self_instruct, llm="llm_conn_id"),
        Stage("evolve", evolve, llm="llm_conn_id"),
        Stage("respond", respond, llm="llm_conn_id"),
        Stage("judge", judge, llm="judge_conn_id"),
        Stage("screen", screen, llm="judge_conn_id"),  # calls it only with llm_safety
        Stage("select", select, mapped=False),
    ),
    export=Export(group_key="root_id", records=sft_records, extra_files=preference_files, text_field="response",
                  cluster_field="cluster", license="cc0-1.0", task_categories=("text-generation",),
                  input_source="the shipped seed instructions, written for this project and released "
                  "as CC0 (include/sample_data/instruct/seeds.yaml)."),
    tags=("instruct", "fine-tuning", "preference"),
)

