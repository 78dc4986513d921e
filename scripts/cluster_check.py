"""make cluster-check: the distributed deployment of docker-compose.yaml, proven without Docker.

Starts the same components as processes on 127.0.0.1, each in its own process group under one
temporary folder: Postgres (metadata DB and Celery result backend), Redis (Celery broker),
SeaweedFS (the S3 store: staging, inputs, task logs), the embedded LLM server, and Airflow with the
CeleryExecutor: api-server, scheduler, dag-processor, triggerer and two Celery workers. Every
Airflow component has its own AIRFLOW_HOME and working directory, as separate machines would; the
workers share no local folder: staging is ``s3://synth/data``, the inputs are uploaded to
``s3://synth/inputs/``, task logs go to ``s3://synth/logs``, and the LLM endpoint and the store's
credentials reach the tasks only as Airflow connections.

It then triggers MIND and markdown_qa over the REST API (as the UI does), waits for both, checks
each run's ``_summary.json`` on S3 (every record accounted for, the stage chain adds up) and that
both workers ran tasks, and writes ``build/cluster-check/report.{json,md}``. Everything it started
is stopped at the end, also on Ctrl-C or SIGTERM. Exit status 1 when anything failed, with the
failing tasks' log tails.

    .venv/bin/python scripts/cluster_check.py [--timeout-s 1500] [--keep-tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = Path("/usr/bin/redis-server")
REPORT_DIR = PROJECT / "build" / "cluster-check"
BUCKET = "synth"
S3_KEY, S3_SECRET = "cluster", secrets.token_urlsafe(16)
WORKERS = ("worker-a", "worker-b")
LLM_POOL_SLOTS = 4

# Small on purpose: the point is the topology, not the data (the machine has 2 cores).
MIND_STYLES = ["teacher_student", "debate"]


def conf_for(dag_id: str) -> dict:
    """Each DAG reads its inputs from S3 and is cut into several small shards, so that mapped tasks
    run side by side on both workers. MIND calls the LLM (2 contexts x 2 styles, 256 tokens each);
    markdown_qa runs in no-LLM mode on the whole shipped sample: its LLM mode needs answers longer
    than 256 tokens (most were cut off here), and its no-LLM output is deterministic, so it is
    compared byte for byte with the same stages run in one process."""
    if dag_id == "mind":
        return {"input_path": f"s3://{BUCKET}/inputs/mind/", "max_chunks": 2, "styles": MIND_STYLES,
                "max_tokens": 256, "shard_size": 2, "concurrency": 1}
    return {"input_path": f"s3://{BUCKET}/inputs/markdown_qa/", "no_llm": True, "shard_size": 4}


# -------------------------------------------------------------------------------------------------
# processes
# -------------------------------------------------------------------------------------------------
def free_port(span: int = 0) -> int:
    """A free port on 127.0.0.1; with ``span``, ``port + span`` is free too (SeaweedFS puts each
    gRPC port 10000 above its HTTP port)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not span:
            return port
        if port + span < 65536:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + span))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair found")


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"(no log at {path})"


