"""The manifest's numbers: difficulty statistics per stage, the check that they rise stage by stage,
and the training schedule over the ordered shards.

Schedules (after Naïr et al., "Curriculum Learning for Small Code Language Models", arXiv 2407.10194):
  sequential   phase k trains on stage k alone
  incremental  phase k trains on stages 1..k together (each phase adds the next stage), every item
               weighted alike
  hybrid       phase k trains mostly on stage k, with a ``replay`` share of the weight spread over
               the earlier stages (by their sizes), so earlier stages are not forgotten while the
               new one dominates
Weights are mixing probabilities per shard; each phase's weights sum to 1."""

from __future__ import annotations

import statistics
from enum import StrEnum

from synth_tasks.methods.curriculum.measures import HARDER_IS_HIGHER


class Schedule(StrEnum):
    SEQUENTIAL = "sequential"
    INCREMENTAL = "incremental"
    HYBRID = "hybrid"


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def measure_stats(items: list[dict]) -> dict[str, dict[str, float]]:
    """{measure: {mean, median, p90}} over ``items[i]["measures"]``; empty for no items."""
    if not items:
        return {}
    out = {}
    for name in HARDER_IS_HIGHER:
        values = [float(it["measures"][name]) for it in items]
        out[name] = {"mean": round(statistics.fmean(values), 4), "median": round(statistics.median(values), 4),
                     "p90": round(percentile(values, 90), 4)}
    return out


def rising_check(per_stage: list[dict], measures: list[str], stats: tuple[str, ...] = ("mean", "median")) -> dict:
    """Whether each of ``measures`` gets harder stage by stage (strictly; stages without items are
    skipped and named). Reading ease counts as harder when it falls. Returns {"ok", "problems",
    "skipped_empty_stages", "checked"}."""
    present = [s for s in per_stage if s["difficulty"]]
    problems = []
    for name in measures:
        up = HARDER_IS_HIGHER[name]
        for stat in stats:
            for prev, nxt in zip(present, present[1:]):
                a, b = prev["difficulty"][name][stat], nxt["difficulty"][name][stat]
                if not (b > a if up else b < a):
                    problems.append(f"{name} {stat} does not {'rise' if up else 'fall'} from {prev['stage']} "
                                    f"({a}) to {nxt['stage']} ({b})")
    return {"ok": not problems, "problems": problems, "checked": {"measures": measures, "stats": list(stats)},
            "skipped_empty_stages": [s["stage"] for s in per_stage if not s["difficulty"]]}


def schedule_phases(shards: list[list[dict]], kind: Schedule, replay: float = 0.25) -> list[dict]:
    """The phases of a training schedule. ``shards[i]``: stage i's shards in order, each
    {"path", "records"}. Stages without records get no phase. Returns
    [{"phase", "stage", "shards": [{"path", "weight"}]}]."""
    stages = [(i, s) for i, s in enumerate(shards) if sum(p["records"] for p in s) > 0]
    phases = []
    for k, (i, own) in enumerate(stages):
        earlier = stages[:k]
        if kind == Schedule.SEQUENTIAL:
            stage_weights = {i: 1.0}
        elif kind == Schedule.INCREMENTAL:
            sizes = {j: sum(p["records"] for p in s) for j, s in earlier + [(i, own)]}
            total = sum(sizes.values())
            stage_weights = {j: n / total for j, n in sizes.items()}
        else:
            sizes = {j: sum(p["records"] for p in s) for j, s in earlier}
            total = sum(sizes.values())
            share = replay if earlier else 0.0
            stage_weights = {j: share * n / total for j, n in sizes.items()} | {i: 1.0 - share}
        entries = []
        for j, weight in stage_weights.items():
            n = sum(p["records"] for p in shards[j])
            entries += [{"path": p["path"], "weight": round(weight * p["records"] / n, 6)} for p in shards[j]
                        if p["records"]]
        phases.append({"phase": k + 1, "stage": i, "shards": entries})
    return phases
