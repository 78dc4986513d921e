"""The one module of synth_tasks that knows Airflow. It builds a method's DAG from its declaration
(``build_dag``), turns a task's context, Params and connections into the plain objects the stage
runner takes (config, ``Environment``, LLM endpoint), and runs a DAG locally (``run_local``).
Where a run lives (data root, partitions, inputs, stores) is ``synth_tasks.environment``, which
knows no Airflow. Airflow is imported inside the functions, so ``import synth_tasks`` never needs it."""

from __future__ import annotations

import atexit
import fcntl
import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from datetime import timedelta

from synth_tasks.config import SECTIONS, ConfigError, StrictModel, parse_config
from synth_tasks.environment import PROJECT_ROOT, Environment, partition_for, run_partition
from synth_tasks.llm.endpoint import resolve_endpoint


def default_args() -> dict:
    """Retries for every task. $SYNTH_RETRY_DELAY_S shortens the delay (tests); $SYNTH_RETRIES=0
    makes a failure final (local runs)."""
    delay = float(os.environ.get("SYNTH_RETRY_DELAY_S", "60"))
    return {"retries": int(os.environ.get("SYNTH_RETRIES", "3")), "retry_delay": timedelta(seconds=delay),
            "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=30)}


def daily_dag_args(triggered_by: tuple[str, ...] = ()) -> dict:
    """The schedule every DAG shares: daily on data intervals (not trigger times), so the run for
    [day, day+1) starts after the day ends and works on partition {ds} = day, and a backfill of a
    day redoes exactly that partition; no catch-up; one run at a time; retries on every task.
    ``triggered_by``: Asset names whose update also starts a run (it writes a partition named after
    its run id, like a manual run)."""
    import pendulum
    from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronDataIntervalTimetable

    daily = CronDataIntervalTimetable("@daily", timezone="UTC")
    if triggered_by:
        daily = AssetOrTimeSchedule(timetable=daily, assets=AssetAny(*(asset_for(n) for n in triggered_by)))
    return {"schedule": daily,
            "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"), "catchup": False, "max_active_runs": 1,
            "default_args": default_args()}


# ---------------------------------------------------------------------------------------------
# Params <-> config
# ---------------------------------------------------------------------------------------------
def _inline_refs(schema: dict, defs: dict) -> dict:
    if "$ref" in schema:
        # keep the siblings of the reference (a field's default, title and description)
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        return _inline_refs({k: v for k, v in defs[schema["$ref"].rsplit("/", 1)[-1]].items() if k != "title"}
                            | siblings, defs)
    out = {}
    for key, value in schema.items():
        if isinstance(value, dict) and key != "properties":
            out[key] = _inline_refs(value, defs)
        elif isinstance(value, list):
            out[key] = [_inline_refs(v, defs) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out


def params_from_config(model: type[StrictModel]) -> dict:
    """One trigger-form Param per config field: default, title, description, JSON-schema type and
    form section, grouped by section in ``SECTIONS`` order (the method's own first). A list of enum
    values renders as a multi-select (``examples`` lists the choices). The config stays the one
    source: the form refuses bad values by name before a run starts."""
    from airflow.sdk import Param

    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    fields = []
    for order, (name, prop) in enumerate(schema["properties"].items()):
        prop = _inline_refs(prop, defs)
        prop.setdefault("section", "Method")
        choices = prop.get("items", {}).get("enum")
        if prop.get("type") == "array" and choices:
            prop["examples"] = list(choices)
        fields.append((SECTIONS.index(prop["section"]), order, name, prop))
    params = {}
    for _, _, name, prop in sorted(fields):
        default = prop.pop("default", None)
        params[name] = Param(default, **prop)
    return params


@contextmanager
def no_retry_for(*errors: type[BaseException]):
    """Turn errors that a retry cannot fix (bad config, unusable input) into a failure without
    retries, keeping the message that names the field, file or row."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except errors as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def config_from_params(model: type[StrictModel], params) -> StrictModel:
    """Validate Params into the config; a bad value fails the task at once, without retries."""
    values = {k: params[k] for k in params.keys()} if hasattr(params, "keys") else dict(params)
    with no_retry_for(ConfigError):
        return parse_config(model, values)


def flatten_handoffs(upstream) -> list[dict]:
    """The hand-offs of the stage before as one list: a mapped stage's results (a lazy sequence,
    indexed up to len() so it is not asked for one XCom too many) or an unmapped stage's list."""
    if isinstance(upstream, dict):
        return [upstream]
    items = [upstream[i] for i in range(len(upstream))]
    return [h for item in items for h in (item if isinstance(item, list) else [item])]


