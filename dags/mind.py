"""
### MIND — math informed synthetic dialogues

Rewrites raw math text into multi-turn conversations in seven styles (two students, teacher and
student, two professors, debate, problem solving, layman and know-all, interview), after
Akter et al., *MIND: Math Informed syNthetic Dialogues for Pretraining LLMs* (arXiv 2410.12881).

**Flow:** `prepare` chunks the partition's input into ~500-token contexts and writes one job per
context × style in shards → `generate` (mapped over shards) asks the LLM → `filter_conversations`
(mapped) drops short and degenerate dialogues with their reason → `export` writes a train/validation
split grouped by source document and `_summary.json`.

**Partition:** scheduled runs and backfills read and write the day of their data interval
(`{ds}` in `input_path`), so a backfill redoes exactly that day. Manual runs write a partition
named after the run id.

**Where things land:** `{SYNTH_DATA_ROOT}/mind/{partition}/` — `final/train.jsonl`,
`final/validation.jsonl`, `_summary.json`, `_ledger/` (one row per record per stage) and
`_dropped/` (filtered conversations with reasons).

**LLM:** Airflow connection `synth_llm` (host = OpenAI-compatible base URL, password = key,
extra `{"model": ..., "provider": "vllm"|"openai"|"zhipuai"}`), else `SYNTH_LLM_*` environment
variables, else the embedded SmolLM2 server (`make llm-up`). Responses are cached by content, so a
retried task re-sends nothing that already completed.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from synth_tasks.airflow_glue import daily_dag_args, params_from_config
from synth_tasks.methods.mind import DAG_ID, MindConfig


@dag(
    dag_id=DAG_ID,
    **daily_dag_args(),
    params=params_from_config(MindConfig),
    doc_md=__doc__,
    tags=["synthetic-data", "math", "pretraining"],
)
def mind():
    @task
    def prepare(**context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import mind as method

        return glue.run_prepare(method, MindConfig, DAG_ID, context)

    @task
    def plan_shards(prepared: dict) -> list[dict]:
        from synth_tasks.airflow_glue import shard_kwargs

        return shard_kwargs(prepared, "jobs_url")

    @task(max_active_tis_per_dagrun=4)
    def generate(shard: int, jobs_url: str, n_shards: int, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import mind as method

        cfg = glue.config_from_params(MindConfig, context["params"])
        endpoint = glue.llm_endpoint(cfg.llm_conn_id, cfg.model)
        return method.generate(glue.run_layout(DAG_ID, context), cfg, shard, jobs_url, endpoint, n_shards)

    @task
    def filter_conversations(generated: dict, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import mind as method

        cfg = glue.config_from_params(MindConfig, context["params"])
        shard = generated["stats"]["shard"]
        return method.filter_shard(glue.run_layout(DAG_ID, context), cfg, shard, generated["output"])

    @task
    def export(prepared: dict, generated: list[dict], filtered: list[dict], **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import mind as method

        cfg = glue.config_from_params(MindConfig, context["params"])
        layout = glue.run_layout(DAG_ID, context)
        generated, filtered = glue.materialize(generated), glue.materialize(filtered)
        models = sorted({s["stats"].get("model", "") for s in generated} - {""})
        result = method.export(
            layout, cfg, [f["output"] for f in filtered], [prepared, *generated, *filtered],
            run_info={"run_id": context["dag_run"].run_id, "models": models})
        print(f"train: {result['train_jsonl']}\nvalidation: {result['validation_jsonl']}\n"
              f"summary: {result['summary']}")
        return result

    prepared = prepare()
    generated = generate.expand_kwargs(plan_shards(prepared))
    filtered = filter_conversations.expand(generated=generated)
    export(prepared, generated, filtered)


mind()
