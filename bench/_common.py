"""What every benchmark result records: the code it measured and the statistics of its rounds.

A results file says which commit it measured (``git rev-parse HEAD``), whether the working tree was
dirty, and a digest of the measured sources, so ``--check`` can tell a file that no longer
describes the code (the bench/ results must be regenerated whenever the measured code changes)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# Two-sided 95 % quantiles of Student's t, by degrees of freedom (1..30); the normal 1.96 beyond.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("a confidence interval needs at least two rounds")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_ci95(values: list[float]) -> dict:
    """Mean of ``values`` (one per round) with its two-sided 95 % confidence interval (Student t),
    plus the spread the interval comes from."""
    n = len(values)
    mean = statistics.fmean(values)
    half = t975(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return {"mean": round(mean, 4), "ci95": [round(mean - half, 4), round(mean + half, 4)], "n": n,
            "min": round(min(values), 4), "max": round(max(values), 4)}


def ratio_ci95(ratios: list[float]) -> dict:
    """Geometric mean of ``ratios`` (one per round) with its 95 % confidence interval: Student t on
    their logarithms. Unlike the arithmetic mean of ratios it is not pushed up by noise in the
    denominators, and a/b and b/a give reciprocal answers."""
    logs = mean_ci95([math.log(r) for r in ratios])
    return {"geometric_mean": round(math.exp(logs["mean"]), 4),
            "ci95": [round(math.exp(x), 4) for x in logs["ci95"]], "n": logs["n"],
            "min": round(min(ratios), 4), "max": round(max(ratios), 4)}


def verdict(ci: dict, goal: float) -> str:
    """Whether the rounds carry the claim "ratio >= goal": 'met' when the whole interval is at or
    above it, 'missed' when the whole interval is below, else 'undecided' (more rounds needed)."""
    low, high = ci["ci95"]
    return "met" if low >= goal else "missed" if high < goal else "undecided"


def sources_digest(paths: list[str]) -> str:
    """sha256 over the measured source files (relative paths and contents, in sorted order)."""
    h = hashlib.sha256()
    for rel in sorted(paths):
        h.update(rel.encode() + b"\0")
        p = ROOT / rel
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def expand(patterns: list[str]) -> list[str]:
    return sorted({str(p.relative_to(ROOT)) for pat in patterns for p in ROOT.glob(pat) if p.is_file()})


def provenance(measured: list[str]) -> dict:
    """The commit measured, whether the tree was dirty (and which measured files differ from it),
    the digest of the measured sources, the machine and the time."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    files = expand(measured)
    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no")
        changed = set(git("diff", "--name-only", "HEAD").split())
        dirty_measured = sorted(f for f in files if f in changed)
        untracked = set(git("ls-files", "--others", "--exclude-standard", "--", *files).split())
        dirty_measured = sorted(set(dirty_measured) | (untracked & set(files)))
    except (OSError, subprocess.CalledProcessError):
        commit, status, dirty_measured = None, "", []
    return {"commit": commit, "dirty": bool(status.strip()) or bool(dirty_measured),
            "measured_files_changed_since_commit": dirty_measured,
            "measured_patterns": list(measured), "measured_files": files, "sources_sha256": sources_digest(files),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]},
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def changed_during_run(prov: dict) -> bool:
    """Whether the measured sources differ now from when ``prov`` was taken (someone edited them
    while the benchmark ran: the numbers may mix two versions)."""
    return expand(prov["measured_patterns"]) != prov["measured_files"] or \
        sources_digest(prov["measured_files"]) != prov["sources_sha256"]


def write_result(name: str, report: dict) -> Path:
    report["provenance"]["sources_changed_during_run"] = changed_during_run(report["provenance"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / name
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def stale(name: str) -> str | None:
    """Why results file ``name`` no longer describes the code (None when it does)."""
    path = RESULTS / name
    if not path.is_file():
        return f"{shown(path)} is missing"
    prov = json.loads(path.read_text()).get("provenance") or {}
    if not prov.get("measured_patterns") or not prov.get("measured_files"):
        return f"{shown(path)} records no measured sources: regenerate it"
    if changed_during_run(prov):
        return f"{shown(path)} was measured on other code than is here now: regenerate it"
    if prov.get("sources_changed_during_run"):
        return f"{shown(path)} was measured while its sources were being edited: regenerate it"
    return None
