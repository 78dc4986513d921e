"""The knowledge-graph DAG through Airflow (dag.test): on a scripted endpoint whose answers depend on
the request (records must reach final/, no hop chunk on both sides of the split, the graph files
land in final/graph/ with GraphRAG's columns, every rejection has its reason), and with the real
embedded model on the LLM path (a graph with entities and relations comes out of the 135M model's
own extraction, and the ledger balances)."""

from __future__ import annotations

import io
import json

import pytest

from tests.conftest import ROOT, load_dag, run_dag
from tests.synth_tasks.methods.knowledge_graph_replies import reply

pytestmark = [pytest.mark.airflow]

DOCS = ROOT / "include" / "sample_data" / "markdown_qa" / "docs"
# dag.test() keeps the last run's Params on the DAG object: every run names its input
BASE_CONF = {"input_path": str(DOCS), "train_ratio": 0.5}
GRAPH_FILES = ("entities.parquet", "relationships.parquet", "communities.parquet", "community_reports.parquet",
               "text_units.parquet", "graph.graphml")


@pytest.fixture(scope="module")
def kg_dag(airflow_db):
    return load_dag("knowledge_graph")



def _final(store, summary) -> list[dict]:
    return [json.loads(line) for k in ("train_jsonl", "validation_jsonl")
            for line in store.read_bytes(summary["outputs"][k]).decode().splitlines()]


def _ledger(store, base, stage) -> list[dict]:
    return [r for url in store.glob(f"{base}/_ledger/{stage}/*.parquet") for r in store.read_parquet(url)]


def test_the_dag_is_its_declaration_and_runs_daily_and_on_the_papers_extraction(kg_dag):
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable

    from synth_tasks.airflow_glue import asset_for
    from synth_tasks.methods.knowledge_graph import METHOD

    assert [t.task_id for t in kg_dag.topological_sort()] == METHOD.stage_order
    assert isinstance(kg_dag.timetable, AssetOrTimeSchedule)
    assert isinstance(kg_dag.timetable.timetable, CronDataIntervalTimetable)
    assert kg_dag.timetable.asset_condition.objects == (asset_for("papers/extracted"),)
    for stage in METHOD.stages:
        assert kg_dag.get_task(stage.name).pool == ("synth_llm" if stage.llm else "default_pool")
    assert kg_dag.params.get_param("gleaning_rounds").value is None  # 1, or 0 on the embedded model


def test_records_reach_final_with_the_graph_files_on_a_scripted_endpoint(kg_dag, fault_server, monkeypatch):
    fault_server.responder = reply
    monkeypatch.setenv("SYNTH_LLM_BASE_URL", fault_server.base_url)
    monkeypatch.setenv("SYNTH_LLM_MODEL", "fault-model")
    conf = {"chunk_tokens": 300, "chunk_overlap": 50, "paths_per_length": 6, "max_reports": 3, "shard_size": 8}
    run = run_dag(kg_dag, BASE_CONF | conf)
    store, base, summary = run.store, run.base, run.summary
    assert run.state == "success" and summary["accounted_for"], summary and summary["problems"]
    stages = summary["stages"]
    assert stages["prepare"]["produced"] == 26 and stages["extract"]["shards"] == 4
    assert summary["info"]["graph"]["entities"] > 10 and summary["info"]["graph"]["relationships"] > 5
    final = _final(store, summary)
    assert len(final) == stages["check"]["kept"] >= 3
    assert {r["kind"] for r in final} == {"multi_hop", "global"}
    assert summary["counts"]["train"] and summary["counts"]["validation"]
    train = [json.loads(line) for line in store.read_bytes(summary["outputs"]["train_jsonl"]).decode().splitlines()]
    val = [json.loads(line) for line in store.read_bytes(summary["outputs"]["validation_jsonl"]).decode().splitlines()]
    # every hop chunk lies on one side of the split
    assert {c for r in train for c in r["chunk_ids"]}.isdisjoint({c for r in val for c in r["chunk_ids"]})
    assert {r["split_group"] for r in train}.isdisjoint({r["split_group"] for r in val})
    for r in final:
        if r["kind"] == "multi_hop":
            assert r["source_document"] == r["chunk_ids"][0].split("#")[0]
            assert r["end_candidates"] == 1 and r["answer"] == r["path_titles"][-1]
    for name in GRAPH_FILES:
        assert store.exists(f"{base}/final/graph/{name}"), name
    import pyarrow.parquet as pq

    from synth_tasks.methods.knowledge_graph.graph import graphrag_schema

    for table in ("entities", "relationships", "communities", "community_reports", "text_units"):
        schema = pq.read_schema(io.BytesIO(store.read_bytes(f"{base}/final/graph/{table}.parquet")))
        assert schema.names[:len(graphrag_schema(table))] == graphrag_schema(table).names, table
    for stage in ("prepare", "extract", "graph", "report", "plan", "generate", "check"):
        rows = _ledger(store, base, stage)
        assert len(rows) == stages[stage]["input"], stage
        assert all(": " in r["reason"] for r in rows if r["outcome"] == "filtered"), stage


@pytest.mark.llm
def test_the_embedded_model_extracts_a_graph_and_the_ledger_balances(kg_dag, embedded_llm):
    """SmolLM2-135M on the LLM path (JSON extraction through llama.cpp's schema-constrained output),
    kept to the extraction: the first 4 chunks of the shipped sample, no reports, no questions (a
    structured answer of the 135M model took from 10 s to 2 min on the shared 2-core machine). The
    graph must come out of the model's own extraction. The entity grounding check is off here: with
    it on (the default), the same 4 chunks gave 1 entity and no relation (3 chunks filtered
    no_entities; 4 of 5 names and both relations the model wrote were not in their chunk: "TechNerd",
    "fantasy world"), so this run checks the LLM path, not the model. Records reaching final/ are
    asserted on the scripted endpoint above."""
    conf = {"chunk_tokens": 250, "chunk_overlap": 30, "max_chunks": 2, "extraction_max_tokens": 256,
            "max_reports": 0, "path_hops": [], "global_questions": False, "summary_min_chars": 4000,
            "entity_grounding_threshold": 0}
    run = run_dag(kg_dag, BASE_CONF | conf)
    store, base, summary = run.store, run.base, run.summary
    assert run.state == "success" and summary["accounted_for"], summary and summary["problems"]
    stages = summary["stages"]
    for name, s in stages.items():
        assert s["kept"] + s["filtered"] + s["failed"] == s["input"], name
    assert summary["models"] == ["smollm2-135m-instruct"] and summary["info"]["extraction_format"] == "json"
    graph = summary["info"]["graph"]
    assert graph["entities"] > 0 and graph["relationships"] > 0, graph
    ents = store.read_parquet(f"{base}/final/graph/entities.parquet")
    assert len(ents) == graph["entities"] and all(e["text_unit_ids"] for e in ents)
    assert _final(store, summary) == []
    print("\nKG-EMBEDDED", json.dumps({"graph": graph, "stages": {k: {x: v[x] for x in (
        "input", "kept", "filtered", "failed", "filter_reasons", "error_kinds")} for k, v in stages.items()},
        "wall_seconds": summary["wall_seconds"]}))
