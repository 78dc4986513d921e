"""Record accounting. Every record that enters a stage leaves it as exactly one of kept, filtered
(with a reason) or failed (with the error and, where there is one, the raw LLM response). The
ledger rows of a stage are written beside its output so "where did record X go?" has an answer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

LEDGER_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("stage", pa.string()),
        ("shard", pa.int32()),
        ("outcome", pa.string()),
        ("reason", pa.string()),
        ("error", pa.string()),
        ("raw_response", pa.string()),
    ]
)


class Outcome(StrEnum):
    KEPT = "kept"
    FILTERED = "filtered"
    FAILED = "failed"


class LedgerError(RuntimeError):
    """A stage tried to account for a record twice, or left one unaccounted."""


@dataclass
class StageLedger:
    stage: str
    shard: int
    _rows: dict[str, dict] = field(default_factory=dict)
    _created: set[str] = field(default_factory=set)
    dropped: list[dict] = field(default_factory=list)  # audit copies of filtered records, for _dropped/

    def _add(self, record_id: str, outcome: Outcome, reason=None, error=None, raw=None) -> None:
        if record_id in self._rows:
            raise LedgerError(f"{self.stage}[{self.shard}]: record {record_id!r} accounted for twice")
        self._rows[record_id] = {
            "record_id": record_id,
            "stage": self.stage,
            "shard": self.shard,
            "outcome": str(outcome),
            "reason": reason,
            "error": error,
            "raw_response": raw,
        }

    def kept(self, record_id: str) -> None:
        self._add(record_id, Outcome.KEPT)

    def filtered(self, record_id: str, reason: str, payload: dict | None = None) -> None:
        """Filtered with its reason; ``payload`` (what was dropped: the text, the raw answer) goes
        into the audit copy beside the reason, so the ledger and ``_dropped/`` cannot disagree."""
        self._add(record_id, Outcome.FILTERED, reason=reason)
        self.dropped.append({"id": record_id, "reason": reason, **(payload or {})})

    def failed(self, record_id: str, error: str, raw: str | None = None) -> None:
        self._add(record_id, Outcome.FAILED, error=error, raw=raw)

    def created(self, record_id: str) -> None:
        """Register a record this stage makes itself (an evolved instruction): it is accounted for
        here like a received one, but the chain check does not expect it from the previous stage."""
        self._created.add(record_id)

    @property
    def created_ids(self) -> set[str]:
        return set(self._created)

    @property
    def rows(self) -> list[dict]:
        return list(self._rows.values())

    def check_complete(self, input_ids: list[str]) -> None:
        """Raise unless every input id has exactly one row and no row is for an unknown id."""
        expected = set(input_ids)
        if len(expected) != len(input_ids):
            dupes = [k for k, n in Counter(input_ids).items() if n > 1][:5]
            raise LedgerError(f"{self.stage}[{self.shard}]: duplicate input ids {dupes}")
        if not self._created <= expected:
            raise LedgerError(f"{self.stage}[{self.shard}]: created records {sorted(self._created - expected)[:5]} "
                              "are not among the stage's records")
        missing = expected - self._rows.keys()
        extra = self._rows.keys() - expected
        if missing or extra:
            raise LedgerError(
                f"{self.stage}[{self.shard}]: unaccounted records {sorted(missing)[:5]}, "
                f"unknown records {sorted(extra)[:5]}"
            )

    def stats(self) -> dict:
        outcomes = Counter(r["outcome"] for r in self._rows.values())
        reasons = Counter(_kind(r["reason"]) for r in self._rows.values() if r["reason"])
        errors = Counter(_kind(r["error"]) for r in self._rows.values() if r["error"])
        return {
            "stage": self.stage,
            "shard": self.shard,
            "input": len(self._rows),
            "created": len(self._created),
            "kept": outcomes[Outcome.KEPT],
            "filtered": outcomes[Outcome.FILTERED],
            "failed": outcomes[Outcome.FAILED],
            "filter_reasons": dict(sorted(reasons.items())),
            "error_kinds": dict(sorted(errors.items())),
        }


def _kind(message: str) -> str:
    """Reasons and errors are written "kind: detail"; the summary counts by kind."""
    return message.split(":", 1)[0]


def summarize_stages(shard_stats: list[dict]) -> dict:
    """Add up per-shard stats into per-stage totals and check that every stage balances."""
    stages: dict[str, dict] = {}
    for s in shard_stats:
        agg = stages.setdefault(
            s["stage"],
            {"shards": 0, "input": 0, "created": 0, "kept": 0, "filtered": 0, "failed": 0, "produced": 0,
             "filter_reasons": Counter(), "error_kinds": Counter(), "usage": Counter(), "counts": Counter(),
             "seconds": 0.0, "models": set(), "endpoints": set(), "info": {}},
        )
        agg["shards"] += 1
        for key in ("input", "kept", "filtered", "failed"):
            agg[key] += s[key]
        agg["created"] += s.get("created", 0)
        agg["produced"] += s.get("produced", s["kept"])
        agg["filter_reasons"].update(s.get("filter_reasons", {}))
        agg["error_kinds"].update(s.get("error_kinds", {}))
        agg["usage"].update(s.get("usage", {}))
        agg["counts"].update(s.get("counts", {}))  # a stage's own counters (e.g. responses per instruction)
        agg["seconds"] += s.get("seconds", 0.0)
        agg["models"].update([s["model"]] if s.get("model") else [])
        if s.get("endpoint"):  # which endpoint served the stage: base URL and model, never a key
            agg["endpoints"].add((s["endpoint"]["base_url"], s["endpoint"]["model"]))
        agg["info"].update(s.get("info") or {})  # small facts an unmapped stage reports (one shard)
    for agg in stages.values():
        agg["balanced"] = agg["input"] == agg["kept"] + agg["filtered"] + agg["failed"]
        for key in ("filter_reasons", "error_kinds", "usage", "counts"):
            agg[key] = dict(sorted(agg[key].items()))
        agg["seconds"] = round(agg["seconds"], 3)
        agg["models"] = sorted(agg["models"])
        agg["endpoints"] = [{"base_url": u, "model": m} for u, m in sorted(agg["endpoints"])]
    return stages
