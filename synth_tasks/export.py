"""The last stage of every DAG: a grouped train/validation split and the run summary that shows
every input record accounted for."""

from __future__ import annotations

import time

from synth_tasks.ledger import LedgerError, StageLedger, summarize_stages
from synth_tasks.split import split_by_group
from synth_tasks.stage import finish_stage
from synth_tasks.storage import RunLayout


def check_chain(stages: dict, order: list[str]) -> list[str]:
    """Each stage must take in exactly what the one before it produced (records a stage creates
    itself, like evolved instructions, are counted in its input but not expected from before)."""
    problems = []
    for prev, nxt in zip(order, order[1:]):
        received = stages[nxt]["input"] - stages[nxt]["created"]
        if stages[prev]["produced"] != received:
            problems.append(f"{prev} produced {stages[prev]['produced']} but {nxt} took in {received}")
    problems += [f"{name} does not balance: {s}" for name, s in stages.items() if not s["balanced"]]
    return problems


def write_split_and_summary(layout: RunLayout, records: list[dict], *, group_key: str, train_ratio: float,
                            seed: int, stage_results: list[dict], stage_order: list[str],
                            run_info: dict, write_extra=None) -> dict:
    """``write_extra(store, final_dir, train, validation) -> {name: url}`` adds method-specific
    output files (e.g. conversation-only JSON) beside the standard JSONL and Parquet."""
    started = time.monotonic()
    store = layout.store
    train, validation = split_by_group(records, group_key, train_ratio, seed)
    final = f"{layout.base}/final"
    outputs = {
        "train_jsonl": store.write_jsonl(f"{final}/train.jsonl", train),
        "validation_jsonl": store.write_jsonl(f"{final}/validation.jsonl", validation),
        "train_parquet": store.write_parquet(f"{final}/train.parquet", train),
        "validation_parquet": store.write_parquet(f"{final}/validation.parquet", validation),
    }
    if write_extra is not None:
        outputs |= write_extra(store, final, train, validation)
    ledger = StageLedger("export", 0)
    for r in records:
        ledger.kept(r["id"])
    export_result = finish_stage(layout, ledger, [r["id"] for r in records], [], started=started)
    export_result["stats"]["produced"] = len(records)

    stages = summarize_stages([r["stats"] for r in stage_results] + [export_result["stats"]])
    order = [s for s in stage_order if s in stages] + ["export"]
    problems = check_chain(stages, order)
    usage: dict = {}
    for s in stages.values():
        for k, v in s["usage"].items():
            usage[k] = usage.get(k, 0) + v
    prepare_started = min((r["stats"].get("started_at", time.time()) for r in stage_results), default=time.time())
    summary = run_info | {
        "dag_id": layout.dag_id,
        "partition": layout.partition,
        "stage_order": order,
        "stages": stages,
        "accounted_for": not problems,
        "problems": problems,
        "usage": usage,
        "wall_seconds": round(time.time() - prepare_started, 1),
        "outputs": outputs,
        "counts": {"train": len(train), "validation": len(validation),
                   "train_groups": len({r[group_key] for r in train}),
                   "validation_groups": len({r[group_key] for r in validation})},
    }
    summary_url = store.write_json(layout.summary, summary)
    if problems:
        raise LedgerError(f"records unaccounted for, see {summary_url}: {problems}")
    return {"summary": summary_url, **outputs, "counts": summary["counts"]}
