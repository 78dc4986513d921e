"""A real Airflow for the integration tests: ``airflow db migrate``, then the api-server, the
scheduler (LocalExecutor) and the dag-processor as separate processes, on 127.0.0.1 with free ports,
with their own AIRFLOW_HOME and data root under a temporary folder, and the project's dags/.

The child environment is built here, not inherited: tests/conftest.py sets AIRFLOW_* and SYNTH_*
variables for in-process ``dag.test()`` (unit-test mode, a second DAG bundle, its own home) that a
real deployment must not see. All processes share one process group, stopped with SIGTERM then
SIGKILL; task processes (the supervisor puts each in a group of its own) and anything else still
running with this AIRFLOW_HOME are killed by pid after that, so a failed test leaves nothing behind.

``AirflowServer`` also holds the few REST calls the tests make, the same ones the UI makes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
ADMIN = "admin"
FINISHED = ("success", "failed")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


class AirflowError(RuntimeError):
    pass


class AirflowServer:
    """One Airflow under ``base`` (a fresh temporary folder): ``start()``, REST helpers, ``stop()``."""

    def __init__(self, base: Path, *, extra_env: dict[str, str] | None = None, parallelism: int = 4):
        self.base = Path(base)
        self.home = self.base / "airflow"
        self.data = self.base / "data"
        self.logs = self.base / "process-logs"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = self._environment(parallelism) | (extra_env or {})
        self.procs: dict[str, subprocess.Popen] = {}
        self.pgid: int | None = None
        self.password: str | None = None
        self.token: str | None = None
        self._http = httpx.Client(base_url=self.url, timeout=90.0)  # > the 60 s SQLite lock wait

    # -- environment ----------------------------------------------------------------------------
    def _environment(self, parallelism: int) -> dict[str, str]:
        # Everything of the test process except Airflow's and the project's own settings.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SYNTH_", "_AIRFLOW"))}
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
        # 8793 is the default log-server port: another Airflow on this machine may hold it.
        log_port, trigger_log_port = free_port(), free_port()
        env |= {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # SQLite, as `airflow standalone` uses it, but waiting up to a minute for a lock instead
            # of sqlite's 5 s: on 2 busy cores the scheduler, dag-processor and api-server otherwise
            # fail each other's writes with "database is locked".
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db?timeout=60",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
            # Tasks reach the execution API on the api-server's port, not the default 8080.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            # Parse the DAG files soon after start, and pick up runs without waiting.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            # No runs from the schedule: unpausing a daily DAG (catchup off) would otherwise start
            # its latest finished day at once, with default Params (an LLM run), holding the DAG's
            # one active-run slot. Manual runs and backfills run as usual. (Marking that run failed
            # over REST instead raced the scheduler here: Airflow 3.3.2's scheduler loop died on a
            # StaleDataError for that dag_run.)
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "SYNTH_DATA_ROOT": f"file://{self.data}",
            "SYNTH_INPUT_ROOTS": str(self.base),
            "SYNTH_RUN_DIR": str(self.base / "run"),
            "SYNTH_RETRY_DELAY_S": "1",
        }
        return env

    # -- life cycle -----------------------------------------------------------------------------
    def _spawn(self, name: str, *args: str, own_group: bool = False) -> subprocess.Popen:
        """Start ``airflow *args``. The first long-lived process leads a new group and the others
        join it, so one killpg reaches them all; ``own_group`` (a one-off command) gets its own."""
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen([str(VENV_BIN / "airflow"), *args], env=self.env, cwd=str(self.base),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                process_group=0 if own_group or self.pgid is None else self.pgid)
        out.close()
        if self.pgid is None and not own_group:
            self.pgid = proc.pid
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def start(self, dag_ids: tuple[str, ...] = (), timeout_s: float = 240.0) -> "AirflowServer":
        """Migrate the database, start the three components, wait until healthy, log in, wait for
        ``dag_ids`` to be parsed. Raises (after stopping everything) if any of it takes too long."""
        deadline = time.monotonic() + timeout_s
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            self.data.mkdir(parents=True, exist_ok=True)
            migrate = self._spawn("db-migrate", "db", "migrate", own_group=True)
            try:
                code = migrate.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(migrate.pid, signal.SIGKILL)
                raise AirflowError(f"airflow db migrate took over {timeout_s:.0f}s") from None
            if code != 0:
                raise AirflowError(f"airflow db migrate failed ({code}):\n{self.log_tail('db-migrate')}")
            # Write-ahead logging (kept in the database file): readers no longer wait for a writer.
            with closing(sqlite3.connect(self.home / "airflow.db")) as db:
                db.execute("PRAGMA journal_mode=WAL")
            self._spawn("api-server", "api-server")
            self._spawn("scheduler", "scheduler")
            self._spawn("dag-processor", "dag-processor")
            self._wait_healthy(deadline)
            self.login()
            self.wait_for_dags(dag_ids, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if name != "db-migrate" and proc.poll() is not None:
                raise AirflowError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def _wait_healthy(self, deadline: float) -> None:
        last = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = self._http.get("/api/v2/monitor/health").json()
                last = health
                if all((health.get(part) or {}).get("status") == "healthy"
                       for part in ("metadatabase", "scheduler", "dag_processor")):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1.0)
        raise AirflowError(f"Airflow not healthy in time; last health: {last}\n{self.log_tail('api-server')}")

    def login(self) -> str:
        """The admin's generated password (as a user reads it from the file), and a token for it."""
        password_file = self.home / "simple_auth_manager_passwords.json.generated"
        self.password = json.loads(password_file.read_text())[ADMIN]
        response = self._http.post("/auth/token", json={"username": ADMIN, "password": self.password})
        response.raise_for_status()
        self.token = response.json()["access_token"]
        self._http.headers["Authorization"] = f"Bearer {self.token}"
        return self.token

    def wait_for_dags(self, dag_ids, deadline: float) -> None:
        missing = list(dag_ids)
        while missing and time.monotonic() < deadline:
            self._check_alive()
            missing = [d for d in missing if self._http.get(f"/api/v2/dags/{d}").status_code != 200]
            if missing:
                time.sleep(1.0)
        if missing:
            errors = self._http.get("/api/v2/importErrors").text
            raise AirflowError(f"DAGs not parsed in time: {missing}; import errors: {errors}\n"
                               f"{self.log_tail('dag-processor')}")

    def _our_pids(self) -> set[int]:
        """Every live process started from this server: the group's members, their descendants, and
        any process whose environment names this AIRFLOW_HOME (task processes in groups of their own)."""
        import psutil

        pids: set[int] = set()
        for proc in self.procs.values():
            try:
                parent = psutil.Process(proc.pid)
                pids |= {parent.pid, *(c.pid for c in parent.children(recursive=True))}
            except psutil.NoSuchProcess:
                pass
        marker = f"AIRFLOW_HOME={self.home}".encode()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if marker in (entry / "environ").read_bytes().split(b"\0"):
                        pids.add(int(entry.name))
                except OSError:
                    continue
        pids.discard(os.getpid())
        return pids

    def stop(self, grace_s: float = 15.0) -> list[int]:
        """SIGTERM to the group, SIGKILL after ``grace_s``, then SIGKILL by pid to whatever of ours
        is left. Returns the pids still alive afterwards (none, unless the kernel refused)."""
        import psutil

        self._http.close()
        before = self._our_pids()
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        end = time.monotonic() + grace_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in before | self._our_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _, alive = psutil.wait_procs([p for p in map(_process, before | self._our_pids()) if p], timeout=5)
        return [p.pid for p in alive]

    # -- REST ------------------------------------------------------------------------------------
    def api(self, method: str, path: str, *, check: bool = True, **kwargs) -> httpx.Response:
        """One REST call. A write that SQLite refused because another process held the database
        (503 "Database is locked" from backfill creation, 500 "Database error" elsewhere; nothing
        was written) is sent again, as a user clicks again: Airflow on SQLite does that under load."""
        for attempt in range(6):
            response = self._http.request(method, path, **kwargs)
            locked = (response.status_code == 503 and "locked" in response.text) or (
                response.status_code == 500 and "Database error" in response.text)
            if not locked or method == "GET":
                break
            time.sleep(1 + attempt)
        if check and response.status_code >= 400:
            raise AirflowError(f"{method} {path}: HTTP {response.status_code}: {response.text}")
        return response

    def ensure_pool(self, name: str, slots: int, description: str) -> None:
        if self.api("GET", f"/api/v2/pools/{name}", check=False).status_code == 200:
            self.api("PATCH", f"/api/v2/pools/{name}", json={"slots": slots, "description": description})
        else:
            self.api("POST", "/api/v2/pools", json={"name": name, "slots": slots, "description": description})

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})

    def trigger(self, dag_id: str, conf: dict, run_id: str | None = None, *, check: bool = True) -> httpx.Response:
        """A manual run (no logical date), as the trigger form makes it."""
        body = {"logical_date": None, "conf": conf} | ({"dag_run_id": run_id} if run_id else {})
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body, check=check)

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()

    def dag_runs(self, dag_id: str, **params) -> list[dict]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100} | params).json()["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                        params={"limit": 1000}).json()["task_instances"]

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        return self.api("GET", path if map_index < 0 else f"{path}/{map_index}").json()

    def wait_for_run(self, dag_id: str, run_id: str, states=FINISHED, timeout_s: float = 120.0) -> dict:
        """Poll the run until its state is one of ``states``; on timeout, say where its tasks are."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_alive()
            run = self.dag_run(dag_id, run_id)
            if run["state"] in states:
                return run
            if time.monotonic() > deadline:
                tis = {(t["task_id"], t["map_index"]): (t["state"], t["try_number"])
                       for t in self.task_instances(dag_id, run_id)}
                raise AirflowError(f"run {dag_id}/{run_id} is {run['state']} after {timeout_s:.0f}s "
                                   f"(wanted {states}); tasks: {tis}\n{self.log_tail('scheduler')}")
            time.sleep(1.0)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The task log as text, one line per structured log event (as the UI shows it)."""
        response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                            params={"map_index": map_index, "full_content": True},
                            headers={"Accept": "application/json"})
        lines = []
        for item in response.json()["content"]:
            if isinstance(item, dict):
                extra = {k: v for k, v in item.items() if k not in ("event", "timestamp", "level", "logger")}
                lines.append(" ".join(str(x) for x in (item.get("level", ""), item.get("event", ""),
                                                        json.dumps(extra) if extra else "")))
            else:
                lines.append(str(item))
        return "\n".join(lines)

    def create_backfill(self, dag_id: str, from_date: str, to_date: str, conf: dict | None = None,
                        max_active_runs: int = 3) -> dict:
        return self.api("POST", "/api/v2/backfills", json={
            "dag_id": dag_id, "from_date": from_date, "to_date": to_date, "dag_run_conf": conf or {},
            "max_active_runs": max_active_runs, "reprocess_behavior": "none"}).json()

    def clear_failed(self, dag_id: str, run_id: str) -> list[dict]:
        """Clear the failed task instances of one run (and re-run them), as the UI's Clear does."""
        response = self.api("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", json={
            "dry_run": False, "only_failed": True, "dag_run_id": run_id, "reset_dag_runs": True})
        return response.json()["task_instances"]

    def create_connection(self, conn_id: str, conn_type: str, host: str, extra: dict,
                          password: str | None = None) -> None:
        body = {"connection_id": conn_id, "conn_type": conn_type, "host": host, "extra": json.dumps(extra)}
        if password is not None:
            body["password"] = password
        self.api("DELETE", f"/api/v2/connections/{conn_id}", check=False)
        self.api("POST", "/api/v2/connections", json=body)


def _process(pid: int):
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None
