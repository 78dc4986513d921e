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

A stage function takes a ``StageRun[C]`` (``synth_tasks.stage``, ``C`` the method's config) and
the records of its shard (the first stage: the input files) and says, per record, kept /
filtered(reason) / failed(error) / created. The stage name is the task id and the ledger's name.
Nothing here imports Airflow.

A method is a package of ``synth_tasks.methods`` named after its dag_id, in one shape:
``config.py`` (its config class), ``stages.py`` (its stage functions, with any helper modules they
use beside them) and ``__init__.py`` holding only ``METHOD``. The core finds it by listing the
packages (``method_names``), so adding a method touches no core file.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import synth_tasks.methods

from synth_tasks.config import LLM_TOKENS_PER_SECOND, LLMParams, MethodConfig

EXPORT = "export"

# Seconds per record assumed for a stage without an LLM that declares no cost: 10 ms, above every
# text stage measured on the shipped samples (0.06-11 ms a record, see the methods' ``cost=``), so
# an undeclared stage errs toward more tasks rather than one task holding hours of unknown work.
DEFAULT_TEXT_SECONDS = 0.01
# Folders of a partition that are the runner's own (see storage.RunLayout).
RESERVED_FOLDERS = {EXPORT, "final", "_ledger", "_dropped", "_stats", "_staging", "_summary.json"}


@dataclass(frozen=True)
class Stage:
    """One step of a method. ``mapped``: one task per shard of the previous stage's output (else one
    task over all of it, whose output is written in shards again). ``llm``: the config field naming
    the LLM connection the stage uses (``"llm_conn_id"``, ``"judge_conn_id"``), or None.
    ``asset``: the name of an Airflow Asset the stage's task updates when it succeeds (its output is
    a dataset other DAGs may be scheduled on, e.g. ``"papers/extracted"``), or None.
    ``artifacts``: folders of files the stage writes beside its output shards, for a later stage or
    the export to read: reached by name with ``run.artifact(name)`` and ``ctx.artifact(name)``, and
    cleared with the stage folders when a partition is run again. An artifact named after the
    stage itself is the stage's own folder (the graph stage's graph files beside its shards).
    ``cost``: seconds of work per record of the shard the stage is mapped over (a record the last
    unmapped stage wrote, so a stage after a fan-out counts the fan-out), on the reference machine:
    a number or ``cost(cfg)``. The shard plan sizes shards from it (``synth_tasks.stage.plan_shards``);
    None: ``llm_seconds(cfg, 1)`` for an LLM stage, ``DEFAULT_TEXT_SECONDS`` for any other."""

    name: str
    run: Callable[..., None]
    mapped: bool = True
    llm: str | None = None
    asset: str | None = None
    artifacts: tuple[str, ...] = ()
    cost: float | Callable[[Any], float] | None = None

    def seconds_per_record(self, cfg) -> float:
        """The declared cost of one record under ``cfg`` (see ``cost``)."""
        if callable(self.cost):
            return float(self.cost(cfg))
        if self.cost is not None:
            return float(self.cost)
        return llm_seconds(cfg, requests=1) if self.llm is not None else DEFAULT_TEXT_SECONDS


def llm_seconds(cfg, requests: float, max_tokens: int | None = None) -> float:
    """Seconds an LLM stage spends per record: ``requests`` calls per record, each decoding up to
    ``max_tokens`` (default ``cfg.max_tokens``, else 1024) at the endpoint's decode rate per request
    (``cfg.llm_tokens_per_second``, else ``LLM_TOKENS_PER_SECOND``), with ``cfg.concurrency`` of them
    in flight at once."""
    tokens = max_tokens if max_tokens is not None else getattr(cfg, "max_tokens", 1024)
    rate = getattr(cfg, "llm_tokens_per_second", None) or LLM_TOKENS_PER_SECOND
    return requests * tokens / rate / max(1, getattr(cfg, "concurrency", 1))


@dataclass(frozen=True)
class Export:
    """The final split. ``group_key``: records sharing it land on the same side. ``records``: turns
    the last stage's records into the final ones (default: as they are). ``extra_files(ctx, train,
    validation) -> {name: url}``: method-specific files beside the standard JSONL and Parquet.

    For the dataset card (``synth_tasks.card``): ``license`` of the method's inputs (Hub licence
    ids; several for a dual licence), ``input_source`` (what the default input is), the Hub
    ``task_categories``, ``text_field`` (whose length the card plots; default: the field holding
    the most text) and ``cluster_field`` (records carrying a cluster label get a cluster-size plot).

    ``after_publish(ctx)``: runs once final/ is published, before the summary is written, for state
    outside the partition that only a published run may change (the personas hub); what it puts in
    ``ctx.info`` reaches the summary."""

    group_key: str
    records: Callable[[list[dict]], list[dict]] | None = None
    extra_files: Callable[..., dict[str, str]] | None = None
    license: str | tuple[str, ...] = "other"
    input_source: str = ""
    task_categories: tuple[str, ...] = ("text-generation",)
    text_field: str | None = None
    cluster_field: str | None = None
    after_publish: Callable[..., None] | None = None


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
        # an artifact is a folder of its own, or the declaring stage's own folder (its name)
        clashes = [a for s in self.stages for a in s.artifacts if a in RESERVED_FOLDERS or a in names and a != s.name]
        if len(set(self.artifacts)) != len(self.artifacts) or clashes:
            problems.append(f"artifact names must be unique, not another stage's name and not "
                            f"{sorted(RESERVED_FOLDERS)}: {list(self.artifacts)}")
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
    def artifacts(self) -> tuple[str, ...]:
        """Every stage's declared artifacts (folders of the partition, beside the stage folders)."""
        return tuple(a for s in self.stages for a in s.artifacts)

    def mapped_after(self, stage: Stage) -> list[Stage]:
        """The mapped stages that follow ``stage`` up to the next unmapped one: the tasks its
        output shards become."""
        following = self.stages[self.stages.index(stage) + 1:]
        return list(itertools.takewhile(lambda s: s.mapped, following))

    @property
    def llm_stages(self) -> list[Stage]:
        return [s for s in self.stages if s.llm is not None]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def method_names() -> list[str]:
    """The methods: every package of ``synth_tasks.methods`` (its name is the dag_id). Found by
    listing, not importing, so listing methods stays cheap."""
    return sorted(m.name for m in pkgutil.iter_modules(synth_tasks.methods.__path__) if m.ispkg)


def load_method(dag_id: str) -> Method:
    """The ``METHOD`` a method package declares."""
    if dag_id not in method_names():
        raise KeyError(f"no method {dag_id!r}; known: {method_names()}")
    method = importlib.import_module(f"synth_tasks.methods.{dag_id}").METHOD
    if not isinstance(method, Method) or method.dag_id != dag_id:
        raise ValueError(f"synth_tasks.methods.{dag_id}.METHOD must be a Method with dag_id={dag_id!r}")
    return method
