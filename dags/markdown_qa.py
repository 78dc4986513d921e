"""
### Markdown to QA — question-answer pairs with chain-of-thought levels

Turns a folder of markdown documents (regulations, product docs, textbooks) into fine-tuning data:
question-answer pairs with reasoning, in chat format, grounded in the text they came from.

**Flow:** `prepare` splits every `.md` file into sections by headings (code blocks and tables kept
whole, long sections cut by tokens, tiny ones merged) → `facts` (mapped over section shards)
extracts facts and plans QA jobs, with QA types drawn by `type_weights` from fourteen types
(factual recall, inference, multi-hop, application, comparative, cause-effect, summarization,
hypothetical, critical analysis, technical explanation, process/workflow, true/false,
fill-in-the-blank, ambiguity resolution) → `generate` (mapped) writes each pair as question, answer,
reasoning steps and quoted evidence → `ground` (mapped) drops pairs whose evidence is not found in
their section → `dedup` (one task over all shards) drops near-duplicate questions per document →
`render` (mapped) renders every pair at the chosen chain-of-thought levels (none, one step, two
steps, all steps) → `export` splits by source file and writes the conversation files.

**No-LLM mode** (`no_llm`): heuristic facts and fact-recall, true/false and fill-in-the-blank pairs,
deterministic: the DAG runs with no model at all.

**Outputs** under `{SYNTH_DATA_ROOT}/markdown_qa/{partition}/final/`:
`train-synthetic-data-YYYY-MM-DD_HH-MM-SS.json` and `validation-synthetic-data-...json` (JSON lists of
`[user, assistant]` conversations), plus `train.jsonl`/`.parquet` and `validation.*` with metadata
(QA type, CoT level, source file, section, evidence, grounding score). `_summary.json`, `_ledger/`
and `_dropped/` account for every file, section and pair.

**Partition, LLM, retries:** as in every DAG of this project (see the `mind` DAG and docs/outputs.md).
"""

from synth_tasks.airflow_glue import build_dag
from synth_tasks.methods.markdown_qa import METHOD

dag = build_dag(METHOD, doc_md=__doc__)
