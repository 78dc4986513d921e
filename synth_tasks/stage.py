"""The stage runner: everything a stage does besides its own logic.

``run_stage`` reads the stage's input (the input files, one shard of the previous stage, or all of
it), hands the records to the stage function with a ``StageRun``, then checks the ledger, writes the
outputs, the ledger rows, the audit copies of filtered records (``_dropped/``) and the stage's
stats, and returns the hand-off that goes to XCom. Nothing is written until the stage function has
returned, and every write is atomic: a stage that raises leaves its shard as it was, and its retry
rewrites that shard and nothing else.

The hand-off, the one shape every stage passes on (a mapped stage returns one, an unmapped stage
one per output shard)::

    {"stage": "generate", "shard": 3, "n_shards": 8, "output": "<url of part-00003.parquet>",
     "stats": {"input": 64, "kept": 60, "filtered": 3, "failed": 1, "produced": 60}}
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generic, TypeVar

from synth_tasks.config import EndpointConfig, MethodConfig
from synth_tasks.environment import Environment
from synth_tasks.inputs import InputError, InputRecord, list_input_files, read_inputs
from synth_tasks.ledger import LEDGER_SCHEMA, StageLedger
from synth_tasks.method import EXPORT, Method, Stage
from synth_tasks.progress import Progress
from synth_tasks.storage import RunLayout, Store

if TYPE_CHECKING:
    from synth_tasks.llm.client import LLMClient, LLMError

C = TypeVar("C", bound=MethodConfig)

log = logging.getLogger(__name__)

Handoff = dict[str, Any]


class StageRun(Generic[C]):
    """What a stage function talks to: its config (``cfg``, typed by the method's config class),
    where it runs (``env``, ``layout``, ``shard``), the accounting calls, its declared artifacts and,
    for a stage declared with ``llm=...``, the LLM endpoint and client (each made on first use)."""

    def __init__(self, stage: Stage, cfg: C, layout: RunLayout, shard: int, n_shards: int, *,
                 env: Environment | None = None, endpoint_for: Callable[[str], Any] | None = None,
                 llm_shares: int = 1, input_url: str | None = None, input_store: Store | None = None,
                 artifacts: tuple[str, ...] = ()):
        self.stage, self.cfg, self.layout = stage, cfg, layout
        self.env = env or Environment(partition=layout.partition, data_root=layout.store.root)
        self.input_url, self.input_store = input_url, input_store  # the first stage's input files
        self.shard, self.n_shards = shard, n_shards
        self.ledger = StageLedger(stage.name, shard)
        self.outputs: list[dict] = []
        self.counts: Counter = Counter()  # the stage's own counters (e.g. responses per instruction)
        self.info: dict[str, Any] = {}  # small facts for the run summary (e.g. diversity metrics)
        self._endpoint_for, self._llm_shares, self._artifacts = endpoint_for, llm_shares, artifacts
        self._client = self._endpoint = None

    @property
    def store(self) -> Store:
        return self.layout.store

    def artifact(self, name: str) -> str:
        """The folder of an artifact the method declares (``Stage(artifacts=(name,))``): files a
        stage writes beside its output for a later stage or the export to read by the same name."""
        if name not in self._artifacts:
            raise KeyError(f"stage {self.stage.name!r}: no artifact {name!r}; the method declares {list(self._artifacts)}")
        return self.layout.stage_dir(name)

    def read_inputs(self, files: list[str], text_column: str, id_column: str | None = None,
                    extra_columns: tuple[str, ...] = ()) -> list[InputRecord]:
        """The usable records of the first stage's input files, ids unique across files (a row
        without an id is named by its path under the input and its row). Unusable files and rows
        are accounted for here as failed, naming the file and row; the stage accounts for the
        records it gets."""
        records, _ = read_inputs(self.input_store, files, self.ledger, text_column, id_column, extra_columns,
                                 base=self.input_url)
        return records

    # -- accounting: every record that enters leaves as exactly one of these --------------------
    def kept(self, record_id: str, *outputs: dict) -> None:
        """The record goes on; ``outputs`` (none, one or several records) are what it becomes."""
        self.ledger.kept(record_id)
        self.outputs.extend(outputs)

    def filtered(self, record_id: str, reason: str, **audit: Any) -> None:
        """Dropped with a "kind: detail" reason; ``audit`` fields go to ``_dropped/`` with it."""
        self.ledger.filtered(record_id, reason, audit)

    def failed(self, record_id: str, error: str, raw: str | None = None) -> None:
        self.ledger.failed(record_id, error, raw=raw)

    def created(self, record_id: str) -> None:
        """A record this stage makes itself (an evolved instruction); it must then be accounted
        for like a received one."""
        self.ledger.created(record_id)

    def audit(self, record_id: str, **fields: Any) -> None:
        """An audit copy, in ``_dropped/``, of a part of a record that was dropped while the record
        itself goes on or fails (one failed response of an instruction): not a ledger row."""
        self.ledger.dropped.append({"id": record_id, **fields})

    def emit(self, *outputs: dict) -> None:
        """Outputs not tied to one input record (prepare's planned jobs)."""
        self.outputs.extend(outputs)

    # -- LLM -------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> EndpointConfig:
        """The endpoint of the stage's declared connection Param (resolved on first use)."""
        if self._endpoint is None:
            if self.stage.llm is None or self._endpoint_for is None:
                raise RuntimeError(f"stage {self.stage.name!r} is not declared with llm=...: it has no LLM endpoint")
            self._endpoint = self._endpoint_for(self.stage.llm)
            log.info("%s shard %d: LLM endpoint %s, model %s (from the %s Param)", self.stage.name, self.shard,
                     self._endpoint.base_url, self._endpoint.model, self.stage.llm)
        return self._endpoint

    @property
    def llm(self) -> LLMClient:
        """The stage's LLM client: its endpoint, the run's response cache and this shard's share of
        the token budget."""
        if self._client is None:
            from synth_tasks.llm.client import LLMClient  # httpx and openai: not at DAG parse time

            self._client = LLMClient.for_stage(self.cfg, self.endpoint, self.layout, self.n_shards * self._llm_shares)
        return self._client

    def progress(self, total: int, what: str | None = None) -> Progress:
        return Progress(f"{what or self.stage.name} shard {self.shard}", total, log)

    def run_async(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``make()`` on an event loop and close the LLM client after it."""
        async def main():
            try:
                return await make()
            finally:
                if self._client is not None:
                    await self._client.aclose()

        return asyncio.run(main())

    def llm_calls(self, items: list[dict], make_call: Callable[[dict], Awaitable[Any]], *,
                  on_failure: Callable[[dict, LLMError], None] | None = None,
                  progress: Progress | None = None) -> list[tuple[dict, Any]]:
        """One call per item (``make_call(item)`` returns a coroutine using ``self.llm``), run under
        the client's concurrency bound; the successes come back as (item, result) in input order.
        A call that fails fails its item's record (``item["id"]``) with the error and raw text; a
        call whose prompt is over the endpoint's context (never sent: kind "prompt_too_long")
        filters it, with the reason "prompt_too_long: ~N prompt tokens + M max_tokens > C context
        tokens". ``on_failure(item, error)`` takes both instead, where given (a failed figure
        description leaves its paper as it was; items that are not records are not filtered)."""
        from synth_tasks.llm.client import PROMPT_TOO_LONG, LLMError

        progress = progress or self.progress(len(items))

        def fail(item: dict, exc: LLMError) -> None:
            if exc.kind == PROMPT_TOO_LONG:  # the record is too long for the model, not failed
                self.filtered(item["id"], str(exc))
            else:
                self.failed(item["id"], str(exc), raw=exc.raw)

        handle = on_failure or fail

        async def one(item: dict):
            try:
                result = await make_call(item)
            except LLMError as exc:
                handle(item, exc)
                progress.update(error=True)
                return None
            progress.update(tokens=_fresh_tokens(result))
            return item, result

        async def all_calls():
            return await asyncio.gather(*(one(item) for item in items))

        return [r for r in self.run_async(all_calls) if r is not None]

    # -- the end of the stage --------------------------------------------------------------------
    def stats(self, seconds: float) -> dict:
        stats = self.ledger.stats() | {"produced": len(self.outputs), "seconds": round(seconds, 3),
                                       "n_shards": self.n_shards, "counts": dict(self.counts), "info": self.info}
        if self._endpoint is not None:  # usage stays 0 where the stage only asked what the endpoint is
            from synth_tasks.llm.client import Usage

            usage = (self._client.usage if self._client is not None else Usage()).as_dict()
            stats |= {"usage": usage, "model": self._endpoint.model,
                      "endpoint": {"base_url": self._endpoint.base_url, "model": self._endpoint.model}}
        return stats


def _fresh_tokens(result) -> int:
    """Completion tokens a call generated (0 from the cache). Chat results and dicts with the same
    keys carry them; judges and filters return scores or verdicts, with no tokens to count."""
    get = result.get if isinstance(result, dict) else lambda key, default: getattr(result, key, default)
    return 0 if get("cached", True) else get("completion_tokens", 0)


# ---------------------------------------------------------------------------------------------
# shard planning
# ---------------------------------------------------------------------------------------------
def plan_shard_size(n_records: int, shard_size: int, max_shards: int | None) -> int:
    """``shard_size``, grown where the records would need more than ``max_shards`` mapped tasks
    (Airflow refuses to map more than ``[core] max_map_length``)."""
    if max_shards is None or n_records <= shard_size * max_shards:
        return shard_size
    grown = math.ceil(n_records / max_shards)
    log.warning("%d records in shards of shard_size=%d would make %d mapped tasks, over Airflow's "
                "[core] max_map_length=%d: using shards of %d. Raise shard_size or max_map_length to choose.",
                n_records, shard_size, math.ceil(n_records / shard_size), max_shards, grown)
    return grown


def plan_shards(n_records: int, seconds_per_record: float, target_seconds: float, shard_size: int | None,
                max_shards: int | None) -> list[int]:
    """The records in each shard an unmapped stage writes, in order (at least one shard, maybe
    empty, so the next stage always runs).

    ``shard_size`` given: shards of that size, the last one holding the rest (grown to fit
    ``max_shards``). Else planned: as many shards as can each carry ``target_seconds`` of work at
    ``seconds_per_record`` (the cost of the mapped stages that will run over them), at most
    ``max_shards``, records spread evenly so every shard carries the target (only a single shard may
    carry less: there are too few records for more)."""
    if shard_size is not None:
        size = plan_shard_size(n_records, shard_size, max_shards)
        return [min(size, n_records - start) for start in range(0, n_records, size)] or [0]
    per_shard = math.ceil(target_seconds / seconds_per_record) if seconds_per_record > 0 else n_records
    n_shards = max(1, n_records // max(1, per_shard))
    if max_shards is not None:
        n_shards = min(n_shards, max_shards)
    base, rest = divmod(n_records, n_shards)
    return [base + (1 if i < rest else 0) for i in range(n_shards)]


def write_shards(layout: RunLayout, stage: str, rows: list[dict], sizes: list[int]) -> list[str]:
    """``rows`` as consecutive shards of the given sizes (``plan_shards``)."""
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [layout.store.write_parquet(layout.part(stage, shard), rows[start : start + size])
            for shard, (start, size) in enumerate(zip(starts, sizes))]


def _uniform(rows: list[dict]) -> list[dict]:
    """Rows with the union of their keys (Parquet takes one set of columns)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k) for k in keys} for r in rows]


