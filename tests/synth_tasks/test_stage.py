"""The stage runner: accounting, outputs, audit copies, stats, atomicity and retries, shard planning."""

from __future__ import annotations

import json
import os
import re

import pytest

from synth_tasks.config import MethodConfig
from synth_tasks.ledger import LedgerError
from synth_tasks.method import DEFAULT_TEXT_SECONDS, Export, Method, Stage, llm_seconds
from synth_tasks.pipeline import run_method
from synth_tasks.stage import plan_shard_size, plan_shards, run_stage


class Cfg(MethodConfig):
    input_path: str = "unused"


def _prepare(run, files):
    for url in files:
        for line in run.store.read_bytes(url).decode().splitlines():
            row = json.loads(line)
            run.kept(row["id"], row)


def _mixed(run, records):
    """Keeps, filters, fails, and creates one child per kept record."""
    for r in records:
        if r["kind"] == "keep":
            child = f"{r['id']}~child"
            run.created(child)
            run.kept(child, {"id": child, "kind": "child"})
            run.kept(r["id"], r)
        elif r["kind"] == "drop":
            run.filtered(r["id"], f"unwanted: {r['id']}", text=r["id"].upper())
        else:
            run.failed(r["id"], "broken: no luck", raw="raw answer")
    run.counts["seen"] += len(records)


def _method(stage_fn=_mixed, **stage_options):
    return Method(dag_id="t", config=Cfg, stages=(Stage("prepare", _prepare, mapped=False),
                                                  Stage("work", stage_fn, **stage_options)),
                  export=Export(group_key="id"))


