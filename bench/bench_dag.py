"""The whole DAG through Airflow: how much of a run's wall time is Airflow's own, with fixed shards
("before": ``shard_size=64``) and with shards planned from the stages' cost ("after"), and how long
each DAG file takes to parse.

Each run is ``python -m synth_tasks.cli run-dag`` (``dag.test()``: real tasks, real XCom) on an
Airflow home migrated once for the benchmark (the DAGs are written to its database by the first
run, as by a deployment's DAG processor), each run with a data root (and so a response cache) of
its own. The runs:

- markdown_qa without an LLM over the shipped documents copied to a few hundred;
- MIND over the shipped sample copied to ~20,000 jobs (contexts x 7 styles) against
  ``bench/instant_server.py`` (answers at once, its own process), default Params otherwise. For the
  planned run the endpoint's decode rate is given as the Param ``llm_tokens_per_second``, as a user
  gives theirs: the instant endpoint answered ~250 requests/s inside one generate stage at
  concurrency 4 (#26: 262-295), i.e. ``max_tokens x 250 / 4`` tokens/s a request.

DAG parse time: each file of dags/ executed in a fresh process that has already imported
``airflow.sdk`` (as the DAG processor has), best of ``--parse-repeats``; the import of
``airflow.sdk`` itself is reported beside it.

Definitions (also written into the results file): see ``DEFINITIONS``.
Run: python bench/bench_dag.py [--copies 80] [--mind-jobs 20000] [--skip-mind] [--check]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _common import ROOT, provenance, shown, stale, write_result

RESULT = "dag.json"
MEASURED = ["synth_tasks/stage.py", "synth_tasks/method.py", "synth_tasks/config.py", "synth_tasks/airflow_glue.py",
            "synth_tasks/cli.py", "synth_tasks/export.py", "synth_tasks/methods/markdown_qa/*.py",
            "synth_tasks/methods/mind/*.py", "synth_tasks/llm/*.py", "dags/*.py", "bench/bench_dag.py",
            "bench/instant_server.py"]
DOCS = ROOT / "include" / "sample_data" / "markdown_qa" / "docs"
MIND_SAMPLE = ROOT / "include" / "sample_data" / "mind" / "prob140_sample.jsonl"
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
# The goals of #26: Airflow's share of wall time, the end-to-end rate of markdown_qa no-LLM on 2
# cores, MIND's end-to-end rate against its rate inside the generate stage, parse time per file.
GOAL_AIRFLOW_SHARE = 0.15
GOAL_CONVERSATIONS_PER_S = 400.0
GOAL_MIND_E2E_RATIO = 0.8
GOAL_PARSE_S = 0.2
# What the instant endpoint sustains inside one generate stage (requests/s at concurrency 4; #26
# measured 262-295): the figure a user would give for their endpoint, turned into tokens/s a request.
INSTANT_REQUESTS_PER_S = 250.0
DEFINITIONS = {
    "wall_s": "the run-dag command, start to exit (its child process included)",
    "cpu_s": "user + system CPU seconds of the run-dag command and its child (wait4)",
    "task_instances": "each stage's shards (mapped task instances) plus the export",
    "stage_function_s": "sum of the run summary's per-stage seconds: time inside the stage functions "
                        "(the export's excludes its dataset card)",
    "one_off_start_s": "command start to the first task's 'Task started' (interpreter and Airflow imports, DAG "
                       "parse, DAG sync to the database, dag run creation, the in-process execution API's "
                       "creation) plus the last task's end to the command's exit",
    "airflow_share": "1 - stage_function_s / wall_s (everything not in a stage function, start included)",
    "airflow_share_excl_start": "1 - stage_function_s / (wall_s - one_off_start_s): the share once a run is "
                                "under way, what grows with the number of task instances",
    "airflow_s_per_task": "(wall_s - one_off_start_s - stage_function_s) / task_instances",
    "peak_rss_mib": "largest single process of the run (wait4 ru_maxrss)",
    "load_avg": "os.getloadavg() (1, 5, 15 min) just before and just after the run",
    "mind_in_stage_requests_per_s": "requests / the generate stage's seconds (all its shards)",
    "mind_e2e_requests_per_s": "requests / wall_s of the whole run",
    "parse_s": "executing one DAG file (synth_tasks and the method's modules imported, the DAG built) in a "
               "fresh process that has already imported airflow.sdk, best of the repeats",
    "imported_at_parse": "heavy libraries the DAG file's parse added to those airflow.sdk had imported",
}
TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ")


def copy_docs(folder: Path, copies: int) -> int:
    """The shipped documents, each ``copies`` times under its own name (its own group in the split)."""
    folder.mkdir(parents=True)
    for i in range(copies):
        for doc in sorted(DOCS.glob("*.md")):
            shutil.copy(doc, folder / f"{doc.stem}-copy{i:03d}.md")
    return len(list(folder.glob("*.md")))


def mind_input(folder: Path, jobs: int, styles: int = 7) -> tuple[Path, int]:
    """The MIND sample copied (each copy its own ids) until it holds ``jobs / styles`` contexts of
    the default 500 tokens; the file and the max_chunks that cut it to that many contexts."""
    from synth_tasks.text.chunking import chunk_text

    rows = [json.loads(line) for line in MIND_SAMPLE.read_text().splitlines() if line.strip()]
    per_copy = sum(len(chunk_text(r["text"], 500, min_tokens=125)) for r in rows)
    contexts = math.ceil(jobs / styles)
    folder.mkdir(parents=True)
    path = folder / "mind.jsonl"
    with open(path, "w") as out:
        for i in range(math.ceil(contexts / per_copy)):
            for r in rows:
                out.write(json.dumps(r | {"id": f"{r['id']}-copy{i:04d}"}) + "\n")
    return path, contexts


def instant_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "instant_server.py"), str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    if server.stdout.readline().strip() != "ready":
        server.kill()
        raise RuntimeError("bench/instant_server.py did not start")
    return server, f"http://127.0.0.1:{port}/v1"


def _log_time(line: str) -> float | None:
    m = TS.match(line)
    return datetime.fromisoformat(m.group(1) + "+00:00").timestamp() if m else None


def run_dag(home: Path, name: str, dag_id: str, conf: dict, env_extra: dict | None = None) -> dict:
    """One run-dag; its wall and CPU seconds, peak RSS, one-off start and run summary."""
    env = dict(os.environ, AIRFLOW_HOME=str(home / "airflow"), SYNTH_DATA_ROOT=f"file://{home / 'data' / name}",
               SYNTH_INPUT_ROOTS=str(home / "inputs"), SYNTH_RUN_DIR=str(home / "run"), PYTHONPATH=str(ROOT),
               AIRFLOW__CORE__LOAD_EXAMPLES="False") | (env_extra or {})
    log = home / f"run-dag-{name}.log"
    load_before = [round(x, 2) for x in os.getloadavg()]
    started_at, started = time.time(), time.monotonic()
    with open(log, "w") as out:
        child = subprocess.Popen([sys.executable, "-m", "synth_tasks.cli", "run-dag", dag_id, "--conf",
                                  json.dumps(conf)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        # wait4's usage covers the child and the processes it waited for (the run's dag.test process).
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    ended_at = started_at + wall
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"run-dag {name} failed ({os.waitstatus_to_exitcode(status)}):\n{text[-4000:]}")
    lines = text.splitlines()
    first_task = next(_log_time(line) for line in lines if "Task started" in line)
    last_end = [_log_time(line) for line in lines if "[DAG TEST] end task" in line][-1]
    summary_url = next(line.split(None, 1)[1] for line in lines if line.startswith("summary:"))
    summary = json.loads(Path(summary_url.removeprefix("file://")).read_text())
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "summary": summary,
            "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
            "start": first_task - started_at, "tail": ended_at - last_end,
            "load_avg": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}}


def figures(run: dict) -> dict:
    summary = run["summary"]
    stages = {name: s for name, s in summary["stages"].items() if name != "export"}
    stage_s = sum(s["seconds"] for s in summary["stages"].values())
    tasks = sum(s["shards"] for s in stages.values()) + 1
    one_off = run["start"] + run["tail"]
    return {"wall_s": round(run["wall"], 1), "cpu_s": round(run["cpu"], 1), "task_instances": tasks,
            "shards": {name: s["shards"] for name, s in stages.items()},
            "stage_function_s": round(stage_s, 1),
            "stage_s": {name: round(s["seconds"], 2) for name, s in summary["stages"].items()},
            "one_off_start_s": round(one_off, 1),
            "one_off_parts_s": {"to_first_task_started": round(run["start"], 1),
                                "after_last_task": round(run["tail"], 1)},
            "airflow_share": round(1 - stage_s / run["wall"], 3),
            "airflow_share_excl_start": round(1 - stage_s / (run["wall"] - one_off), 3),
            "airflow_s_per_task": round((run["wall"] - one_off - stage_s) / tasks, 3),
            "peak_rss_mib": round(run["peak_rss_mib"], 1), "load_avg": run["load_avg"]}


def markdown_qa(home: Path, copies: int) -> dict:
    n_docs = copy_docs(home / "inputs" / "docs", copies)
    base = {"input_path": str(home / "inputs" / "docs"), "no_llm": True}
    runs = {}
    for name, conf in (("before_fixed_64", base | {"shard_size": 64}), ("after_planned", base)):
        run = run_dag(home, f"qa-{name}", "markdown_qa", conf)
        fig = figures(run)
        conversations = run["summary"]["counts"]["train"] + run["summary"]["counts"]["validation"]
        runs[name] = fig | {"conversations": conversations,
                            "conversations_per_s": round(conversations / run["wall"], 1)}
        print("markdown_qa", name, json.dumps(runs[name]), flush=True)
    after = runs["after_planned"]
    return {"what": "markdown_qa no-LLM through run-dag (dag.test), whole DAG; before: shard_size=64, after: planned",
            "documents": n_docs, "runs": runs,
            "goals": {"airflow_share_at_most": GOAL_AIRFLOW_SHARE,
                      "conversations_per_s_at_least": GOAL_CONVERSATIONS_PER_S,
                      "airflow_share": _verdict(after["airflow_share"] <= GOAL_AIRFLOW_SHARE),
                      "airflow_share_excl_start": _verdict(after["airflow_share_excl_start"] <= GOAL_AIRFLOW_SHARE),
                      "conversations_per_s": _verdict(after["conversations_per_s"] >= GOAL_CONVERSATIONS_PER_S)}}


def mind(home: Path, jobs: int) -> dict:
    path, contexts = mind_input(home / "inputs" / "mind", jobs)
    server, base_url = instant_server()
    env = {"SYNTH_LLM_BASE_URL": base_url, "SYNTH_LLM_MODEL": "instant", "SYNTH_LLM_PROVIDER": "vllm"}
    # The instant reply is two short turns: keep them (the quality filters would drop all).
    base = {"input_path": str(path), "max_chunks": contexts, "min_conversation_tokens": 0, "min_topic_overlap": 0}
    max_tokens, concurrency = 1024, 4  # MIND's defaults
    rate = max_tokens * INSTANT_REQUESTS_PER_S / concurrency
    runs = {}
    try:
        for name, conf in (("before_fixed_64", base | {"shard_size": 64}),
                           ("after_planned", base | {"llm_tokens_per_second": rate})):
            run = run_dag(home, f"mind-{name}", "mind", conf, env)
            fig = figures(run)
            requests = run["summary"]["usage"]["requests"]
            in_stage = requests / run["summary"]["stages"]["generate"]["seconds"]
            e2e = requests / run["wall"]
            runs[name] = fig | {"jobs": run["summary"]["stages"]["generate"]["input"], "requests": requests,
                                "cache_hits": run["summary"]["usage"].get("cache_hits", 0),
                                "in_stage_requests_per_s": round(in_stage, 1),
                                "e2e_requests_per_s": round(e2e, 1), "e2e_over_in_stage": round(e2e / in_stage, 3),
                                "e2e_over_in_stage_excl_start": round(
                                    requests / (run["wall"] - fig["one_off_start_s"]) / in_stage, 3)}
            print("mind", name, json.dumps(runs[name]), flush=True)
    finally:
        server.terminate()
        server.wait()
    after = runs["after_planned"]
    return {"what": "MIND through run-dag (dag.test) against bench/instant_server.py (its own process, on the same "
                    "2 cores); before: shard_size=64, after: planned with llm_tokens_per_second for the endpoint",
            "contexts": contexts, "llm_tokens_per_second_after": rate,
            "llm_tokens_per_second_basis": f"max_tokens {max_tokens} x {INSTANT_REQUESTS_PER_S:g} requests/s "
                                           f"/ concurrency {concurrency}",
            "runs": runs,
            "goals": {"airflow_share_at_most": GOAL_AIRFLOW_SHARE, "e2e_over_in_stage_at_least": GOAL_MIND_E2E_RATIO,
                      "airflow_share": _verdict(after["airflow_share"] <= GOAL_AIRFLOW_SHARE),
                      "airflow_share_excl_start": _verdict(after["airflow_share_excl_start"] <= GOAL_AIRFLOW_SHARE),
                      "e2e_over_in_stage": _verdict(after["e2e_over_in_stage"] >= GOAL_MIND_E2E_RATIO)}}


PARSE_CODE = """
import sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
before = set(sys.modules)
import importlib.util as u
s = u.spec_from_file_location("dag_under_test", sys.argv[1]); m = u.module_from_spec(s); s.loader.exec_module(m)
t2 = time.perf_counter()
heavy = [n for n in ("openai", "pyarrow", "pandas", "tiktoken", "torch", "numpy", "boto3", "fsspec")
         if n in sys.modules and n not in before]  # what the DAG file added to what airflow.sdk had
