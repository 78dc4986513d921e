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
    """{measure: {n, mean, std, p10, median, p90}} over ``items[i]["measures"]`` (std: the sample
    standard deviation, 0 for one item); empty for no items."""
    if not items:
        return {}
    out = {}
    for name in HARDER_IS_HIGHER:
        values = [float(it["measures"][name]) for it in items]
        out[name] = {"n": len(values), "mean": round(statistics.fmean(values), 4),
                     "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                     "p10": round(percentile(values, 10), 4), "median": round(statistics.median(values), 4),
                     "p90": round(percentile(values, 90), 4)}
    return out


def rise_step(a: dict[str, float], b: dict[str, float]) -> dict:
    """The change of a measure's mean from one stage (stats ``a``) to the next (``b``), with a 95 %
    interval (Welch's standard error, normal quantile: rough for a few items per stage, and then
    wide, which is the point: a rise measured on 3 stories is not established)."""
    diff = b["mean"] - a["mean"]
    se = (a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"]) ** 0.5
    return {"change": round(diff, 4), "interval_95": [round(diff - 1.96 * se, 4), round(diff + 1.96 * se, 4)]}


def rising_check(per_stage: list[dict], measures: list[str], stats: tuple[str, ...] = ("mean", "median")) -> dict:
    """Whether each of ``measures`` gets harder stage by stage (strictly; stages without items are
    skipped and named). Reading ease counts as harder when it falls. Each step between stages is
    reported with its change of mean and 95 % interval, and ``established`` when the interval
    excludes no change. Returns {"ok", "problems", "steps", "skipped_empty_stages", "checked"}."""
    present = [s for s in per_stage if s["difficulty"]]
    problems, steps = [], []
    for name in measures:
        up = HARDER_IS_HIGHER[name]
        for prev, nxt in zip(present, present[1:]):
            step = rise_step(prev["difficulty"][name], nxt["difficulty"][name])
            lo, hi = step["interval_95"]
            steps.append({"measure": name, "from": prev["stage"], "to": nxt["stage"]} | step
                         | {"established": lo > 0 if up else hi < 0})
            for stat in stats:
                a, b = prev["difficulty"][name][stat], nxt["difficulty"][name][stat]
                if not (b > a if up else b < a):
                    problems.append(f"{name} {stat} does not {'rise' if up else 'fall'} from {prev['stage']} "
                                    f"({a}) to {nxt['stage']} ({b})")
    return {"ok": not problems, "problems": problems, "steps": steps,
            "checked": {"measures": measures, "stats": list(stats)},
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
