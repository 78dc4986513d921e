"""Every file in dags/ imports cleanly and every DAG follows the project's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) == len(DAG_FILES)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_one_dag_per_file_named_after_its_dag_id(dagbag, path):
    dag_ids = [d for d, dag in dagbag.dags.items() if Path(dag.fileloc).name == path.name]
    assert dag_ids == [path.stem]


def test_dag_rules(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id}: doc_md is the UI's description"
        assert dag.catchup is False, dag_id
        # daily on data intervals; a DAG triggered by other DAGs' Assets as well keeps that timetable
        timetable = dag.timetable.timetable if type(dag.timetable).__name__ == "AssetOrTimeSchedule" else dag.timetable
        assert type(timetable).__name__ == "CronDataIntervalTimetable", f"{dag_id}: keyed to data intervals"
        assert timetable.expression in ("@daily", "0 0 * * *"), f"{dag_id}: daily"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
        assert any(t.task_id in ("export", "split") for t in dag.tasks), f"{dag_id}: no final split task"
        for name, param in dag.params.items():
            assert param.description, f"{dag_id}: Param {name} has no description"


def test_dag_files_do_not_import_heavy_libraries_at_parse_time():
    """Parse time (measured by bench/bench_dag.py) is the imports: boto3 came with an Asset URI of a
    scheme Airflow does not know (it then loads every provider's URI handlers, Amazon's S3 hook too)."""
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, %r); import importlib.util as u\n"
            "for p in %r:\n"
            "    s = u.spec_from_file_location('m', p); s.loader.exec_module(u.module_from_spec(s))\n"
            "print('HEAVY=' + ','.join(m for m in ('openai', 'pyarrow', 'pandas', 'tiktoken', 'torch', 'boto3') if m in sys.modules))"
            ) % (str(DAGS), [str(p) for p in DAG_FILES])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = [line for line in out.stdout.splitlines() if line.startswith("HEAVY=")]
    assert heavy == ["HEAVY="]


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_are_a_declaration_not_an_assembly(path):
    """A DAG file is its UI description plus one call that builds the DAG from the method's declaration."""
    import ast

    tree = ast.parse(path.read_text())
    code = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    lines = sum(node.end_lineno - node.lineno + 1 for node in code)
    assert lines <= 30, f"{path.name}: {lines} lines of code"
    assert "build_dag(" in path.read_text()

