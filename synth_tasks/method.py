"""The method contract: a method is its stage functions plus one declaration, and the core builds
everything around them (trigger-form Params, shard mapping, pools, XCom hand-off, ledger, summary,
export) from that declaration.

    METHOD = Method(
        dag_id="mind",
        config=MindConfig,
        input_files=("*.jsonl", "*.parquet"),
        stages=(
            Stage("prepare", prepare, mapped=False),          # input files -> records, in shards
            Stage("generate", generate, llm="llm_conn_id"),   # mapped over shards, calls the LLM
            Stage("filter", filter_conversations),            # mapped over the same shards
        ),
        export=Export(group_key="source_id"),
    )

A stage function takes a ``StageRun`` (``synth_tasks.stage``) and the records of its shard (the
first stage: the input files) and says, per record, kept / filtered(reason) / failed(error) /
created. The stage name is the task id and the ledger's name. Nothing here imports Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from synth_tasks.config import LLMParams, MethodConfig

EXPORT = "export"


@dataclass(frozen=True)
class Stage:
    """One step of a method. ``mapped``: one task per shard of the previous stage's output (else one
    task over all of it, whose output is written in shards again). ``llm``: the config field naming
    the LLM connection the stage uses (``"llm_conn_id"``, ``"judge_conn_id"``), or None.
    ``asset``: the name of an Airflow Asset the stage's task updates when it succeeds (its output is
    a dataset other DAGs may be scheduled on, e.g. ``"papers/extracted"``), or None."""

    name: str
    run: Callable[..., None]
    mapped: bool = True
    llm: str | None = None
    asset: str | None = None


@dataclass(frozen=True)
class Export:
    """The final split. ``group_key``: records sharing it land on the same side. ``records``: turns
    the last stage's records into the final ones (default: as they are). ``extra_files(ctx, train,
    validation) -> {name: url}``: method-specific files beside the standard JSONL and Parquet.

    For the dataset card (``synth_tasks.card``): ``license`` of the method's inputs (Hub licence
    ids; several for a dual licence), ``input_source`` (what the default input is), the Hub
    ``task_categories``, ``text_field`` (whose length the card plots; default: the field holding
    the most text) and ``cluster_field`` (records carrying a cluster label get a cluster-size plot)."""

    group_key: str
    records: Callable[[list[dict]], list[dict]] | None = None
    extra_files: Callable[..., dict[str, str]] | None = None
    license: str | tuple[str, ...] = "other"
    input_source: str = ""
    task_categories: tuple[str, ...] = ("text-generation",)
    text_field: str | None = None
    cluster_field: str | None = None


@dataclass(frozen=True)
class Method:
    dag_id: str
    config: type[MethodConfig]
    stages: tuple[Stage, ...]
    export: Export
    input_files: tuple[str, ...] = ("*.jsonl", "*.parquet")  # what a folder given as input_path holds
    tags: tuple[str, ...] = field(default_factory=tuple)
    # Assets (``Stage.asset`` names, or ``"<dag_id>/final"``, which every export updates) whose update
    # also starts a run, besides the daily schedule: the method consumes another DAG's output.
    triggered_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        problems = []
        if not self.stages or self.stages[0].mapped:
            problems.append("the first stage reads the input files: it must exist and have mapped=False")
        if len(set(names)) != len(names) or EXPORT in names:
            problems.append(f"stage names must be unique and not {EXPORT!r}: {names}")
        llm_params = set(LLMParams.model_fields) if issubclass(self.config, LLMParams) else set()
        for s in self.stages:
            if s.llm is not None and s.llm not in self.config.model_fields:
                problems.append(f"stage {s.name!r}: llm={s.llm!r} is not a field of {self.config.__name__}")
            elif s.llm is not None and not llm_params:
                problems.append(f"stage {s.name!r} calls an LLM but {self.config.__name__} is no LLMParams")
        own = {self.final_asset} | {s.asset for s in self.stages if s.asset is not None}
        if own & set(self.triggered_by):
            problems.append(f"triggered_by names the method's own Assets (each run would start the next): {sorted(own & set(self.triggered_by))}")
        if problems:
            raise ValueError(f"method {self.dag_id!r}: " + "; ".join(problems))

    @property
    def final_asset(self) -> str:
        """The Asset the export task updates when a run publishes its final/ (other DAGs'
        ``triggered_by`` may name it)."""
        return f"{self.dag_id}/final"

    @property
    def stage_order(self) -> list[str]:
        """The ledger's stage names in order, ending with the export: the chain the summary checks."""
        return [s.name for s in self.stages] + [EXPORT]

    @property
    def llm_stages(self) -> list[Stage]:
        return [s for s in self.stages if s.llm is not None]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


# dag_id -> module holding METHOD. Imported on demand, so listing methods stays cheap.
REGISTRY: dict[str, str] = {
    "mind": "synth_tasks.methods.mind",
    "markdown_qa": "synth_tasks.methods.markdown_qa",
    "instruct": "synth_tasks.methods.instruct",
    "curriculum": "synth_tasks.methods.curriculum",
    "data_selection": "synth_tasks.methods.data_selection",
    "personas": "synth_tasks.methods.personas",
    "papers": "synth_tasks.methods.papers",
    "knowledge_graph": "synth_tasks.methods.knowledge_graph",
}


def load_method(dag_id: str) -> Method:
    import importlib

    if dag_id not in REGISTRY:
        raise KeyError(f"no method {dag_id!r}; known: {sorted(REGISTRY)}")
    method: Any = importlib.import_module(REGISTRY[dag_id]).METHOD
    return method