# ---------------------------------------------------------------------------------------------
# the run's environment, from the task context
# ---------------------------------------------------------------------------------------------
def airflow_filesystem(root: str, conn_id: str | None):
    """The filesystem of a remote root through Airflow's ObjectStoragePath, so its credentials come
    from an Airflow connection, never from code or logs."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(root, conn_id=conn_id).fs


def environment_for(context) -> Environment:
    """The run's environment: its partition (scheduled runs and backfills: the data interval's day;
    others: their own, from the run id), its day for ``{ds}``, and stores through Airflow's connections."""
    dag_run = context["dag_run"]
    run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
    start = context.get("data_interval_start")
    day_from = start or context.get("logical_date")
    return Environment.from_os(partition_for(run_type, dag_run.run_id, start),
                               day=day_from.strftime("%Y-%m-%d") if day_from is not None else None,
                               filesystem=airflow_filesystem)


def run_timestamp(context) -> str:
    """YYYY-MM-DD_HH-MM-SS of the run's logical date (its data interval start for scheduled runs),
    so output names are stable across retries of the same run."""
    when = context.get("logical_date") or context.get("data_interval_start") or context["dag_run"].run_after
    return when.strftime("%Y-%m-%d_%H-%M-%S")


def max_map_length() -> int:
    from airflow.configuration import conf

    return conf.getint("core", "max_map_length")


# ---------------------------------------------------------------------------------------------
# the DAG of a method
# ---------------------------------------------------------------------------------------------
def _parse_time_settings(method) -> dict:
    """Task settings Airflow fixes when it parses the DAG: they come from the config's defaults."""
    fields = method.config.model_fields
    return {"pool": fields["llm_pool"].default if "llm_pool" in fields else None,
            "max_active_tis_per_dagrun": fields["max_active_tasks_per_run"].default}


def _check_parse_time_settings(method, cfg) -> None:
    """A trigger-time value of a parse-time setting cannot take effect: refuse it by name."""
    fixed = _parse_time_settings(method)
    asked = {"pool": getattr(cfg, "llm_pool", None), "max_active_tis_per_dagrun": cfg.max_active_tasks_per_run}
    names = {"pool": "llm_pool ($SYNTH_LLM_POOL)", "max_active_tis_per_dagrun":
             "max_active_tasks_per_run ($SYNTH_MAX_ACTIVE_TASKS)"}
    wrong = [f"{names[k]}={asked[k]!r} but this DAG was parsed with {fixed[k]!r}" for k in fixed
             if asked[k] != fixed[k]]
    if wrong:
        raise ConfigError("; ".join(wrong) + ": these are fixed when the DAG is parsed; set the environment "
                          "variable in the deployment instead")


def check_llm_connections(method, cfg) -> None:
    """Every LLM connection the run will use must exist: checked before the first stage writes
    anything, rather than in the first LLM stage after prepare has rewritten the partition."""
    for stage in method.llm_stages:
        conn_id, _ = cfg.connection(stage.llm)
        if conn_id != DEFAULT_LLM_CONN_ID:
            airflow_connection(conn_id)


def run_stage_task(method, stage_name: str, upstream, context):
    """The body of every stage task: Params -> config, then the stage runner on this run's partition.
    Bad Params, a missing connection or unusable input fail at once, without retries."""
    from synth_tasks.inputs import InputError
    from synth_tasks.stage import run_stage

    cfg = config_from_params(method.config, context["params"])
    stage = method.stage(stage_name)
    first = stage is method.stages[0]
    env = environment_for(context)
    with no_retry_for(ConfigError):
        _check_parse_time_settings(method, cfg)
        if first:
            check_llm_connections(method, cfg)
        input_url = env.resolve_input(cfg.input_path) if first else None
    if not first and not stage.mapped:
        upstream = flatten_handoffs(upstream)
    with no_retry_for(ConfigError, *((InputError,) if first else ())):
        return run_stage(method, stage, cfg, env.layout(method.dag_id), upstream, env=env,
                         endpoint_for=lambda conn_param: llm_endpoint(*cfg.connection(conn_param)),
                         max_shards=max_map_length(), input_url=input_url,
                         allowed_roots=env.allowed_input_roots if first else None)


