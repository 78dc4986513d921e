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
their section → `export` drops near-duplicate questions per document, renders every pair at the
chosen chain-of-thought levels (none, one step, two steps, all steps) and splits by source file.

**No-LLM mode** (`no_llm`): heuristic facts and fact-recall, true/false and fill-in-the-blank pairs,
deterministic: the DAG runs with no model at all.

**Outputs** under `{SYNTH_DATA_ROOT}/markdown_qa/{partition}/final/`:
`train-synthetic-data-YYYY-MM-DD_HH-MM-SS.json` and `validation-synthetic-data-...json` (JSON lists of
`[user, assistant]` conversations), plus `train.jsonl`/`.parquet` and `validation.*` with metadata
(QA type, CoT level, source file, section, evidence, grounding score). `_summary.json`, `_ledger/`
and `_dropped/` account for every file, section and pair.

**Partition, LLM, retries:** as in every DAG of this project (see the `mind` DAG and the README).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from synth_tasks.airflow_glue import daily_dag_args, params_from_config
from synth_tasks.methods.markdown_qa import DAG_ID, MarkdownQAConfig


@dag(
    dag_id=DAG_ID,
    **daily_dag_args(),
    params=params_from_config(MarkdownQAConfig),
    doc_md=__doc__,
    tags=["synthetic-data", "qa", "fine-tuning"],
)
def markdown_qa():
    @task
    def prepare(**context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import markdown_qa as method

        return glue.run_prepare(method, MarkdownQAConfig, DAG_ID, context)

    @task
    def plan_shards(prepared: dict) -> list[dict]:
        from synth_tasks.airflow_glue import shard_kwargs

        return shard_kwargs(prepared, "sections_url")

    @task(max_active_tis_per_dagrun=4)
    def facts(shard: int, sections_url: str, n_shards: int, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import markdown_qa as method

        cfg = glue.config_from_params(MarkdownQAConfig, context["params"])
        endpoint = None if cfg.no_llm else glue.llm_endpoint(cfg.llm_conn_id, cfg.model)
        result = method.facts(glue.run_layout(DAG_ID, context), cfg, shard, sections_url, endpoint, n_shards)
        return result | {"n_shards": n_shards}

    @task(max_active_tis_per_dagrun=4)
    def generate(planned: dict, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import markdown_qa as method

        cfg = glue.config_from_params(MarkdownQAConfig, context["params"])
        endpoint = None if cfg.no_llm else glue.llm_endpoint(cfg.llm_conn_id, cfg.model)
        return method.generate(glue.run_layout(DAG_ID, context), cfg, planned["stats"]["shard"],
                               planned["output"], endpoint, planned["n_shards"])

    @task
    def ground(generated: dict, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import markdown_qa as method

        cfg = glue.config_from_params(MarkdownQAConfig, context["params"])
        return method.ground(glue.run_layout(DAG_ID, context), cfg, generated["stats"]["shard"],
                             generated["output"])

    @task
    def export(prepared: dict, planned: list[dict], generated: list[dict], grounded: list[dict], **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import markdown_qa as method

        cfg = glue.config_from_params(MarkdownQAConfig, context["params"])
        planned, generated, grounded = (glue.materialize(x) for x in (planned, generated, grounded))
        models = sorted({s["stats"].get("model", "") for s in generated} - {""})
        result = method.export(
            glue.run_layout(DAG_ID, context), cfg, [g["output"] for g in grounded],
            [prepared, *planned, *generated, *grounded],
            run_info={"run_id": context["dag_run"].run_id, "models": models,
                      "run_timestamp": glue.run_timestamp(context)})
        print(f"train: {result['train_conversations']}\nvalidation: {result['validation_conversations']}\n"
              f"summary: {result['summary']}")
        return result

    prepared = prepare()
    planned = facts.expand_kwargs(plan_shards(prepared))
    generated = generate.expand(planned=planned)
    grounded = ground.expand(generated=generated)
    export(prepared, planned, generated, grounded)


markdown_qa()
