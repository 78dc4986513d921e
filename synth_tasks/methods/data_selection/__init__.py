"""Data selection: a fine-tuning mix assembled from instruction sets and conversation trees by
domain, de-duplicated, decontaminated, clustered and sampled in proportion, given few-shot
prompts, and exported as text and as a tokenized training file. After the "Data V5" scripts
(select_data.py, few_shot_sample.py, fewshot_to_prompt.py, prepare_chat.py, chat_2_seq2seq.py,
the length check, prepare_synthetic.py) as one accounted pipeline. No LLM.

Stages (declared in ``METHOD`` below):
    prepare   every source read first (one that cannot be used fails the run, naming it);
              mix file -> one record per source row; conversation trees -> their threads  (one task)
    seq2seq   threads -> Input/Output pairs (role markers or chat template); QA passes     (mapped)
    screen    benchmark decontamination (13-gram overlap, arithmetic cut out)              (mapped)
    select    duplicates out across domains; per domain embed, cluster, few-shot
              neighbours, pairs over max_tokens out, then the proportional sample           (one task)
    render    the domain's few-shot prompt template                                         (mapped)
    tokenize  real tokenizer (the chat template's special tokens as one id each)            (mapped)
    export    (core) text mix split by group, plus the tokenized arrays and their manifest

Modules: ``config`` (Params), ``mix`` (the mix file and reading sources), ``conversations``
(trees, threads, seq2seq), ``selection`` (embedding cache, clustering, proportional sampling,
neighbours), ``tokenized`` (tokenizers and the binary layout), ``stages`` (the stage functions).
Heavy imports happen inside the stage functions: the DAG file imports this package at parse time.
"""

from __future__ import annotations

from synth_tasks.method import Export, Method, Stage
from synth_tasks.methods.data_selection.config import DataSelectionConfig
from synth_tasks.methods.data_selection.stages import (RENDER_SECONDS, SEQ2SEQ_SECONDS, TOKENIZE_SECONDS, prepare,
                                                       render_prompts, screen, screen_cost, select, seq2seq,
                                                       text_records, tokenize, tokenized_files)

METHOD = Method(
    dag_id="data_selection",
    config=DataSelectionConfig,
    input_files=("*.yaml", "*.yml"),
    stages=(
        Stage("prepare", prepare, mapped=False),
        Stage("seq2seq", seq2seq, cost=SEQ2SEQ_SECONDS),
        Stage("screen", screen, cost=screen_cost),
        Stage("select", select, mapped=False),
        Stage("render", render_prompts, cost=RENDER_SECONDS),
        Stage("tokenize", tokenize, cost=TOKENIZE_SECONDS),
    ),
    export=Export(group_key="group", records=text_records, extra_files=tokenized_files),
    tags=("data-selection", "fine-tuning"),
    # A mix built from the instruct DAG's data (a source with `dag: instruct`) is rebuilt each time that
    # DAG publishes; list the DAGs your mix names here (their "<dag_id>/final" Assets).
    triggered_by=("instruct/final",),
)

