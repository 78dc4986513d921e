"""Command line for local runs: ``python -m synth_tasks.cli run-dag mind [--conf JSON] [--retries N]``.

Runs one DAG through Airflow (``dag.test()``: real tasks, real XCom, a manual run; see
``airflow_glue.run_local``) and prints the per-stage counts and where the outputs are. Ctrl-C or
SIGTERM stops the run at once; a failed task ends it (no retries unless ``--retries``)."""

from __future__ import annotations

import argparse
import json
import sys

from synth_tasks.airflow_glue import run_local


def print_summary(summary: dict) -> None:
    print("\n=== run summary ===")
    width = max(len(name) for name in summary["stage_order"])
    for name in summary["stage_order"]:
        stage = summary["stages"][name]
        created = f" (created {stage['created']})" if stage.get("created") else ""
        print(f"{name:>{width}}: in {stage['input']:>5}  kept {stage['kept']:>5}  filtered {stage['filtered']:>5}  "
              f"failed {stage['failed']:>5}  {stage['filter_reasons'] or ''} {stage['error_kinds'] or ''}{created}")
    print(f"accounted for: {summary['accounted_for']}   tokens: {summary['usage']}   "
          f"wall: {summary['wall_seconds']}s")
    print(f"records: {summary['counts']['train']} train, {summary['counts']['validation']} validation")
    width = max(len(name) for name in summary["outputs"]) + 2
    for name, url in sorted(summary["outputs"].items()):
        print(f"{name + ':':<{width}} {url}")
    print(f"{'summary:':<{width}} {summary['summary']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth_tasks.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run-dag", help="run one DAG locally through dag.test()")
    run.add_argument("dag_id")
    run.add_argument("--conf", default="{}", help="JSON of Params to override")
    run.add_argument("--retries", type=int, default=0, help="retries per task (default 0: a failure ends the run)")
    args = parser.parse_args(argv)
    print_summary(run_local(args.dag_id, json.loads(args.conf), retries=args.retries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
