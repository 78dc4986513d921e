"""What every stage does at its end: check the ledger is complete, write the kept records, the
dropped ones (for audit) and the ledger rows, and return the small result that goes to XCom."""

from __future__ import annotations

import time

import pyarrow as pa

from synth_tasks.ledger import LEDGER_SCHEMA, StageLedger
from synth_tasks.storage import RunLayout


def write_shards(layout: RunLayout, stage: str, rows: list[dict], shard_size: int) -> list[str]:
    """Write ``rows`` as consecutive shards of ``shard_size``; the URLs are what the mapped tasks take."""
    return [layout.store.write_parquet(layout.part(stage, shard), rows[start : start + shard_size])
            for shard, start in enumerate(range(0, len(rows), shard_size))]


def finish_stage(
    layout: RunLayout,
    ledger: StageLedger,
    input_ids: list[str],
    outputs: list[dict],
    *,
    started: float,
    dropped: list[dict] | None = None,
    schema: pa.Schema | None = None,
    extra_stats: dict | None = None,
) -> dict:
    ledger.check_complete(input_ids)
    stage, shard = ledger.stage, ledger.shard
    output = layout.store.write_parquet(layout.part(stage, shard), outputs, schema)
    layout.store.write_parquet(layout.ledger_part(stage, shard), ledger.rows, LEDGER_SCHEMA)
    if dropped:
        layout.store.write_parquet(layout.part(f"_dropped/{stage}", shard), dropped)
    stats = ledger.stats() | {"produced": len(outputs), "seconds": round(time.monotonic() - started, 3)}
    return {"output": output, "stats": stats | (extra_stats or {})}


def run_llm_calls(client, items: list[dict], make_call, ledger: StageLedger, progress) -> list[tuple[dict, object]]:
    """One LLM call per item (``make_call(item)`` returns a coroutine using the client), run under the
    client's concurrency bound. A call that fails is recorded as failed in the ledger, with its error
    and raw text; the successes come back as (item, result) in input order. Closes the client."""
    import asyncio

    from synth_tasks.llm.client import LLMError

    async def one(item: dict):
        try:
            result = await make_call(item)
        except LLMError as exc:
            ledger.failed(item["id"], str(exc), raw=exc.raw)
            progress.update(error=True)
            return None
        # judges and filters return scores or verdicts, not chat results: no tokens to count there
        progress.update(tokens=0 if getattr(result, "cached", True) else result.completion_tokens)
        return item, result

    async def run_all():
        try:
            return await asyncio.gather(*(one(item) for item in items))
        finally:
            await client.aclose()

    return [r for r in asyncio.run(run_all()) if r is not None]