class Cluster:
    """The processes this check started, each the leader of its own process group."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True)
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        self.extra_groups: list[tuple[str, int]] = []  # groups started by others (the LLM server)
        self.secret = secrets.token_urlsafe(32)  # the Airflow components' shared JWT / API secret
        self.seaweed_ports: dict[str, int] = {}

    def start(self, name: str, cmd: list[str], *, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=cwd or self.tmp, start_new_session=True)
        self.procs.append((name, proc, log))
        return proc

    def run(self, name: str, cmd: list[str], *, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 300) -> None:
        """A one-shot command (its own process group too); raise with its log tail if it fails."""
        proc = self.start(name, cmd, env=env, cwd=cwd)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} did not finish in {timeout:.0f}s:\n{tail(self.logs / f'{name}.log')}")
        if code != 0:
            raise RuntimeError(f"{name} exited with {code}:\n{tail(self.logs / f'{name}.log')}")

    def check_alive(self) -> None:
        for name, proc, log in self.procs:
            if proc.returncode is None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail(log)}")

    def stop(self) -> None:
        """SIGTERM to every group (newest first), SIGKILL to what is left after a grace period.
        Airflow's supervisor puts each task process in a process group of its own, so the groups
        of every descendant are signalled too (found before anything is stopped)."""
        groups = [(name, proc.pid) for name, proc, _ in reversed(self.procs) if proc.poll() is None]
        groups += list(reversed(self.extra_groups))
        known = {pgid for _, pgid in groups}
        groups += [("descendant", pgid) for pgid in _descendant_groups(known) if pgid not in known]
        for _, pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, proc, _ in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for name, pgid in groups:
            if _group_alive(pgid):
                _signal_group(pgid, signal.SIGKILL)
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _descendant_groups(roots: set[int]) -> list[int]:
    """The process groups of every process descended from the processes ``roots`` names."""
    parent, group = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parent[pid], group[pid] = int(fields[1]), int(fields[2])
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [pid for pid in parent if group[pid] in roots]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return sorted({group[pid] for pid in found})


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def wait_for(what: str, ready, cluster: Cluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        cluster.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(1)


# -------------------------------------------------------------------------------------------------
# the services
# -------------------------------------------------------------------------------------------------
def start_postgres(cluster: Cluster) -> str:
    """A throw-away cluster: trust auth on 127.0.0.1 only, no fsync. initdb refuses to run as root,
    so as root it runs as the ``postgres`` user."""
    base = cluster.tmp / "postgres"
    data, sock = base / "data", base / "sock"
    data.mkdir(parents=True)
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    cluster.run("postgres-initdb", [*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U",
                                    "postgres", "-E", "UTF8", "--no-sync"], timeout=120)
    port = free_port()
    cluster.start("postgres", [*as_user, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
                               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"])
    wait_for("postgres", lambda: subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)])
             .returncode == 0, cluster, 60)
    cluster.run("postgres-createdb", [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                      "airflow"], timeout=60)
    return f"postgres@127.0.0.1:{port}/airflow"


def start_redis(cluster: Cluster) -> int:
    deadline = time.monotonic() + 300
    while not REDIS_SERVER.exists():  # `make system-deps` may still be installing it
        if time.monotonic() > deadline:
            raise RuntimeError(f"{REDIS_SERVER} not found: run `make system-deps` (Debian redis-server)")
        time.sleep(2)
    port = free_port()
    work = cluster.tmp / "redis"
    work.mkdir()
    cluster.start("redis", [str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", str(work)], cwd=work)

    def pong() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    wait_for("redis", pong, cluster, 30)
    return port


def start_seaweedfs(cluster: Cluster) -> str:
    """``weed mini`` with every port of its own (gRPC ports are HTTP + 10000), so it never meets
    another SeaweedFS on this machine (the tests start one on the defaults)."""
    work = cluster.tmp / "seaweedfs"
    work.mkdir()
    ports: dict[str, int] = {}
    taken: set[int] = set()  # every HTTP port and its gRPC twin: a port may not be another's twin
    for name in ("master", "volume", "filer", "s3", "admin"):
        port = free_port(span=10000)
        while {port, port + 10000} & taken:
            port = free_port(span=10000)
        ports[name] = port
        taken |= {port, port + 10000}
    cmd = [str(VENV_BIN / "weed"), "mini", f"-dir={work}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-bucket={BUCKET}", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
           f"-webdav.port={free_port()}", f"-s3.localSocket={work}/s3.sock", f"-filer.localSocket={work}/filer.sock",
           *[f"-{name}.port={port}" for name, port in ports.items()]]
    # With these set, weed mini creates that identity and refuses every other: a task that reached
    # S3 without the synth_s3 connection's credentials would fail here.
    env = os.environ | {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    cluster.start("seaweedfs", cmd, cwd=work, env=env)
    cluster.seaweed_ports = ports
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    s3 = s3_client(endpoint)
    wait_for("seaweedfs S3 bucket", lambda: s3.head_bucket(Bucket=BUCKET) is not None, cluster, 60)
    return endpoint


def s3_client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=S3_KEY,
                        aws_secret_access_key=S3_SECRET, config=Config(retries={"max_attempts": 2}))


def upload_inputs(endpoint: str) -> list[str]:
    from synth_tasks.prompts import include_dir

    s3 = s3_client(endpoint)
    sample = include_dir() / "sample_data"
    files = {"inputs/mind/prob140_sample.jsonl": sample / "mind" / "prob140_sample.jsonl"}
    files |= {f"inputs/markdown_qa/{path.name}": path for path in sorted((sample / "markdown_qa" / "docs").glob("*.md"))}
    for key, path in files.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    return [f"s3://{BUCKET}/{key}" for key in files]


def start_llm(cluster: Cluster) -> dict:
    """The embedded server, with its state file in this check's own run folder and on a port of its
    own (``make llm-up``'s server, if any, is left alone). Tasks never read that state file: they
    get the endpoint from the synth_llm connection."""
    from synth_tasks.llm import embedded

    os.environ["SYNTH_RUN_DIR"] = str(cluster.tmp / "llm")
    # One thread: on a loaded 2-core machine two llama.cpp threads spin at their barrier waiting for
    # each other (seen here: a 700-token prompt took over 10 minutes).
    state = embedded.start(port=free_port(), threads=1)
    cluster.extra_groups.append(("llm", state["pid"]))  # started in its own session by embedded.start
    return state


# -------------------------------------------------------------------------------------------------
# Airflow
# -------------------------------------------------------------------------------------------------
# Two workers on one host report one hostname; a deployment's workers are separate machines. This
# callable (AIRFLOW__CORE__HOSTNAME_CALLABLE) gives each worker's task instances its own name.
HOSTNAME_MODULE = '''import os


def hostname() -> str:
    return os.environ["SYNTH_CLUSTER_WORKER"]
'''


def airflow_env(cluster: Cluster, *, db: str, redis_port: int, s3_endpoint: str, llm: dict, api_port: int,
                password_file: Path) -> dict:
    """What every Airflow component gets: the same configuration a compose file's ``x-airflow-env``
    holds. Nothing is inherited from the caller's Airflow, synth or AWS credential settings (make
    exports a local AIRFLOW_HOME and SYNTH_RUN_DIR): the connections are the only source."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SYNTH_"))
           and k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                         "AWS_ENDPOINT_URL")}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    s3_conn = {"conn_type": "aws", "login": S3_KEY, "password": S3_SECRET,
               "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}
    llm_conn = {"conn_type": "http", "host": llm["base_url"],
                "extra": {"model": llm["model"], "provider": "llama_cpp"}}
    env |= {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{db}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{db}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        # Shared by every component: the api-server checks the tokens the scheduler signs for
        # tasks, and the log servers the requests the api-server signs.
        "AIRFLOW__API_AUTH__JWT_SECRET": cluster.secret,
        "AIRFLOW__API__SECRET_KEY": cluster.secret,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        # Task logs go to the store: no worker's disk is readable by the api-server.
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"s3://{BUCKET}/logs",
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "synth_s3",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # Only the runs this check triggers: unpausing a daily DAG would otherwise start the
        # latest interval's run too, on the whole default sample.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # What the tasks use: the endpoint and the store, both as Airflow connections.
        "AIRFLOW_CONN_SYNTH_LLM": json.dumps(llm_conn),
        "AIRFLOW_CONN_SYNTH_S3": json.dumps(s3_conn),
        "SYNTH_DATA_ROOT": f"s3://{BUCKET}/data",
        "SYNTH_STORAGE_CONN_ID": "synth_s3",
        "SYNTH_INPUT_ROOTS": f"s3://{BUCKET}/inputs",
        # A failure shows quickly (one retry after 5 s) instead of after the production back-off.
        "SYNTH_RETRIES": "1",
        "SYNTH_RETRY_DELAY_S": "5",
    }
    return env


def component_env(base: dict, cluster: Cluster, name: str) -> tuple[dict, Path]:
    """A component's own working directory, AIRFLOW_HOME, HOME and TMPDIR (so no cache under ~ or
    /tmp is shared), run folder and log-server ports: what a machine of its own would have."""
    cwd = cluster.tmp / name
    for sub in ("airflow", "home", "tmp"):
        (cwd / sub).mkdir(parents=True, exist_ok=True)
    env = base | {"AIRFLOW_HOME": str(cwd / "airflow"), "SYNTH_RUN_DIR": str(cwd / "run"),
                  "HOME": str(cwd / "home"), "TMPDIR": str(cwd / "tmp"),
                  "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                  "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
    return env, cwd


def start_airflow(cluster: Cluster, base: dict) -> None:
    airflow = str(VENV_BIN / "airflow")
    env, cwd = component_env(base, cluster, "airflow-init")
    cluster.run("airflow-db-migrate", [airflow, "db", "migrate"], env=env, cwd=cwd, timeout=600)
    cluster.run("airflow-pool", [airflow, "pools", "set", "synth_llm", str(LLM_POOL_SLOTS),
                                 "LLM-calling tasks (size to the endpoint's capacity)"], env=env, cwd=cwd)
    for name, args in (("api-server", ["api-server"]), ("scheduler", ["scheduler"]),
                       ("dag-processor", ["dag-processor"]), ("triggerer", ["triggerer"])):
        env, cwd = component_env(base, cluster, name)
        cluster.start(name, [airflow, *args], env=env, cwd=cwd)
    lib = cluster.tmp / "lib"
    lib.mkdir()
    (lib / "cluster_check_hostname.py").write_text(HOSTNAME_MODULE)
    for name in WORKERS:
        env, cwd = component_env(base, cluster, name)
        env |= {"SYNTH_CLUSTER_WORKER": name, "PYTHONPATH": str(lib),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "cluster_check_hostname.hostname"}
        cluster.start(name, [airflow, "celery", "worker", "--concurrency", "2", "--celery-hostname",
                             f"{name}@%h", "--without-gossip", "--without-mingle"], env=env, cwd=cwd)


class Api:
    """The REST API, as the UI uses it: a token from /auth/token, then /api/v2."""

    def __init__(self, base_url: str):
        self.base_url, self.token = base_url, None

    def call(self, method: str, path: str, body: dict | None = None):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def login(self, user: str, password: str) -> None:
        self.token = self.call("POST", "/auth/token", {"username": user, "password": password})["access_token"]


# -------------------------------------------------------------------------------------------------
# checks
# -------------------------------------------------------------------------------------------------
def check_summary(summary: dict) -> list[str]:
    """Everything accounted for: the export's verdict, and again here from the stage counts."""
    problems = [f"summary problem: {p}" for p in summary.get("problems", [])]
    if summary.get("accounted_for") is not True:
        problems.append("accounted_for is not true")
    stages, order = summary.get("stages", {}), summary.get("stage_order", [])
    for name in order:
        s = stages.get(name)
        if s is None:
            problems.append(f"stage {name} missing from the summary")
        elif s["input"] != s["kept"] + s["filtered"] + s["failed"]:
            problems.append(f"stage {name}: input {s['input']} != kept + filtered + failed")
    present = [n for n in order if n in stages]
    for prev, nxt in zip(present, present[1:]):
        if stages[nxt]["input"] - stages[nxt].get("created", 0) != stages[prev]["produced"]:
            problems.append(f"{prev} produced {stages[prev]['produced']} but {nxt} took in {stages[nxt]['input']}")
    return problems


def log_tail(api: Api, cluster: Cluster, dag_id: str, run_id: str, ti: dict, n: int = 40) -> str:
    """A task's log: through the api-server (which reads it from S3), else from the worker's disk."""
    lines = read_task_log(api, dag_id, run_id, ti)
    if lines and not any("Could not read served logs" in line for line in lines):
        return "\n".join(lines[-n:])
    # a task still running: its log is on its worker's disk (not yet uploaded)
    found = sorted(p for p in cluster.tmp.glob(f"worker-*/airflow/logs/dag_id={dag_id}/run_id={run_id}/"
                                               f"task_id={ti['task_id']}/**/*.log") if p.stat().st_size)
    return "\n\n".join(f"{p}:\n{tail(p, n)}" for p in found) or "(no log found)"


def read_task_log(api: Api, dag_id: str, run_id: str, ti: dict) -> list[str]:
    """A task's log lines through the REST API (the api-server reads finished tasks' logs from S3)."""
    from urllib.parse import quote

    path = (f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{ti['task_id']}/logs/"
            f"{max(1, ti.get('try_number') or 1)}?map_index={ti['map_index']}&full_content=true")
    try:
        content = api.call("GET", path).get("content", [])
    except (OSError, ValueError, urllib.error.HTTPError):
        return []
    lines = []
    for entry in content:
        if not isinstance(entry, dict):
            lines.append(str(entry))
            continue
        lines.append(str(entry.get("event", "")))
        # an exception comes as structured data beside its message: its type, message, last frame
        for exc in entry.get("error_detail") or entry.get("exception") or []:
            if isinstance(exc, dict):
                frame = (exc.get("frames") or [{}])[-1]
                lines.append(f"  {exc.get('exc_type')}: {exc.get('exc_value')} "
                             f"({frame.get('filename')}:{frame.get('lineno')})")
    return lines


def compare_with_one_process(dag_id: str, run: dict, summary: dict, s3_endpoint: str) -> list[str]:
    """The same method and Params run here, in one process (``synth_tasks.pipeline``), on the same
    S3 inputs into ``s3://synth/reference/``: the final files the two workers wrote must be the same
    bytes (a deterministic method only: markdown_qa without LLM)."""
    from synth_tasks.config import parse_config
    from synth_tasks.method import load_method
    from synth_tasks.pipeline import run_method
    from synth_tasks.storage import RunLayout, Store

    # This process only (the Airflow components were started without AWS credentials).
    os.environ |= {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_ENDPOINT_URL": s3_endpoint,
                   "AWS_DEFAULT_REGION": "us-east-1"}
    method = load_method(dag_id)
    cfg = parse_config(method.config, run["conf"])
    layout = RunLayout(Store(f"s3://{BUCKET}/reference"), dag_id, summary["partition"])
    result = run_method(method, cfg, layout, cfg.input_path, run_info={"run_id": summary["run_id"],
                                                                       "run_timestamp": summary["run_timestamp"]})
    reference, store = result["export"], layout.store
    problems = []
    for name in ("train_jsonl", "validation_jsonl", "train_conversations", "validation_conversations"):
        ours, theirs = summary["outputs"].get(name), reference.get(name)
        if not ours or not theirs:
            problems.append(f"{name}: missing ({ours!r} vs one process {theirs!r})")
        elif store.read_bytes(ours) != store.read_bytes(theirs):
            problems.append(f"{name}: {ours} differs from the one-process run's {theirs}")
    if reference["counts"] != summary["counts"]:
        problems.append(f"counts {summary['counts']} but {reference['counts']} in one process")
    run["same_as_one_process"] = not problems
    return problems


def local_data_files(cluster: Cluster) -> list[str]:
    """Staged data on a worker's own disk would mean a task wrote outside the store."""
    found = []
    for name in WORKERS:
        for path in (cluster.tmp / name).rglob("*"):
            if path.is_file() and path.suffix in (".parquet", ".jsonl", ".sqlite") or path.name == "_summary.json":
                found.append(str(path))
    return found


def run_check(cluster: Cluster, timeout_s: float) -> dict:
    started = time.monotonic()
    timings: dict[str, float] = {}
    db = start_postgres(cluster)
    redis_port = start_redis(cluster)
    s3_endpoint = start_seaweedfs(cluster)
    inputs = upload_inputs(s3_endpoint)
    llm = start_llm(cluster)
    timings["services_s"] = round(time.monotonic() - started, 1)

    api_port = free_port()
    password = secrets.token_urlsafe(12)
    password_file = cluster.tmp / "simple_auth_manager_passwords.json"
    password_file.write_text(json.dumps({"admin": password}))  # what compose's airflow-init writes
    base = airflow_env(cluster, db=db, redis_port=redis_port, s3_endpoint=s3_endpoint, llm=llm, api_port=api_port,
                       password_file=password_file)
    start_airflow(cluster, base)
    api = Api(f"http://127.0.0.1:{api_port}")
    wait_for("api-server", lambda: api.call("GET", "/api/v2/monitor/health") is not None, cluster, 300)
    api.login("admin", password)
    for dag_id in ("mind", "markdown_qa"):
        wait_for(f"DAG {dag_id} parsed", lambda: api.call("GET", f"/api/v2/dags/{dag_id}") is not None, cluster, 300)
    timings["airflow_up_s"] = round(time.monotonic() - started, 1)

    stamp = time.strftime("%Y%m%dT%H%M%S")
    runs = {}
    for dag_id in ("mind", "markdown_qa"):
        api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run_id = f"cluster-check-{stamp}"
        api.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None,
                                                            "conf": conf_for(dag_id)})
        runs[dag_id] = {"run_id": run_id, "conf": conf_for(dag_id), "triggered_at": time.monotonic()}
    print(f"triggered {', '.join(runs)} ({stamp}); waiting", flush=True)

    deadline = time.monotonic() + timeout_s
    pending = set(runs)
    while pending:
        cluster.check_alive()
        for dag_id in sorted(pending):
            state = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{runs[dag_id]['run_id']}")["state"]
            if state in ("success", "failed"):
                runs[dag_id] |= {"state": state, "run_seconds": round(time.monotonic() - runs[dag_id]["triggered_at"], 1)}
                pending.discard(dag_id)
                print(f"{dag_id}: {state} after {runs[dag_id]['run_seconds']} s", flush=True)
        if pending and time.monotonic() > deadline:
            for dag_id in pending:
                runs[dag_id] |= {"state": "timed out", "run_seconds": round(time.monotonic() - runs[dag_id]["triggered_at"], 1)}
            break
        time.sleep(3)
    timings["runs_s"] = round(time.monotonic() - started - timings["airflow_up_s"], 1)

    from synth_tasks.environment import run_partition

    s3 = s3_client(s3_endpoint)
    failures: list[str] = []
    for dag_id, run in runs.items():
        run.pop("triggered_at")
        tis = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['run_id']}/taskInstances?limit=1000")["task_instances"]
        run["task_instances"] = sorted(
            ({"task_id": t["task_id"], "map_index": t["map_index"], "state": t["state"], "hostname": t["hostname"],
              "try_number": t["try_number"], "duration_s": round(t["duration"] or 0, 1),
              "start_date": t.get("start_date"), "queued_when": t.get("queued_when")} for t in tis),
            key=lambda t: (t["start_date"] or "~", t["task_id"], t["map_index"]))
        if run["state"] != "success":
            failures.append(f"{dag_id} run {run['run_id']}: {run['state']}")
            for ti in tis:
                if ti["state"] in ("failed", "up_for_retry", "running"):
                    failures.append(f"--- {dag_id}.{ti['task_id']}[{ti['map_index']}] {ti['state']} on "
                                    f"{ti['hostname'] or '?'}; log tail:\n{log_tail(api, cluster, dag_id, run['run_id'], ti)}")
        key = f"data/{dag_id}/{run_partition(run['run_id'])}/_summary.json"
        try:
            summary = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            failures.append(f"{dag_id}: no summary at s3://{BUCKET}/{key}: {exc}")
            continue
        export = next((t for t in tis if t["task_id"] == "export" and t["state"] == "success"), None)
        if export is not None:  # finished tasks' logs come back from S3 through the api-server
            lines = read_task_log(api, dag_id, run["run_id"], export)
            run["export_log_via_api"] = any("summary: s3://" in line for line in lines)
            if not run["export_log_via_api"]:
                failures.append(f"{dag_id}: the export task's log is not readable through the api-server: {lines[-5:]}")
        problems = check_summary(summary)
        if dag_id == "markdown_qa" and run["state"] == "success":
            problems += compare_with_one_process(dag_id, run, summary, s3_endpoint)
        failures += [f"{dag_id}: {p}" for p in problems]
        run["summary"] = {
            "url": f"s3://{BUCKET}/{key}", "accounted_for": summary.get("accounted_for"),
            "ledger_balances": not problems, "problems": summary.get("problems", []) + problems,
            "stages": {n: {k: s[k] for k in ("input", "created", "kept", "filtered", "failed", "produced", "shards",
                                              "filter_reasons", "error_kinds")}
                       for n in summary.get("stage_order", []) if (s := summary["stages"].get(n))},
            "counts": summary.get("counts"), "usage": summary.get("usage"), "endpoints": summary.get("endpoints"),
            "outputs": summary.get("outputs")}
        run["task_cost"] = task_cost(tis, summary)

    hosts = sorted({t["hostname"] for r in runs.values() for t in r.get("task_instances", []) if t["hostname"]})
    per_worker = {h: sum(t["hostname"] == h for r in runs.values() for t in r.get("task_instances", [])) for h in hosts}
    missing = [w for w in WORKERS if w not in hosts]
    if missing:
        failures.append(f"workers that ran no task: {missing} (task instances per host: {per_worker})")
    strays = local_data_files(cluster)
    if strays:
        failures.append(f"data files on a worker's own disk (everything should be on S3): {strays[:10]}")
    return {"ok": not failures, "failures": failures, "wall_seconds": round(time.monotonic() - started, 1),
            "timings": timings, "workers": per_worker, "inputs": inputs, "runs": runs,
            "components": ["postgres 15", "redis", "seaweedfs (weed mini, S3)", f"embedded LLM ({llm['model']})",
                           "airflow api-server", "scheduler", "dag-processor", "triggerer",
                           *[f"celery {w} (concurrency 2)" for w in WORKERS]],
            "llm_mode": {"mind": "LLM (the embedded server, through the synth_llm connection)",
                         "markdown_qa": "no-LLM (compared byte for byte with a one-process run)"}}