def run_export_task(method, upstream, context) -> dict:
    from synth_tasks.export import run_export

    cfg = config_from_params(method.config, context["params"])
    result = run_export(method, cfg, environment_for(context).layout(method.dag_id), flatten_handoffs(upstream),
                        run_info={"run_id": context["dag_run"].run_id, "run_timestamp": run_timestamp(context)})
    for name, url in sorted(result.items()):
        if name != "counts":
            print(f"{name}: {url}")
    return result


def asset_for(name: str):
    """The Airflow Asset a stage declares (``Stage(asset=name)``), or a method's final output
    (``Method.final_asset``): named ``name``, URI ``x-synth://<name>``. Its events carry where the run's copy lies (dag_id, partition, url), so a DAG
    scheduled on it (``schedule=[asset_for("papers/extracted")]``) can read it from
    ``triggering_asset_events``. The ``x-`` scheme is Airflow's private one: a URI of any other
    scheme unknown to core makes Airflow load every provider's URI handlers to normalise it
    (Amazon's S3 hook and boto3 among them), 0.3-0.5 s of each DAG file's parse."""
    from airflow.sdk import Asset

    return Asset(name=name, uri=f"x-synth://{name}", group="synthetic-data")


def build_dag(method, doc_md: str):
    """The DAG of a declared method: the daily data-interval schedule, Params from its config, one
    task per stage named after it (mapped over the previous stage's shards where declared), LLM
    stages in the LLM pool, retries on every task, and the export at the end.

    None where Airflow's parsing context names another DAG (``get_parsing_context().dag_id``: a
    worker parsing for one task, or ``run_local``'s ``dag.test()``, which re-parses the whole DAG
    folder on every call): the file is then not this DAG's, and building and serialising it would
    only cost time."""
    from airflow.sdk import dag, get_parsing_context, task

    wanted = get_parsing_context().dag_id
    if wanted is not None and wanted != method.dag_id:
        return None
    settings = _parse_time_settings(method)

    def stage_task(stage):
        def run(upstream=None, **context):
            result = run_stage_task(method, stage.name, upstream, context)
            if stage.asset is not None:  # the event says where this run's copy of the asset lies
                layout = environment_for(context).layout(method.dag_id)
                context["outlet_events"][asset_for(stage.asset)].extra = {
                    "dag_id": method.dag_id, "partition": layout.partition, "url": layout.stage_dir(stage.name)}
            return result

        options = {"task_id": stage.name, "max_active_tis_per_dagrun": settings["max_active_tis_per_dagrun"],
                   "doc_md": inspect.cleandoc(stage.run.__doc__ or "")}
        if stage.llm is not None:
            options["pool"] = settings["pool"]
        if stage.asset is not None:
            options["outlets"] = [asset_for(stage.asset)]
        return task(**options)(run)

    @task(task_id="export", outlets=[asset_for(method.final_asset)])
    def export(upstream, **context):
        """Grouped train/validation split of the last stage's records, and the run summary."""
        result = run_export_task(method, upstream, context)
        layout = environment_for(context).layout(method.dag_id)  # the event says where this run's final/ lies
        context["outlet_events"][asset_for(method.final_asset)].extra = {
            "dag_id": method.dag_id, "partition": layout.partition, "url": layout.final_dir}
        return result

    @dag(dag_id=method.dag_id, **daily_dag_args(method.triggered_by), params=params_from_config(method.config), doc_md=doc_md,
         tags=["synthetic-data", *method.tags])
    def method_dag():
        upstream = stage_task(method.stages[0])()
        for stage in method.stages[1:]:
            make = stage_task(stage)
            upstream = make.expand(upstream=upstream) if stage.mapped else make(upstream=upstream)
        export(upstream)

    return method_dag()


