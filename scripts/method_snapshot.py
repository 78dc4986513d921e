"""Fingerprint every method's outputs, to show a refactor changed nothing.

Runs each method in this process (``synth_tasks.pipeline.run_method``, no Airflow) on its shipped
sample input with a small config, against the embedded model, and writes the sha256 of every file
of the run's partition (stage shards, ledger, _dropped/, final/) that does not record time:

    python scripts/method_snapshot.py --data /tmp/snap --out before.json   # first run fills the cache
    python scripts/method_snapshot.py --data /tmp/snap --out before.json   # replayed from the cache
    ... refactor ...
    python scripts/method_snapshot.py --data /tmp/snap --check before.json

Runs after the first one answer every LLM request from the response cache under ``--data``, so
they are deterministic and take seconds. ``--check`` exits 1 naming each file that differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = ROOT / "synth_tasks" / "include"

# Small configs that reach final/ on the 135M model (the DAG end-to-end tests' sizes).
CONFIGS = {
    "mind": {"input_path": "include/sample_data/mind/prob140_sample.jsonl", "max_chunks": 2,
             "styles": ["teacher_student", "two_students", "interview"], "max_tokens": 256, "shard_size": 4,
             "train_ratio": 0.5, "min_topic_overlap": 0.0},
    "markdown_qa": {"input_path": "include/sample_data/markdown_qa/docs/ch03-04-comments.md",
                    "pairs_per_section": 2, "max_tokens": 256, "train_ratio": 0.5},
    "instruct": {"input_path": "tests/fixtures/instruct/seeds.jsonl", "self_instruct_count": 2, "evol_rounds": 1,
                 "n_responses": 2, "max_instruction_tokens": 48, "max_response_tokens": 64, "min_quality": 0.0,
                 "preference_margin": 0.1, "shard_size": 3, "train_ratio": 0.5},
    "curriculum": {"input_path": "include/configs/curriculum/stages.yaml", "items_per_stage": 2,
                   "eval_items_per_stage": 2, "shard_size": 8, "duplicate_threshold": 99.0, "max_tokens": 200},
    "data_selection": {"input_path": "include/configs/data_selection_mix.yaml"},
    "personas": {"input_path": "include/sample_data/mind/prob140_sample.jsonl", "max_personas": 3, "turns": 2,
                 "train_ratio": 0.5, "shard_size": 8},
    "papers": {"input_path": "include/sample_data/papers", "max_contexts_per_paper": 2, "train_ratio": 1.0},
    "knowledge_graph": {"input_path": "include/sample_data/markdown_qa/docs", "chunk_tokens": 250,
                        "chunk_overlap": 30, "max_chunks": 2, "extraction_max_tokens": 256, "max_reports": 0,
                        "path_hops": [], "global_questions": False, "summary_min_chars": 4000,
                        "entity_grounding_threshold": 0, "train_ratio": 0.5},
}

# Files that record when or how long, not what: their content differs between identical runs.
TIMED = ("_stats/", "_summary.json", "README.md", "run_report")


def _input_url(path: str) -> str:
    if path.startswith("include/"):
        return f"file://{INCLUDE / path.removeprefix('include/')}"
    return f"file://{path if path.startswith('/') else ROOT / path}"


def snapshot(data: Path, methods: list[str]) -> dict[str, dict[str, str]]:
    from synth_tasks.config import parse_config
    from synth_tasks.llm.endpoint import resolve_endpoint
    from synth_tasks.method import load_method
    from synth_tasks.pipeline import run_method
    from synth_tasks.storage import RunLayout, Store

    store = Store(f"file://{data}")
    result: dict[str, dict[str, str]] = {}
    for name in methods:
        method = load_method(name)
        values = dict(CONFIGS[name])
        cfg = parse_config(method.config, values)
        layout = RunLayout(store, name, "snapshot")
        run_method(method, cfg, layout, _input_url(values["input_path"]), endpoint_for=lambda _: resolve_endpoint(),
                   run_info={"run_id": "snapshot", "run_timestamp": "2026-01-01_00-00-00"})
        base = data / name / "snapshot"
        files = sorted(p for p in base.rglob("*") if p.is_file())
        result[name] = {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
                        if not any(t in str(p.relative_to(base)) for t in TIMED)}
        print(f"{name}: {len(result[name])} files", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="data root (keeps the LLM response cache)")
    parser.add_argument("--methods", nargs="*", default=list(CONFIGS))
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path)
    group.add_argument("--check", type=Path)
    args = parser.parse_args()
    got = snapshot(args.data, args.methods)
    if args.out:
        args.out.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        return 0
    want = json.loads(args.check.read_text())
    differ = [f"{m}/{f}" for m in args.methods for f in sorted(set(want[m]) | set(got[m]))
              if want[m].get(f) != got[m].get(f)]
    for path in differ:
        print(f"differs: {path}")
    print(f"{len(differ)} files differ" if differ else "identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