def task_cost(tis: list[dict], summary: dict) -> dict:
    """What a task instance costs on the cluster beyond its own work: the seconds its stage
    function ran (the run summary's per-stage ``seconds``, summed over shards, and the export's)
    against the task instances' durations on the workers, and the wait from queued to started
    (scheduler, Redis, a Celery worker picking it up)."""
    from datetime import datetime

    done = [t for t in tis if t["state"] == "success" and t["duration"] is not None]
    task_s = sum(t["duration"] for t in done)
    stage_s = sum(s.get("seconds", 0.0) for s in summary.get("stages", {}).values())
    waits = sorted((datetime.fromisoformat(t["start_date"]) - datetime.fromisoformat(t["queued_when"])).total_seconds()
                   for t in done if t.get("start_date") and t.get("queued_when"))
    return {"task_instances": len(done), "task_seconds": round(task_s, 1), "stage_function_s": round(stage_s, 1),
            "worker_s_per_task": round((task_s - stage_s) / len(done), 2) if done else None,
            "airflow_share_of_task_time": round(1 - stage_s / task_s, 3) if task_s else None,
            "queued_to_started_s": {"median": round(waits[len(waits) // 2], 2), "max": round(waits[-1], 2)}
            if waits else None}


def markdown_report(report: dict) -> str:
    lines = [f"**cluster-check {'passed' if report['ok'] else 'FAILED'}** in {report['wall_seconds']:.0f} s "
             f"(services {report['timings'].get('services_s', '?')} s, Airflow up at "
             f"{report['timings'].get('airflow_up_s', '?')} s, both runs {report['timings'].get('runs_s', '?')} s). "
             f"Task instances per worker: " + ", ".join(f"{h} {n}" for h, n in report.get("workers", {}).items()) + ".",
             ""]
    for dag_id, run in report.get("runs", {}).items():
        summary = run.get("summary", {})
        counts, usage = summary.get("counts") or {}, summary.get("usage") or {}
        lines += [f"`{dag_id}` run `{run['run_id']}` (conf `{json.dumps(run['conf'])}`): {run.get('state')} in "
                  f"{run.get('run_seconds')} s; accounted_for {summary.get('accounted_for')}, ledger balances "
                  f"{summary.get('ledger_balances')}; records {counts.get('train', '?')} train / "
                  f"{counts.get('validation', '?')} validation; {usage.get('requests', 0)} LLM requests, "
                  f"{usage.get('completion_tokens', 0)} completion tokens; export log read through the api-server "
                  f"from S3: {run.get('export_log_via_api')}"
                  + (f"; final files identical to a one-process run: {run['same_as_one_process']}"
                     if "same_as_one_process" in run else ""), ""]
        if (cost := run.get("task_cost")) and cost["task_instances"]:
            waits = cost["queued_to_started_s"] or {}
            lines += [f"Per task: {cost['task_instances']} task instances ran {cost['task_seconds']} s on the workers, "
                      f"{cost['stage_function_s']} s of it in the stage functions: {cost['worker_s_per_task']} s of "
                      f"Airflow a task ({cost['airflow_share_of_task_time']:.0%} of task time); queued to started "
                      f"{waits.get('median')} s median, {waits.get('max')} s at most.", ""]
        if summary.get("stages"):
            lines += ["| stage | in | kept | filtered | failed | produced |", "|---|---:|---:|---:|---:|---:|"]
            lines += [f"| {n} | {s['input']} | {s['kept']} | {s['filtered']} | {s['failed']} | {s['produced']} |"
                      for n, s in summary["stages"].items()]
            lines.append("")
        lines += ["| task | map index | worker | try | duration (s) | state |", "|---|---:|---|---:|---:|---|"]
        lines += [f"| {t['task_id']} | {t['map_index']} | {t['hostname'] or '-'} | {t['try_number']} | "
                  f"{t['duration_s']} | {t['state']} |" for t in run.get("task_instances", [])]
        lines.append("")
    if report.get("failures"):
        lines += ["Failures:", "", "```", *report["failures"], "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout-s", type=float, default=1500, help="how long the two runs may take")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (component logs)")
    args = parser.parse_args(argv)

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tmp = Path(tempfile.mkdtemp(prefix="synth-cluster-"))
    tmp.chmod(0o755)  # the postgres user must reach its data folder inside
    cluster = Cluster(tmp)
    print(f"cluster-check: components under {tmp}", flush=True)
    report: dict = {"ok": False, "failures": [], "wall_seconds": 0, "timings": {}}
    started = time.monotonic()
    try:
        report = run_check(cluster, args.timeout_s)
    except Exception as exc:  # noqa: BLE001 - reported with the component logs, then exit 1
        report["failures"].append(f"{type(exc).__name__}: {exc}")
        report["wall_seconds"] = round(time.monotonic() - started, 1)
    finally:
        cluster.stop()
        for sock in Path("/tmp").glob("seaweedfs-*.sock"):  # weed's own sockets, named after our ports
            if any(sock.name.endswith((f"-{p}.sock", f"-{p + 10000}.sock")) for p in cluster.seaweed_ports.values()):
                sock.unlink(missing_ok=True)
        if args.keep_tmp or not report["ok"]:
            print(f"component logs kept in {tmp / 'logs'}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / "report.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown_report(report)
    (REPORT_DIR / "report.md").write_text(text)
    print(text)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