@pytest.fixture
def inputs(tmp_path):
    rows = [{"id": f"r{i}", "kind": ("keep", "drop", "fail")[i % 3]} for i in range(7)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"file://{path}"


def test_a_stage_that_keeps_filters_fails_and_creates_balances(layout, inputs):
    cfg = Cfg(shard_size=3)
    results = run_method(_method(), cfg, layout, inputs, until="work")
    assert [h["shard"] for h in results["prepare"]] == [0, 1, 2] and results["prepare"][0]["n_shards"] == 3
    store = layout.store
    stats = [store.read_json(layout.stats_part("work", s)) for s in range(3)]
    ledger = [r for s in range(3) for r in store.read_parquet(layout.ledger_part("work", s))]
    dropped = [r for url in store.glob(f"{layout.base}/_dropped/work/*.parquet") for r in store.read_parquet(url)]
    outputs = [r for s in range(3) for r in store.read_parquet(layout.part("work", s))]
    # 7 inputs: r0 r3 r6 kept (+3 created children), r1 r4 filtered, r2 r5 failed
    assert sum(s["input"] for s in stats) == len(ledger) == 7 + 3
    assert sum(s["created"] for s in stats) == 3
    assert sum(s["kept"] for s in stats) == 6 == sum(r["outcome"] == "kept" for r in ledger)
    assert sum(s["filtered"] for s in stats) == len(dropped) == 2
    assert sum(s["failed"] for s in stats) == 2
    assert sum(s["produced"] for s in stats) == len(outputs) == 6
    assert sum(s["counts"]["seen"] for s in stats) == 7
    assert {d["id"]: (d["reason"], d["text"]) for d in dropped} == {"r1": ("unwanted: r1", "R1"),
                                                                    "r4": ("unwanted: r4", "R4")}
    failed = {r["record_id"]: r for r in ledger if r["outcome"] == "failed"}
    assert failed["r2"]["error"] == "broken: no luck" and failed["r2"]["raw_response"] == "raw answer"
    assert [h["stats"]["produced"] for h in results["work"]] == [s["produced"] for s in stats]


def test_the_summary_checks_the_chain_and_the_export(layout, inputs):
    result = run_method(_method(), Cfg(shard_size=3), layout, inputs)["export"]
    summary = layout.store.read_json(result["summary"])
    assert summary["accounted_for"] and summary["stage_order"] == ["prepare", "work", "export"]
    assert summary["stages"]["export"]["input"] == 6 == summary["stages"]["export"]["produced"]
    assert summary["counts"]["train"] + summary["counts"]["validation"] == 6


def test_a_record_left_unaccounted_fails_the_stage(layout, inputs):
    def forgetful(run, records):
        for r in records[1:]:
            run.kept(r["id"], r)

    with pytest.raises(LedgerError, match="unaccounted records"):
        run_method(_method(forgetful), Cfg(), layout, inputs)


def test_a_stage_that_raises_mid_shard_writes_nothing_and_its_retry_rewrites_only_its_shard(layout, inputs):
    method = _method()
    cfg = Cfg(shard_size=3)
    prepared = run_method(method, cfg, layout, inputs, until="prepare")["prepare"]
    work = method.stage("work")
    for h in prepared:
        run_stage(method, work, cfg, layout, h)
    other = [layout.part("work", s) for s in (0, 2)] + [layout.ledger_part("work", s) for s in (0, 2)]
    before = {p: os.stat(p.removeprefix("file://")).st_mtime_ns for p in other}

    calls = {"n": 0}

    def flaky(run, records):
        calls["n"] += 1
        run.kept(records[0]["id"], records[0])
        if calls["n"] == 1:
            raise ConnectionError("endpoint went away mid-shard")
        for r in records[1:]:
            run.kept(r["id"], r)

    flaky_method = _method(flaky)
    for url in (layout.part("work", 1), layout.ledger_part("work", 1), layout.stats_part("work", 1)):
        layout.store.fs.rm(layout.store._path(url))
    with pytest.raises(ConnectionError):
        run_stage(flaky_method, flaky_method.stage("work"), cfg, layout, prepared[1])
    assert not any(layout.store.exists(u) for u in (layout.part("work", 1), layout.ledger_part("work", 1),
                                                    layout.stats_part("work", 1)))
    assert not layout.store.glob(f"{layout.base}/work/.tmp-*")
    run_stage(flaky_method, flaky_method.stage("work"), cfg, layout, prepared[1])  # the retry
    assert len(layout.store.read_parquet(layout.part("work", 1))) == 3
    assert {p: os.stat(p.removeprefix("file://")).st_mtime_ns for p in other} == before


def test_the_first_stage_fails_when_nothing_is_usable(layout, tmp_path):
    from synth_tasks.inputs import InputError

    empty = tmp_path / "nothing.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="no usable input records"):
        run_method(_method(), Cfg(), layout, f"file://{empty}")


def test_an_unmapped_stage_reads_every_shard_and_reshards_its_output(layout, inputs):
    seen = {}

    def everything(run, records):
        seen["ids"] = [r["id"] for r in records]
        for r in records:
            run.kept(r["id"], r)

    results = run_method(_method(everything, mapped=False), Cfg(shard_size=2), layout, inputs, until="work")
    assert seen["ids"] == [f"r{i}" for i in range(7)]  # shard order
    assert [h["shard"] for h in results["work"]] == [0, 1, 2, 3] and results["work"][0]["n_shards"] == 4


def test_an_empty_output_still_gives_the_next_stage_one_shard(layout, inputs):
    def drop_all(run, records):
        for r in records:
            run.filtered(r["id"], "nothing: wanted")

    results = run_method(_method(drop_all, mapped=False), Cfg(), layout, inputs, until="work")
    assert len(results["work"]) == 1 and layout.store.read_parquet(results["work"][0]["output"]) == []


def test_shard_size_grows_to_fit_airflows_map_limit(caplog):
    assert plan_shard_size(100, 10, 1024) == 10
    assert plan_shard_size(87_584, 64, 1024) == 86  # 1,369 shards of 64 would pass the limit
    with caplog.at_level("WARNING"):
        assert plan_shard_size(210, 10, 10) == 21
    assert "max_map_length=10" in caplog.text and "shard_size=10" in caplog.text


@pytest.mark.parametrize("n_records", [0, 1, 7, 99, 100, 101, 1_000, 12_345, 250_000])
@pytest.mark.parametrize("seconds_per_record", [0.0001, 0.003, 0.75, 6.4, 90.0])
@pytest.mark.parametrize("max_shards", [None, 1024, 5])
def test_every_planned_task_carries_the_target_work_within_the_map_limit(n_records, seconds_per_record, max_shards):
    target = 30.0
    sizes = plan_shards(n_records, seconds_per_record, target, None, max_shards)
    assert sum(sizes) == n_records and len(sizes) >= 1
    assert max_shards is None or len(sizes) <= max_shards
    assert len(sizes) <= max(1, n_records)  # never more shards than records
    if len(sizes) > 1:  # one shard may carry less: there are too few records for two
        assert all(size * seconds_per_record >= target for size in sizes)
    assert max(sizes) - min(sizes) <= 1  # the work spread evenly: no short last shard
    if max_shards is None or len(sizes) < max_shards:  # the map limit did not force bigger shards
        # as many tasks as the work fills: one more shard would leave some below the target
        assert (n_records // (len(sizes) + 1)) * seconds_per_record < target or n_records < len(sizes) + 1


def test_an_explicit_shard_size_wins_over_the_plan():
    assert plan_shards(10, 90.0, 30.0, 3, None) == [3, 3, 3, 1]  # the old fixed shards, short last one included
    assert plan_shards(0, 90.0, 30.0, 3, None) == [0]
    assert plan_shards(210, 0.001, 30.0, 10, 10) == [21] * 10  # still grown to the map limit
    assert plan_shards(210, 0.001, 30.0, None, 10) == [210]  # planned: cheap records make one task


def test_no_work_after_a_stage_means_one_shard():
    assert plan_shards(5_000, 0.0, 30.0, None, 1024) == [5_000]


def test_the_plan_sums_the_mapped_stages_up_to_the_next_unmapped_one(layout, inputs):
    """7 records; prepare's shards feed two mapped stages of 4 s and 6 s a record: 30 s a task
    needs 3 records, so 2 shards (4 and 3); the stages after the unmapped one do not count."""
    method = Method(dag_id="t", config=Cfg, stages=(
        Stage("prepare", _prepare, mapped=False),
        Stage("work", _mixed, cost=4.0),
        Stage("more", lambda run, records: [run.kept(r["id"], r) for r in records], cost=lambda cfg: 6.0),
        Stage("gather", lambda run, records: [run.kept(r["id"], r) for r in records], mapped=False),
        Stage("last", lambda run, records: [run.kept(r["id"], r) for r in records], cost=1000.0)),
        export=Export(group_key="id"))
    assert [s.name for s in method.mapped_after(method.stages[0])] == ["work", "more"]
    results = run_method(method, Cfg(), layout, inputs, until="prepare")
    assert [h["stats"]["produced"] for h in results["prepare"]] == [7, 7]  # the stage's stats, per hand-off
    assert [len(layout.store.read_parquet(h["output"])) for h in results["prepare"]] == [4, 3]
    results = run_method(method, Cfg(task_target_seconds=1000), layout, inputs, until="prepare")
    assert len(results["prepare"]) == 1
    results = run_method(method, Cfg(shard_size=2), layout, inputs, until="prepare")
    assert [len(layout.store.read_parquet(h["output"])) for h in results["prepare"]] == [2, 2, 2, 1]


def test_a_stage_without_a_declared_cost_is_costed_by_its_llm_requests_or_as_text():
    class LLMCfg(Cfg):
        max_tokens: int = 400
        concurrency: int = 4

    cfg = LLMCfg()
    assert Stage("s", _mixed).seconds_per_record(cfg) == DEFAULT_TEXT_SECONDS
    assert Stage("s", _mixed, llm="x").seconds_per_record(cfg) == llm_seconds(cfg, requests=1) > 1
    assert llm_seconds(cfg, requests=3, max_tokens=800) == 6 * llm_seconds(cfg, requests=1)
    assert Stage("s", _mixed, cost=lambda c: c.max_tokens / 100).seconds_per_record(cfg) == 4.0


def test_grown_shards_reach_the_mapped_stage(layout, inputs):
    results = run_method(_method(), Cfg(shard_size=1), layout, inputs, until="work", max_shards=3)
    assert len(results["prepare"]) == 3 and len(results["work"]) == 3


def test_a_stage_without_llm_has_no_client(layout, inputs):
    def wants_llm(run, records):
        run.llm  # noqa: B018

    with pytest.raises(RuntimeError, match="not declared with llm"):
        run_method(_method(wants_llm), Cfg(), layout, inputs)


def _read(run, files):
    for rec in run.read_inputs(files, "text"):
        run.kept(rec.id, {"id": rec.id, "text": rec.text})


def test_same_named_files_in_two_folders_keep_every_row_apart(layout, tmp_path):
    """Rows without an id are named by their path under the input: day1/data.jsonl and
    day2/data.jsonl do not collide, not even their bad rows on the same line."""
    for day in ("day1", "day2"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "data.jsonl").write_text(f'{{"text": "{day} a"}}\n{{not json\n{{"text": "{day} b"}}\n')
    method = Method(dag_id="t", config=Cfg, stages=(Stage("prepare", _read, mapped=False),),
                    export=Export(group_key="id"))
    result = run_method(method, Cfg(train_ratio=1.0), layout, f"file://{tmp_path}/day*/data.jsonl")
    prepare = layout.store.read_json(layout.stats_part("prepare", 0))
    assert (prepare["input"], prepare["kept"], prepare["failed"]) == (6, 4, 2)
    rows = {r["record_id"]: r for r in layout.store.read_parquet(layout.ledger_part("prepare", 0))}
    assert sorted(rows) == ["day1/data.jsonl#1", "day1/data.jsonl#2", "day1/data.jsonl#3",
                            "day2/data.jsonl#1", "day2/data.jsonl#2", "day2/data.jsonl#3"]
    assert "day2/data.jsonl row 2: invalid JSON" in rows["day2/data.jsonl#2"]["error"]
    assert result["export"]["counts"]["train"] == 4


def test_artifacts_are_reached_by_name_and_cleared_with_the_partition(layout, inputs):
    def index(run, records):
        run.store.write_json(f"{run.artifact('ids')}/ids.json", [r["id"] for r in records])
        for r in records:
            run.kept(r["id"], r)

    def extra(ctx, train, validation):
        return {"index": ctx.store.write_bytes(f"{ctx.final_dir}/ids.json",
                                               ctx.store.read_bytes(f"{ctx.artifact('ids')}/ids.json"))}

    method = Method(dag_id="t", config=Cfg, stages=(Stage("prepare", _prepare, mapped=False),
                                                    Stage("index", index, mapped=False, artifacts=("ids",))),
                    export=Export(group_key="id", extra_files=extra))
    result = run_method(method, Cfg(train_ratio=1.0), layout, inputs)
    assert len(layout.store.read_json(result["export"]["index"])) == 7
    stale = layout.store.write_bytes(f"{layout.base}/ids/stale.json", b"{}")
    run_method(method, Cfg(train_ratio=1.0), layout, inputs, until="prepare")
    assert not layout.store.exists(stale)  # a re-run starts its artifacts afresh too

    with pytest.raises(ValueError, match="artifact names must be unique"):
        Method(dag_id="t", config=Cfg, stages=(Stage("prepare", _prepare, mapped=False, artifacts=("final",)),),
               export=Export(group_key="id"))


def _run_llm_stage(ask, layout, inputs, endpoint) -> dict[str, dict]:
    """Run a method of ``prepare`` then one LLM stage ``ask`` against ``endpoint`` (no retries);
    the ask stage's ledger rows by record id."""
    from synth_tasks.config import LLMParams

    class LLMCfg(LLMParams):
        input_path: str = "unused"

    method = Method(dag_id="t", config=LLMCfg, stages=(Stage("prepare", _prepare, mapped=False),
                                                       Stage("ask", ask, llm="llm_conn_id")),
                    export=Export(group_key="id"))
    run_method(method, LLMCfg(max_retries=0), layout, inputs, endpoint_for=lambda _: endpoint)
    return {r["record_id"]: r for r in layout.store.read_parquet(layout.ledger_part("ask", 0))}


def test_llm_failures_fail_their_record_unless_the_stage_says_otherwise(layout, inputs, fault_server):
    """``llm_calls`` fails a record whose call failed; ``on_failure`` lets the stage keep it."""
    from pydantic import SecretStr

    from synth_tasks.config import EndpointConfig, SamplingParams

    endpoint = EndpointConfig(base_url=fault_server.base_url, model="m", api_key=SecretStr("k"), structured_output="prompt")
    fault_server.responder = lambda body: "raw:{}" if body["messages"][0]["content"] in ("r1", "r4") else "fine"
    notes: dict[str, str] = {}

    def ask(run, records):
        assert run.endpoint.model == "m"  # resolved by itself, before any client is made
        answered = run.llm_calls(records[:3], lambda r: run.llm.chat([{"role": "user", "content": r["id"]}],
                                                                     SamplingParams(max_tokens=4)))
        run.llm_calls(records[3:], lambda r: run.llm.chat([{"role": "user", "content": r["id"]}], SamplingParams()),
                      on_failure=lambda r, exc: notes.setdefault(r["id"], str(exc)))
        for r, _ in answered:
            run.kept(r["id"], r)
        for r in records[3:]:
            run.kept(r["id"], r)

    rows = _run_llm_stage(ask, layout, inputs, endpoint)
    assert rows["r1"]["outcome"] == "failed" and "r1" not in notes and rows["r0"]["outcome"] == "kept"
    assert [r["outcome"] for k, r in sorted(rows.items()) if k >= "r3"] == ["kept"] * 4
    assert list(notes) == ["r4"] and "malformed" in notes["r4"]


def test_a_call_over_the_endpoints_context_filters_its_record_without_sending_it(layout, inputs, fault_server):
    """Issue #25: every method gets the prompt budget from ``llm_calls``. A record whose prompt is
    over the context is filtered with the reason (never sent, not failed); ``on_failure`` takes it
    where the stage gives one; other errors still fail their record."""
    from pydantic import SecretStr

    from synth_tasks.config import EndpointConfig, SamplingParams

    endpoint = EndpointConfig(base_url=fault_server.base_url, model="m", api_key=SecretStr("k"), context_tokens=2048)
    long_ = {"r1", "r4"}  # r1 through the default handler, r4 through the stage's on_failure
    fault_server.responder = lambda body: "raw:{}" if body["messages"][0]["content"] == "r2" else "fine"
    notes: dict[str, str] = {}

    def prompt(r):
        return [{"role": "user", "content": r["id"] + (" word" * 3000 if r["id"] in long_ else "")}]

    def ask(run, records):
        answered = run.llm_calls(records[:3], lambda r: run.llm.chat(prompt(r), SamplingParams(max_tokens=512)))
        run.llm_calls(records[3:], lambda r: run.llm.chat(prompt(r), SamplingParams(max_tokens=512)),
                      on_failure=lambda r, exc: notes.setdefault(r["id"], exc.kind))
        for r, _ in answered:
            run.kept(r["id"], r)
        for r in records[3:]:
            run.kept(r["id"], r)

    rows = _run_llm_stage(ask, layout, inputs, endpoint)
    assert rows["r1"]["outcome"] == "filtered" and rows["r1"]["error"] is None
    assert re.fullmatch(r"prompt_too_long: ~\d+ prompt tokens \+ 512 max_tokens > 2048 context tokens",
                        rows["r1"]["reason"])
    assert rows["r2"]["outcome"] == "failed" and rows["r0"]["outcome"] == "kept"
    assert notes == {"r4": "prompt_too_long"} and rows["r4"]["outcome"] == "kept"
    sent = {body["messages"][0]["content"] for body in fault_server.requests}
    assert sent == {"r0", "r2", "r3", "r5", "r6"}  # the long ones never left
    stats = layout.store.read_json(layout.stats_part("ask", 0))
    assert stats["filter_reasons"] == {"prompt_too_long": 1} and stats["failed"] == 1


def test_the_first_stages_artifacts_survive_its_own_run_and_lose_stale_files(layout, inputs):
    """The first stage writes its artifacts while it runs; the partition is cleared after it, so its
    own artifacts must not be (instruct's seed pool), but a file an earlier run left there must."""
    def prepare(run, files):
        run.store.write_json(f"{run.artifact('pool')}/part-00000.json", files)
        _prepare(run, files)

    def use(run, records):
        assert run.store.read_json(f"{run.artifact('pool')}/part-00000.json")
        for r in records:
            run.kept(r["id"], r)

    method = Method(dag_id="t", config=Cfg, stages=(Stage("prepare", prepare, mapped=False, artifacts=("pool",)),
                                                    Stage("use", use)), export=Export(group_key="id"))
    stale = layout.store.write_bytes(f"{layout.base}/pool/part-00001.json", b"[]")
    run_method(method, Cfg(train_ratio=1.0), layout, inputs)
    assert not layout.store.exists(stale) and layout.store.exists(f"{layout.base}/pool/part-00000.json")


def test_the_endpoint_decode_rate_sizes_llm_shards():
    """MIND's generate is costed from requests x max_tokens at the endpoint's tokens/s per request
    (Param llm_tokens_per_second): at the default 40, 20,000 jobs would want 4,000 tasks (capped at
    the map limit); an endpoint 1,000 times faster plans a handful, each with the target work."""
    from synth_tasks.methods.mind import METHOD
    from synth_tasks.methods.mind.config import MindConfig

    generate = METHOD.stage("generate")
    slow = generate.seconds_per_record(MindConfig(input_path="x"))
    fast = generate.seconds_per_record(MindConfig(input_path="x", llm_tokens_per_second=40_000))
    assert slow == pytest.approx(1024 / 40 / 4) and fast == pytest.approx(slow / 1000)
    assert len(plan_shards(20_000, slow, 30.0, None, 1024)) == 1024
    planned = plan_shards(20_000, fast, 30.0, None, 1024)
    assert 1 < len(planned) < 10 and all(n * fast >= 30.0 for n in planned) and sum(planned) == 20_000
    with pytest.raises(ValueError):
        MindConfig(input_path="x", llm_tokens_per_second=0)
