"""Curriculum: training data organised like a child's development, from basic perception to social
cognition and theory of mind, with difficulty measured rather than trusted (after TinyStories,
Eldan & Li 2023; schedules after Naïr et al. 2024, arXiv 2407.10194; BabyLM's lesson that a
curriculum only helps when difficulty is measured well).

The stages are data: a stages file (``include/configs/curriculum/stages.yaml``, the DAG's input)
lists them in order with their prompts, difficulty band, word list and item counts.

Stages (declared in ``METHOD`` below):
    prepare    stages file   -> generation jobs: per stage and item, seeded draws of content words
                                from the stage's word list and of story features (TinyStories-style)
    generate   jobs          -> stories                                           (mapped, LLM)
    measure    stories       -> readability, vocabulary (share outside the stage's, the stage its
                                words come from), length, compression, operations, theme
                                (embedding); an item outside its stage's band, vocabulary or
                                theme is filtered with the reason, never moved     (mapped)
    questions  eval stories  -> a held-out question with its reference answer, kept only when
                                answerable from its own story; training items pass (mapped, LLM)
    dedup      all items     -> exact and near-duplicate stories dropped; training items that
                                repeat an evaluation story dropped                (one task)
    evaluate   eval items    -> the model under test answers, scored by normalised match
                                (mapped, LLM: eval_conn_id; skipped with evaluate=False)
    export     (core)        -> train.jsonl/parquet plus the ordered shards
                                final/stage-NN-<name>/part-*.parquet, final/eval/<stage>.jsonl,
                                final/curriculum.json (order, counts, difficulty, check, schedule)
                                and final/eval_report.json
"""

from __future__ import annotations

from synth_tasks.method import Export, Method, Stage
from synth_tasks.methods.curriculum.config import CurriculumConfig
from synth_tasks.methods.curriculum.stages import (MEASURE_SECONDS, dedup, evaluate, evaluate_cost, generate,
                                                   make_questions, measure_items, prepare, questions_cost,
                                                   training_records, write_curriculum)

METHOD = Method(
    dag_id="curriculum",
    config=CurriculumConfig,
    input_files=("*.yaml", "*.yml"),
    stages=(
        Stage("prepare", prepare, mapped=False),
        Stage("generate", generate, llm="llm_conn_id"),
        Stage("measure", measure_items, cost=MEASURE_SECONDS),
        Stage("questions", make_questions, llm="llm_conn_id", cost=questions_cost),
        Stage("dedup", dedup, mapped=False),
        Stage("evaluate", evaluate, llm="eval_conn_id", cost=evaluate_cost),
    ),
    export=Export(group_key="id", records=training_records, extra_files=write_curriculum),
    tags=("curriculum", "pretraining"),
)
