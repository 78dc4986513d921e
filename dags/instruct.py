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

**Partition, LLM, retries:** as in every DAG of this project (see the `mind` DAG and the README).
The judge may use its own connection (`judge_conn_id`).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from synth_tasks.airflow_glue import daily_dag_args, params_from_config
from synth_tasks.methods.instruct import DAG_ID, InstructConfig


@dag(
    dag_id=DAG_ID,
    **daily_dag_args(),
    params=params_from_config(InstructConfig),
    doc_md=__doc__,
    tags=["synthetic-data", "instruct", "fine-tuning", "preference"],
)
def instruct():
    @task
    def prepare(**context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import instruct as method

        return glue.run_prepare(method, InstructConfig, DAG_ID, context)

    @task
    def plan_shards(prepared: dict) -> list[dict]:
        from synth_tasks.airflow_glue import shard_kwargs

        return shard_kwargs(prepared, "jobs_url")

    @task(max_active_tis_per_dagrun=4)
    def self_instruct(shard: int, jobs_url: str, n_shards: int, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import instruct as method

        cfg = glue.config_from_params(InstructConfig, context["params"])
        endpoint = glue.llm_endpoint(cfg.llm_conn_id, cfg.model)
        return method.self_instruct(glue.run_layout(DAG_ID, context), cfg, shard, jobs_url, endpoint, n_shards)

    @task(max_active_tis_per_dagrun=4)
    def evolve(upstream: dict, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import instruct as method

        cfg = glue.config_from_params(InstructConfig, context["params"])
        endpoint = glue.llm_endpoint(cfg.llm_conn_id, cfg.model)
        return method.evolve(glue.run_layout(DAG_ID, context), cfg, upstream, endpoint)

    @task(max_active_tis_per_dagrun=4)
    def respond(upstream: dict, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import instruct as method

        cfg = glue.config_from_params(InstructConfig, context["params"])
        endpoint = glue.llm_endpoint(cfg.llm_conn_id, cfg.model)
        return method.respond(glue.run_layout(DAG_ID, context), cfg, upstream, endpoint)

    @task(max_active_tis_per_dagrun=4)
    def judge(upstream: dict, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import instruct as method

        cfg = glue.config_from_params(InstructConfig, context["params"])
        endpoint = glue.llm_endpoint(*cfg.judge_connection())
        return method.judge(glue.run_layout(DAG_ID, context), cfg, upstream, endpoint)

    @task
    def screen(upstream: dict, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import instruct as method

        cfg = glue.config_from_params(InstructConfig, context["params"])
        endpoint = glue.llm_endpoint(*cfg.judge_connection()) if cfg.llm_safety else None
        return method.screen(glue.run_layout(DAG_ID, context), cfg, upstream, endpoint)

    @task
    def select(screened: list[dict], **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import instruct as method

        cfg = glue.config_from_params(InstructConfig, context["params"])
        urls = [s["output"] for s in glue.materialize(screened)]
        return method.select(glue.run_layout(DAG_ID, context), cfg, urls)

    @task
    def export(prepared: dict, instructions: list[dict], evolved: list[dict], responded: list[dict],
               judged: list[dict], screened: list[dict], selected: dict, **context) -> dict:
        from synth_tasks import airflow_glue as glue
        from synth_tasks.methods import instruct as method

        cfg = glue.config_from_params(InstructConfig, context["params"])
        results = [r for stage in (instructions, evolved, responded, judged, screened)
                   for r in glue.materialize(stage)]
        models = sorted({r["stats"].get("model", "") for r in results} - {""})
        result = method.export(
            glue.run_layout(DAG_ID, context), cfg, selected["output"], [prepared, *results, selected],
            run_info={"run_id": context["dag_run"].run_id, "models": models})
        print(f"train: {result['train_jsonl']}\nvalidation: {result['validation_jsonl']}\n"
              f"preferences: {result['train_preferences_jsonl']}\nsummary: {result['summary']}")
        return result

    prepared = prepare()
    instructions = self_instruct.expand_kwargs(plan_shards(prepared))
    evolved = evolve.expand(upstream=instructions)
    responded = respond.expand(upstream=evolved)
    judged = judge.expand(upstream=responded)
    screened = screen.expand(upstream=judged)
    selected = select(screened)
    export(prepared, instructions, evolved, responded, judged, screened, selected)


instruct()
