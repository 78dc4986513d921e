"""
### Personas: a persona hub and persona-conditioned data

After Chan et al. 2024, *Scaling Synthetic Data Creation with 1,000,000,000 Personas*
(arXiv 2406.20094).

**Flow**: `prepare` (input texts) → `text_to_persona` (who reads, writes, likes or dislikes each
text; LLM) → `expand` (Persona-to-Persona: close relations, `expand_depth` iterations; LLM) →
`dedup` (MinHash over words, then MiniLM cosine, against the whole hub; writes this partition's
hub part) → `select` (this run's personas, or the hub's in a created-date range) → `gather`
(each persona writes search queries; passages retrieved by BM25 from a folder corpus, or from the
web when `source=web`; LLM) → `generate` (math problem, user prompt, article, multi-turn dialogue;
LLM) → `filter` (prefix, restatement, evidence grounded in the sources, decontamination) →
`dedup_outputs` (MinHash across personas) → `export`.

**Outputs**: `{data root}/personas/{partition}/final/` (train/validation grouped by root persona;
records carry persona, template, sources with quotes, output, lineage) and the hub at
`{data root}/_hub/personas/part-{partition}.parquet`.
"""

from synth_tasks.airflow_glue import build_dag
from synth_tasks.methods.personas import METHOD

dag = build_dag(METHOD, doc_md=__doc__)
