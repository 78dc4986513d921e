"""
### Curriculum — developmental stages, measured difficulty, ordered shards, per-stage evaluation

Training data organised like a child's development (TinyStories-style stories): six stages from
basic perception (colours, shapes, edges) through object recognition, spatial reasoning and basic
physics, language and communication, abstract reasoning and logic, to social cognition and theory
of mind. The stages are data: the input is a stages file (`include/configs/curriculum/stages.yaml`)
listing them in order with prompts, grade band, word list and item counts; point `input_path` at
your own to add or reorder stages.

**Flow:** `prepare` reads the stages file and plans each stage's jobs (seeded draws of content words
from the stage's word list and of story features) → `generate` (mapped, LLM) writes the stories →
`measure` (mapped) measures every story against the stage it was written for (Flesch-Kincaid
grade, reading ease, words outside the stage's vocabulary and the stage its words come from, length,
compression, arithmetic operations, and its theme by sentence embedding) and keeps it there, or
filters it with the reason (out of band, off vocabulary, off theme); no story changes stage →
`questions` (mapped, LLM) writes the held-out evaluation questions with reference answers, kept only
when answerable from their own story → `dedup` (one task) drops duplicate stories and training
stories that repeat an evaluation story → `evaluate` (mapped, LLM on `eval_conn_id`) asks the model
under test every question and scores it → `export`.

**Outputs** under `{SYNTH_DATA_ROOT}/curriculum/{partition}/final/`: `stage-NN-<name>/part-*.parquet`
(ordered training shards), `curriculum.json` (stage order, counts, difficulty mean/median/p90 per
stage with its spread, the theme share, the rising-difficulty check with each step's interval, the training schedule as shards and mixing weights per phase),
`eval/stage-NN-<name>.jsonl` (held-out questions), `eval_report.json` (per-stage scores, mastery,
first stage not mastered), `train.jsonl`/`.parquet`. `_summary.json`, `_ledger/` and `_dropped/`
account for every item.

**Partition, LLM, retries:** as in every DAG of this project (see the `mind` DAG and docs/outputs.md).
"""

from synth_tasks.airflow_glue import build_dag
from synth_tasks.methods.curriculum import METHOD

dag = build_dag(METHOD, doc_md=__doc__)
