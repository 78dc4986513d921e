"""
### MIND — math informed synthetic dialogues

Rewrites raw math text into multi-turn conversations in seven styles (two students, teacher and
student, two professors, debate, problem solving, layman and know-all, interview), after
Akter et al., *MIND: Math Informed syNthetic Dialogues for Pretraining LLMs* (arXiv 2410.12881).

**Flow:** `prepare` chunks the partition's input into ~500-token contexts and plans one job per
context × style → `generate` (mapped over shards) asks the LLM → `filter` (mapped) drops short and
degenerate dialogues with their reason → `export` writes a train/validation split grouped by source
document and `_summary.json`.

**Where things land:** `{SYNTH_DATA_ROOT}/mind/{partition}/` — `final/train.jsonl`,
`final/validation.jsonl`, `_summary.json`, `_ledger/` (one row per record per stage) and
`_dropped/` (filtered conversations with reasons). Scheduled runs and backfills write the day of
their data interval (`{ds}` in `input_path` reads that day); manual runs, a partition of their own,
`run-<run id>`. LLM: the `synth_llm` connection, else `SYNTH_LLM_*`, else the embedded server.
"""

from synth_tasks.airflow_glue import build_dag
from synth_tasks.methods.mind import METHOD

dag = build_dag(METHOD, doc_md=__doc__)