# ---------------------------------------------------------------------------------------------
# the runner
# ---------------------------------------------------------------------------------------------
def read_handoffs(layout: RunLayout, upstream: list[Handoff]) -> list[dict]:
    """Every record of the given hand-offs, in shard order."""
    ordered = sorted(upstream, key=lambda h: h["shard"])
    return [r for h in ordered for r in layout.store.read_parquet(h["output"])]


def run_stage(method: Method, stage: Stage, cfg, layout: RunLayout, upstream: Handoff | list[Handoff] | None, *,
              env: Environment | None = None, endpoint_for: Callable[[str], Any] | None = None,
              max_shards: int | None = None, input_url: str | None = None,
              allowed_roots: tuple[str, ...] | None = None) -> Handoff | list[Handoff]:
    """Run one stage (one shard of it, if mapped) and return its hand-off(s).

    The first stage takes the input files under ``input_url``, read through the environment's
    store for the input's own filesystem and, with ``allowed_roots``, only from inside those (then
    the partition's work is started afresh);
    a mapped stage takes the one shard its upstream hand-off names; an unmapped stage takes all of
    its upstream hand-offs and writes its output in shards again, planned by ``plan_shards``."""
    started, started_at = time.monotonic(), time.time()
    env = env or Environment(partition=layout.partition, data_root=layout.store.root)
    first = stage is method.stages[0]
    input_store = env.input_store(input_url) if first else None
    if first:
        records = list_input_files(input_store, input_url, in_folder=method.input_files, allowed_roots=allowed_roots)
        shard, n_shards = 0, 1
    elif stage.mapped:
        shard, n_shards = upstream["shard"], upstream["n_shards"]
        records = layout.store.read_parquet(upstream["output"])
    else:
        records, shard, n_shards = read_handoffs(layout, upstream), 0, 1

    run = StageRun(stage, cfg, layout, shard, n_shards, env=env, endpoint_for=endpoint_for,
                   llm_shares=max(1, len(method.llm_stages)), input_url=input_url, input_store=input_store,
                   artifacts=method.artifacts)
    if first:  # its own artifacts are written while it runs: no stale file of an earlier run may stay
        layout.clear(list(stage.artifacts))
    stage.run(run, records)

    ledger = run.ledger
    # The first stage discovers its records while reading the files: what it accounted for is its input.
    input_ids = [r["record_id"] for r in ledger.rows] if first else [r["id"] for r in records]
    ledger.check_complete(input_ids + sorted(ledger.created_ids))
    if first:
        if not run.outputs:
            problems = [r["error"] or r["reason"] for r in ledger.rows][:5]
            raise InputError(f"no usable input records in {input_url!r}: {problems}")
        # A re-run of a partition starts its work afresh, but only now that its input has proved
        # usable; the published final/ stays until the new export replaces it.
        layout.clear_working([s.name for s in method.stages] + [a for a in method.artifacts if a not in stage.artifacts]
                             + [EXPORT])

    if ledger.dropped:
        layout.store.write_parquet(layout.part(f"_dropped/{stage.name}", shard), _uniform(ledger.dropped))
    layout.store.write_parquet(layout.ledger_part(stage.name, shard), ledger.rows, LEDGER_SCHEMA)
    if stage.mapped:
        outputs = [layout.store.write_parquet(layout.part(stage.name, shard), run.outputs)]
    else:
        # The tasks these shards become run every mapped stage up to the next unmapped one.
        work = sum(s.seconds_per_record(cfg) for s in method.mapped_after(stage))
        sizes = plan_shards(len(run.outputs), work, cfg.task_target_seconds, cfg.shard_size, max_shards)
        log.info("%s: %d records in %d shards of %d-%d (%s)", stage.name, len(run.outputs), len(sizes), min(sizes),
                 max(sizes), f"shard_size={cfg.shard_size}" if cfg.shard_size is not None else
                 f"planned: {work * 1000:.2f} ms of work a record, {cfg.task_target_seconds:g} s a task")
        outputs = write_shards(layout, stage.name, run.outputs, sizes)
    stats = run.stats(time.monotonic() - started) | ({"started_at": started_at} if first else {})
    layout.store.write_json(layout.stats_part(stage.name, shard), stats)  # last: the shard is complete
    log.info("%s shard %d: in %d, kept %d, filtered %d, failed %d, produced %d", stage.name, shard,
             stats["input"], stats["kept"], stats["filtered"], stats["failed"], stats["produced"])

    small = {k: stats[k] for k in ("input", "kept", "filtered", "failed", "produced")}
    handoffs = [{"stage": stage.name, "shard": shard if stage.mapped else i, "n_shards": n_shards if stage.mapped
                 else len(outputs), "output": url, "stats": small} for i, url in enumerate(outputs)]
    return handoffs[0] if stage.mapped else handoffs