# ---------------------------------------------------------------------------------------------
# LLM endpoint
# ---------------------------------------------------------------------------------------------
DEFAULT_LLM_CONN_ID = "synth_llm"


def airflow_connection(conn_id: str) -> dict | None:
    """{"host", "password", "extra"} of Airflow connection ``conn_id``. Only the default connection
    (``synth_llm``) may be missing (None: the environment or the embedded server serves); a
    connection asked for by name that does not exist is a ConfigError naming it, instead of a run on
    another model."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException's home moved between versions
        if "isn't defined" not in str(exc) and "not found" not in str(exc).lower():
            raise
        if conn_id != DEFAULT_LLM_CONN_ID:
            raise ConfigError(f"LLM connection {conn_id!r} does not exist: create it (Admin > Connections) or "
                              f"leave the Param at {DEFAULT_LLM_CONN_ID!r}") from None
        return None
    return {"host": conn.host, "password": conn.password, "extra": conn.extra_dejson}


def llm_endpoint(conn_id: str, model_override: str | None = None):
    """The endpoint of Airflow connection ``conn_id``: host = base URL (e.g. http://vllm:8000/v1),
    password = API key, extra = {"model": ..., "provider": "vllm" | "openai" | "zhipuai" |
    "llama_cpp"}; without the default connection, the environment (``SYNTH_LLM_*``) or the
    embedded server."""
    return resolve_endpoint(airflow_connection(conn_id), model_override)


# ---------------------------------------------------------------------------------------------
# local runs (the CLI): one DAG run through dag.test() in a child process group
# ---------------------------------------------------------------------------------------------
def airflow_env(retries: int | None = None) -> dict:
    """The environment a local run needs; must be set before anything imports airflow."""
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / ".airflow"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    if retries is not None:
        env["SYNTH_RETRIES"] = str(retries)
    return env


def run_local(dag_id: str, conf: dict, *, retries: int = 0, grace_s: float = 10.0) -> dict:
    """Run the DAG once through ``dag.test()`` (real tasks, real XCom, a manual run) and return its
    run summary. The run happens in a child process group, so that SIGTERM or Ctrl-C here stops
    it at once (``dag.test()`` itself waits out retry delays and swallows signals), and with
    ``retries`` (default 0) a failed task ends the run instead of waiting for its retry."""

    with tempfile.TemporaryDirectory(prefix="synth-run-") as tmp:
        result_file = os.path.join(tmp, "result.json")
        child = subprocess.Popen([sys.executable, "-m", "synth_tasks.airflow_glue", dag_id, json.dumps(conf),
                                  result_file], env=airflow_env(retries), start_new_session=True)

        def stop(signum, frame):
            _stop_group(child, grace_s)
            raise SystemExit(128 + signum)

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            code = child.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if not os.path.exists(result_file):
            raise SystemExit(f"the local run of {dag_id} ended with exit code {code} before it finished")
        with open(result_file) as f:
            result = json.load(f)
    layout = Environment.from_os(run_partition(result["run_id"]), filesystem=airflow_filesystem).layout(dag_id)
    store, summary_url = layout.store, layout.summary
    if result["state"] != "success" or not store.exists(summary_url):
        raise SystemExit(f"DAG run {result['run_id']} ended {result['state']}; see the task logs above")
    return store.read_json(summary_url) | {"summary": summary_url}


def _stop_group(child, grace_s: float) -> None:
    """SIGTERM to the run's process group, SIGKILL if it is still there after ``grace_s``."""

    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def sync_dags_once(lock_path: str, dag=None) -> None:
    """Write the configured bundles' DAGs to the metadata database, one process at a time.
    ``dag.test()`` does this itself, but two first runs on a fresh database started together race
    to insert the same DAG row (``UNIQUE constraint failed: dag.dag_id``); after this, their own
    sync finds the rows there and only updates them. A bundle whose every DAG file already has its
    namesake DAG in the database (one DAG per file, named after it: the project's rule) is skipped:
    parsing and serialising it again cost ~2 s a run for nothing, as ``dag.test()`` re-syncs it anyway.

    Unless an asset of ``dag`` (the DAG about to run) is inactive: then every bundle is synced and
    the assets no DAG references any more are released (``release_orphaned_assets``). An asset whose
    URI changed (``synth://`` to ``x-synth://``) is otherwise kept inactive by its old namesake, and
    the run's export task fails with ``AirflowInactiveAssetInInletOrOutletException``."""

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manager = DagBundlesManager()
        manager.sync_bundles_to_db()
        known = _known_dag_ids()
        stale = bool(inactive_assets(dag)) if dag is not None and dag.dag_id in known else False
        for bundle in manager.get_all_dag_bundles():
            if not bundle.is_initialized:
                bundle.initialize()
            if not stale and dag_file_stems(str(bundle.path)) <= known:
                continue
            bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
            sync_bag_to_db(bag, bundle.name, bundle.version)
        if stale:
            release_orphaned_assets()


def inactive_assets(dag) -> list[tuple[str, str]]:
    """(name, uri) of the assets in ``dag``'s task inlets and outlets that the database does not
    hold as active."""
    from airflow.models.asset import AssetActive
    from airflow.sdk import Asset
    from airflow.utils.session import create_session

    wanted = {(a.name, a.uri) for task in dag.tasks for a in (*task.inlets, *task.outlets) if isinstance(a, Asset)}
    if not wanted:
        return []
    with create_session() as session:
        active = set(session.query(AssetActive.name, AssetActive.uri))
    return sorted(wanted - active)


def release_orphaned_assets() -> None:
    """What the scheduler does every ``[scheduler] parsing_cleanup_interval``: deactivate the assets
    no DAG references, then activate the referenced ones. A local run has no scheduler to do it.
    Airflow has no public call for this; the scheduler's own method is used, so the rules stay
    Airflow's (an active asset's name and URI are unique)."""
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.utils.session import create_session

    with create_session() as session:
        # it uses ``self`` only for static helpers, so the class stands in for a scheduler
        SchedulerJobRunner._update_asset_orphanage(SchedulerJobRunner, session=session)


def dag_file_stems(folder: str) -> set[str]:
    """The names of a folder's DAG files without ``.py``: the DAG ids they declare, one each."""
    return {name[:-3] for name in os.listdir(folder) if name.endswith(".py") and not name.startswith("_")}


def _known_dag_ids() -> set[str]:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return {dag_id for (dag_id,) in session.query(DagModel.dag_id)}


def dag_source(dag_id: str, folder: str) -> str:
    """What to parse for one DAG: its own file (``{folder}/{dag_id}.py``, the project's rule) where
    there is one, else the whole folder. Parsing the other DAG files cost ~0.1 s each for nothing."""
    path = os.path.join(folder, f"{dag_id}.py")
    return path if os.path.isfile(path) else folder


def _dag_test_child(dag_id: str, conf_json: str, result_file: str) -> int:

    from airflow.dag_processing.dagbag import DagBag

    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    bag = DagBag(dag_folder=dag_source(dag_id, folder))
    if dag_id not in bag.dags:  # a file not named after its DAG: look through them all
        bag = DagBag(dag_folder=folder)
    if dag_id not in bag.dags:
        print(f"no DAG {dag_id!r} in {folder}: {bag.import_errors}")
        return 2
    sync_dags_once(os.path.join(os.environ["AIRFLOW_HOME"], ".dag-sync.lock"), bag.dags[dag_id])
    # dag.test() re-parses and re-writes every DAG of the folder (for DAGs that trigger siblings,
    # which ours do not): under this parsing context the other files build no DAG (``build_dag``),
    # and their DAGs stay in the database as the sync above left them.
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID

    os.environ[_AIRFLOW_PARSING_CONTEXT_DAG_ID] = dag_id
    dag_run = bag.dags[dag_id].test(run_conf=json.loads(conf_json))
    with open(result_file, "w") as f:
        json.dump({"run_id": dag_run.run_id, "state": str(getattr(dag_run.state, "value", dag_run.state))}, f)
    return 0


def _exit_now(code: int) -> None:
    """Exit once the run is over and recorded, skipping the interpreter's teardown: the exit
    handlers run and the streams are flushed, but freeing the objects of Airflow, pandas and the
    run one by one took 3-4 s of every local run (nothing is left to write by then)."""
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":

    _exit_now(_dag_test_child(*sys.argv[1:4]))
