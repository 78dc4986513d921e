"""The last task of every DAG: the grouped train/validation split of the last stage's records, and
the run summary, which adds up every stage's stats (as written beside its outputs) and shows that
every input record is accounted for."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from synth_tasks.card import cluster_sizes, write_card
from synth_tasks.ledger import LEDGER_SCHEMA, LedgerError, StageLedger, summarize_stages
from synth_tasks.method import EXPORT, Method
from synth_tasks.split import split_by_group
from synth_tasks.stage import Handoff, read_handoffs
from synth_tasks.storage import RunLayout


@dataclass
class ExportContext:
    """What a method's ``extra_files`` gets: where to write, the config, the run's timestamp, the
    last stage's records, the artifacts its stages wrote (``artifact(name)``), and ``info`` for
    facts that belong in the summary."""

    store: Any
    final_dir: str
    cfg: Any
    run_timestamp: str
    records: list[dict]
    layout: RunLayout
    artifacts: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)

    def artifact(self, name: str) -> str:
        """The folder of an artifact a stage declared (``Stage(artifacts=(name,))``)."""
        if name not in self.artifacts:
            raise KeyError(f"no artifact {name!r}; the method declares {list(self.artifacts)}")
        return self.layout.stage_dir(name)


def check_chain(stages: dict, order: list[str]) -> list[str]:
    """Each stage must take in exactly what the one before it produced (records a stage creates
    itself, like evolved instructions, are counted in its input but not expected from before)."""
    problems = [f"stage {name} wrote no stats: did it run?" for name in order if name not in stages]
    present = [name for name in order if name in stages]
    for prev, nxt in zip(present, present[1:]):
        received = stages[nxt]["input"] - stages[nxt]["created"]
        if stages[prev]["produced"] != received:
            problems.append(f"{prev} produced {stages[prev]['produced']} but {nxt} took in {received}")
    problems += [f"{name} does not balance: {s}" for name, s in stages.items() if not s["balanced"]]
    return problems


def read_stage_stats(layout: RunLayout, order: list[str]) -> list[dict]:
    return [layout.store.read_json(url) for name in order for url in layout.store.glob(f"{layout.base}/_stats/{name}/*.json")]


def run_export(method: Method, cfg, layout: RunLayout, upstream: list[Handoff], run_info: dict) -> dict:
    """Split, write the final files and the summary; raise LedgerError if anything is unaccounted
    for (after writing the summary that says what)."""
    started = time.monotonic()
    store = layout.store
    received = read_handoffs(layout, upstream)
    spec = method.export
    records = spec.records(received) if spec.records else received
    train, validation = split_by_group(records, spec.group_key, cfg.train_ratio, cfg.seed)
    final = layout.staging_dir  # published over final/ only once everything is accounted for
    outputs = {
        "train_jsonl": store.write_jsonl(f"{final}/train.jsonl", train),
        "validation_jsonl": store.write_jsonl(f"{final}/validation.jsonl", validation),
        "train_parquet": store.write_parquet(f"{final}/train.parquet", train),
        "validation_parquet": store.write_parquet(f"{final}/validation.parquet", validation),
    }
    ctx = ExportContext(store, final, cfg, run_info.get("run_timestamp", ""), received, layout, method.artifacts)
    if spec.extra_files is not None:
        outputs |= spec.extra_files(ctx, train, validation)
    if spec.cluster_field is not None:  # the final records' clusters, for the summary and the card's plot
        ctx.info.setdefault("cluster_sizes", cluster_sizes(train + validation, spec.cluster_field))

    ledger = StageLedger(EXPORT, 0)
    for r in received:
        ledger.kept(r["id"])
    ledger.check_complete([r["id"] for r in received])
    store.write_parquet(layout.ledger_part(EXPORT, 0), ledger.rows, LEDGER_SCHEMA)
    export_stats = ledger.stats() | {"produced": len(train) + len(validation),
                                     "seconds": round(time.monotonic() - started, 3)}
    store.write_json(layout.stats_part(EXPORT, 0), export_stats)

    shard_stats = read_stage_stats(layout, method.stage_order)
    stages = summarize_stages(shard_stats)
    problems = check_chain(stages, method.stage_order)
    usage: dict = {}
    for s in stages.values():
        for k, v in s["usage"].items():
            usage[k] = usage.get(k, 0) + v
    first = stages.get(method.stages[0].name, {})
    started_at = min((s["started_at"] for s in shard_stats if "started_at" in s), default=time.time())
    summary = run_info | {
        "dag_id": layout.dag_id,
        "partition": layout.partition,
        "config": cfg.model_dump(mode="json"),
        "stage_order": method.stage_order,
        "stages": stages,
        "accounted_for": not problems and bool(first),
        "problems": problems,
        "usage": usage,
        "models": sorted({m for s in stages.values() for m in s["models"]}),
        "endpoints": [{"base_url": u, "model": m} for u, m in
                      sorted({(e["base_url"], e["model"]) for s in stages.values() for e in s["endpoints"]})],
        "info": {k: v for s in stages.values() for k, v in s["info"].items()} | ctx.info,
        "wall_seconds": round(time.time() - started_at, 1),  # from the start of the first stage
        "outputs": outputs,
        "counts": {"train": len(train), "validation": len(validation),
                   "train_groups": len({r[spec.group_key] for r in train}),
                   "validation_groups": len({r[spec.group_key] for r in validation})},
    }
    if problems:
        staged = store.write_json(f"{layout.staging_dir}/_summary.json", summary)
        raise LedgerError(f"records unaccounted for, see {staged} (the published final/ is unchanged): {problems}")
    outputs |= write_card(store, final, summary, train, validation, export=spec, tags=method.tags)
    published = {url.rsplit("/", 1)[1]: url for url in layout.publish()}
    summary["outputs"] = outputs = {name: published[url.rsplit("/", 1)[1]] for name, url in outputs.items()}
    if spec.after_publish is not None:
        spec.after_publish(ctx)
        summary["info"] |= ctx.info
    summary_url = store.write_json(layout.summary, summary)  # last: the run is published
    return {"summary": summary_url, **outputs, "counts": summary["counts"]}
