"""A declared method run in this process, without Airflow: the same stage runner and export the
DAG tasks call, stage after stage (a mapped stage shard by shard). For tests, notebooks and
debugging a stage; production runs go through the DAG."""

from __future__ import annotations

from typing import Any, Callable

from synth_tasks.method import EXPORT, Method
from synth_tasks.stage import Handoff, run_stage
from synth_tasks.storage import RunLayout


def run_method(method: Method, cfg, layout: RunLayout, input_url: str, *,
               endpoint_for: Callable[[str], Any] | None = None, until: str | None = None,
               max_shards: int | None = None, run_info: dict | None = None) -> dict[str, Any]:
    """Run the stages in order, up to and including ``until`` (a stage name or "export", the
    default). Returns {stage name: its hand-offs (a list)} and, when it ran, {"export": result}."""
    from synth_tasks.export import run_export

    results: dict[str, Any] = {}
    upstream: list[Handoff] = []
    for stage in method.stages:
        if stage is method.stages[0]:
            upstream = run_stage(method, stage, cfg, layout, None, endpoint_for=endpoint_for,
                                 max_shards=max_shards, input_url=input_url)
        elif stage.mapped:
            upstream = [run_stage(method, stage, cfg, layout, h, endpoint_for=endpoint_for, max_shards=max_shards)
                        for h in upstream]
        else:
            upstream = run_stage(method, stage, cfg, layout, upstream, endpoint_for=endpoint_for,
                                 max_shards=max_shards)
        results[stage.name] = upstream
        if stage.name == until:
            return results
    results[EXPORT] = run_export(method, cfg, layout, upstream,
                                 run_info or {"run_id": layout.partition, "run_timestamp": "local"})
    return results
