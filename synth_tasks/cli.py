"""Command line for local runs: ``python -m synth_tasks.cli run-dag mind [--conf JSON]``.

Runs one DAG through Airflow in this process (``dag.test()``: real tasks, real XCom, a manual
run) and prints where the train/validation files and the run summary are."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _airflow_env() -> None:
    # Must be set before anything imports airflow.
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def run_dag(dag_id: str, conf: dict) -> dict:
    """Run the DAG once; return its export task's result (paths and counts)."""
    _airflow_env()
    from airflow.dag_processing.dagbag import DagBag

    from synth_tasks.airflow_glue import data_root, store_for

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if dag_id not in bag.dags:
        raise SystemExit(f"no DAG {dag_id!r} in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}: {bag.import_errors}")
    dag_run = bag.dags[dag_id].test(run_conf=conf)
    state = str(getattr(dag_run.state, "value", dag_run.state))
    import re

    partition = re.sub(r"[^A-Za-z0-9_.-]", "-", dag_run.run_id)
    store = store_for(data_root())
    summary_url = store.join(dag_id, partition, "_summary.json")
    if state != "success" or not store.exists(summary_url):
        raise SystemExit(f"DAG run {dag_run.run_id} ended {state}; see the task logs above")
    return store.read_json(summary_url) | {"summary": summary_url}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth_tasks.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run-dag", help="run one DAG locally through dag.test()")
    run.add_argument("dag_id")
    run.add_argument("--conf", default="{}", help="JSON of Params to override")
    args = parser.parse_args(argv)
    summary = run_dag(args.dag_id, json.loads(args.conf))
    print("\n=== run summary ===")
    for name in summary["stage_order"]:
        stage = summary["stages"][name]
        created = f" (created {stage['created']})" if stage.get("created") else ""
        print(f"{name:>13}: in {stage['input']:>5}  kept {stage['kept']:>5}  filtered {stage['filtered']:>5}  "
              f"failed {stage['failed']:>5}  {stage['filter_reasons'] or ''} {stage['error_kinds'] or ''}{created}")
    print(f"accounted for: {summary['accounted_for']}   tokens: {summary['usage']}   "
          f"wall: {summary['wall_seconds']}s")
    print(f"records: {summary['counts']['train']} train, {summary['counts']['validation']} validation")
    width = max(len(name) for name in summary["outputs"]) + 2
    for name, url in sorted(summary["outputs"].items()):
        print(f"{name + ':':<{width}} {url}")
    print(f"{'summary:':<{width}} {summary['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
