"""A declared method run in this process, without Airflow: the same stage runner and export the
DAG tasks call, stage after stage (a mapped stage shard by shard). For tests, notebooks and
debugging a stage; production runs go through the DAG."""

from __future__ import annotations

import functools
from typing import Any, Callable

from synth_tasks.environment import Environment
from synth_tasks.method import EXPORT, Method
from synth_tasks.stage import Handoff, run_stage
from synth_tasks.storage import RunLayout


def run_method(method: Method, cfg, layout: RunLayout, input_url: str, *,
               endpoint_for: Callable[[str], Any] | None = None, until: str | None = None,
               max_shards: int | None = None, run_info: dict | None = None,
               env: Environment | None = None) -> dict[str, Any]:
    """Run the stages in order, up to and including ``until`` (a stage name or "export", the
    default). Returns {stage name: its hand-offs (a list)} and, when it ran, {"export": result}.
    ``env``: the run's environment (default: the layout's partition and store, no day)."""
    from synth_tasks.export import run_export

    env = env or Environment(partition=layout.partition, data_root=layout.store.root)
    run = functools.partial(run_stage, method, cfg=cfg, layout=layout, env=env, endpoint_for=endpoint_for,
                            max_shards=max_shards)
    results: dict[str, Any] = {}
    upstream: list[Handoff] = []
    for stage in method.stages:
        if stage is method.stages[0]:
            upstream = run(stage=stage, upstream=None, input_url=input_url)
        elif stage.mapped:
            upstream = [run(stage=stage, upstream=h) for h in upstream]
        else:
            upstream = run(stage=stage, upstream=upstream)
        results[stage.name] = upstream
        if stage.name == until:
            return results
    results[EXPORT] = run_export(method, cfg, layout, upstream,
                                 run_info or {"run_id": layout.partition, "run_timestamp": "local"})
    return results