print("PARSE", t1 - t0, t2 - t1, ",".join(heavy))
"""


def parse_times(repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    load_before = [round(x, 2) for x in os.getloadavg()]
    files, sdk = {}, []
    for path in DAG_FILES:
        best, heavy = math.inf, ""
        for _ in range(repeats):
            out = subprocess.run([sys.executable, "-c", PARSE_CODE, str(path)], cwd=ROOT, env=env, check=True,
                                 capture_output=True, text=True).stdout
            _, sdk_s, parse_s, *rest = next(line for line in out.splitlines() if line.startswith("PARSE")).split(" ")
            best, heavy = min(best, float(parse_s)), (rest[0] if rest else "")
            sdk.append(float(sdk_s))
        files[path.name] = {"parse_s": round(best, 3), "imported_at_parse": heavy.split(",") if heavy else []}
        print("parse", path.name, files[path.name], flush=True)
    return {"files": files, "repeats": repeats, "airflow_sdk_import_s_best": round(min(sdk), 3),
            "load_avg": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
            "goal_parse_s_at_most": GOAL_PARSE_S,
            "goal": _verdict(all(f["parse_s"] <= GOAL_PARSE_S for f in files.values())),
            "note": "the goal is for a quiet machine: see load_avg"}


def _verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=80, help="copies of each shipped markdown document (4)")
    parser.add_argument("--mind-jobs", type=int, default=20_000, help="MIND jobs (contexts x 7 styles)")
    parser.add_argument("--parse-repeats", type=int, default=3)
    parser.add_argument("--skip-mind", action="store_true")
    parser.add_argument("--check", action="store_true", help="is the results file stale?")
    args = parser.parse_args()
    if args.check:
        print(stale(RESULT) or f"{RESULT} is current")
        return
    prov = provenance(MEASURED)
    report = {"definitions": DEFINITIONS}
    with tempfile.TemporaryDirectory(prefix="bench-dag-") as tmp:
        home = Path(tmp)
        env = dict(os.environ, AIRFLOW_HOME=str(home / "airflow"))
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        # The DAGs written to the database once, as a deployment's DAG processor does: every run then
        # starts alike (the first run on a fresh database would also parse and write all of them).
        subprocess.run([sys.executable, "-c", "from synth_tasks.airflow_glue import sync_dags_once as s; "
                        f"s({str(home / 'sync.lock')!r})"], cwd=ROOT, check=True, capture_output=True,
                       env=env | {"AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "PYTHONPATH": str(ROOT),
                                  "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
        report["parse"] = parse_times(args.parse_repeats)
        report["markdown_qa"] = markdown_qa(home, args.copies)
        if not args.skip_mind:
            report["mind"] = mind(home, args.mind_jobs)
    report["note"] = ("one run each, on a 2-core machine shared with other work: wall times move with its load "
                      "(load_avg per run); cpu_s moves less. The first run (markdown_qa before) writes the DAGs to "
                      "the fresh database, later ones find them there")
    report["provenance"] = prov
    print(f"wrote {shown(write_result(RESULT, report))}")


if __name__ == "__main__":
    main()
