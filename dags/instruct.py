"""
### Instruct — Nemotron-style instruction data for SFT and preference tuning

Seed instructions in; scored, filtered instruction-response pairs out, after the synthetic-data
pipeline that aligned Nemotron-4 340B (arXiv 2406.11704).

**Flow:** `prepare` reads the seed file (YAML list, JSONL or Parquet: `id`, `domain`,
`instruction`) and plans Self-Instruct jobs over the seed domains and the `topics` Param →
`self_instruct` (mapped over shards) asks for new instructions with 8 examples each (6 seeds,
2 machine-made) and drops those too similar to the pool (ROUGE-L > 0.7), of ≤ 3 or > 150 words,
about images/files/plots/maps/browsing, or starting with punctuation or a non-ASCII character →
`evolve` (mapped) runs `evol_rounds` of Evol-Instruct (add constraints, deepening, concretizing,
more reasoning steps, complicated input, in-breadth) and eliminates rewrites that leak the
template, gain nothing over their parent (the model compares them), or whose response is a short
apology or says nothing → `respond` (mapped) samples `n_responses` per instruction → `judge`
(mapped) scores every response on the five HelpSteer2 attributes (0–4, weighted by
`judge_weights`), by an LLM judge or a reward-model endpoint → `screen` (mapped) drops benchmark
overlap (13-grams vs the GSM8K test set), unsafe text and low quality → `select` removes exact and
MinHash near-duplicates, clusters the embeddings and (with `target_size`) takes a cluster-balanced
sample → `export` writes SFT chat records and preference pairs, split by seed lineage.

**Outputs** under `{SYNTH_DATA_ROOT}/instruct/{partition}/final/`: `train.jsonl`/`.parquet` and
`validation.*` (SFT: `messages`, scores, lineage), `train_preferences.*` and
`validation_preferences.*` (`prompt`, `chosen`, `rejected`, both scores, margin). `_summary.json`
has every stage's counts and reasons, token usage and the diversity metrics (topic entropy, mean
pairwise cosine distance, distinct-n); `_ledger/` and `_dropped/` account for every seed, job,
evolved candidate and response.

**Partition, LLM, retries:** as in every DAG of this project (see the `mind` DAG and docs/outputs.md).
The judge may use its own connection (`judge_conn_id`).
"""

from synth_tasks.airflow_glue import build_dag
from synth_tasks.methods.instruct import METHOD

dag = build_dag(METHOD, doc_md=__doc__)
