"""
### Data selection: a tokenized fine-tuning mix from instruction sets and conversation trees

After the "Data V5" pipeline (select_data.py, few_shot_sample.py, fewshot_to_prompt.py,
prepare_chat.py, chat_2_seq2seq.py, the length check and prepare_synthetic.py), as one accounted
run. **No LLM.**

The input is a **mix file** (YAML, `input_path`): domains, each with a target count and its
sources (a path or another DAG's output, the question and answer fields, a filter, a licence).

`prepare` (source rows; conversation trees to root-to-leaf threads, English by default) →
`seq2seq` (threads to `<Role user>...<Role bot>` Input / Output pairs) → `screen` (benchmark
decontamination, arithmetic cut out of the n-grams) → `select` (exact and near duplicates out
across domains; per domain MiniLM embeddings, cached by text hash, community detection or k-means,
a sample of each cluster in proportion to its size among the pairs that fit `max_tokens`, few-shot
neighbours) → `render` (the domain's few-shot prompt) → `tokenize` (the embedded model's
vocabulary or cl100k; the chat template's special tokens as one id each) → `export`. A source
that cannot be read fails the run before any work, naming it.

Outputs in `final/`: `train.jsonl`/`.parquet`, `validation.*` (domain, source, licence, cluster,
few-shot ids, Input, Output), `{split}_tokens.bin`, `{split}_offsets.bin`,
`{split}_prompt_lengths.bin` and `tokenized_manifest.json`; per-domain clusters and diversity in
`_summary.json` under `info.selection`.

**Schedule**: daily, and also whenever the `instruct` DAG publishes (its Asset `instruct/final`),
so a mix that names `dag: instruct` as a source is rebuilt on its newest data.
"""

from synth_tasks.airflow_glue import build_dag
from synth_tasks.methods.data_selection import METHOD

dag = build_dag(METHOD, doc_md=__doc__)
