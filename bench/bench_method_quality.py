"""Method quality benchmark: the LLM path of all eight methods on a small fixed input, on an embedded
LLM, with the figures that say whether what each method makes is any good.

Results: bench/results/method_quality.json (per method: the conf and input used, wall seconds, the
per-stage counts of the run's _summary.json, LLM usage, the method's own quality figures, each with
its numerator and denominator, and its goals) and bench/results/method_quality_samples.md (for a
human reader: per method its figures, the stage funnel, 5 records from final/ and up to 3 filtered
ones from _dropped/ with their reason). With --model smollm2 the files are method_quality-smollm2.*,
so the fast model's numbers never replace the quality model's.

Each method runs as a real DAG, ``python -m synth_tasks.cli run-dag <dag_id> --conf JSON``, in its own
subprocess: a method that fails is recorded (exit code, the end of its stderr) and the others still
run. Environment: a fresh AIRFLOW_HOME and data root under build/bench-method-quality/ (git-ignored),
inputs from ../shared/corpora (read in place or sliced into build/bench-method-quality/inputs/; the
include/ samples when the corpora are missing, which the results say), and the embedded server this
script starts (``--model quality``: Qwen2.5-Coder-1.5B Q4, needs ``make quality-model``; ``smollm2``:
the 135M model). A server that was already running is left running. Every LLM method gets a fresh
``cache_namespace``, so no answer comes from an earlier run's response cache; ``--cache-namespace``
replays an earlier run's answers instead (measuring again after a pipeline change that left the
prompts as they were).

Goals: mind kept and on topic >= 0.70; markdown_qa grounded >= 0.70; instruct surviving evolutions
>= 0.30; papers quote on the cited page >= 0.60; knowledge_graph >= 3 entities and >= 2 relations per
chunk; personas real personas >= 0.90 and outputs kept >= 0.50; curriculum mean grade rising by
planned stage. data_selection (no LLM) reports counts only.

Run: make bench-quality   (= .venv/bin/python bench/bench_method_quality.py)
     .venv/bin/python bench/bench_method_quality.py [--model quality|smollm2] [--methods mind,papers,...]
                                                   [--timeout-s 1800] [--check]
``--methods`` runs a subset and merges it into the existing results (the other methods' entries stay).
``--check`` says whether the results file still describes the code here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, provenance, shown, stale, write_result  # noqa: E402

WORK = ROOT / "build" / "bench-method-quality"
DATA = WORK / "data"
INPUTS = WORK / "inputs"
LOGS = WORK / "logs"
AIRFLOW_HOME = WORK / "airflow"
CORPORA = ROOT.parent / "shared" / "corpora"
METHODS = ("mind", "markdown_qa", "instruct", "papers", "knowledge_graph", "personas", "curriculum", "data_selection")
LLM_METHODS = set(METHODS) - {"data_selection"}
MEASURED = ["bench/bench_method_quality.py", "bench/_common.py", "dags/*.py", "synth_tasks/*.py",
            "synth_tasks/methods/**/*.py", "synth_tasks/quality/*.py", "synth_tasks/text/*.py", "synth_tasks/llm/*.py",
            "synth_tasks/include/prompts/**/*.txt", "synth_tasks/include/configs/**/*"]
CUT = 1500  # characters of a long text shown in the samples
N_SAMPLES, N_FILTERED, N_FAILED = 5, 3, 2
# Filter reasons that are bookkeeping (a limit of the run), not a judgement of quality: shown only
# when a method dropped nothing else.
BOOKKEEPING = {"over_max_chunks", "max_chunks", "not_sampled", "over_max_seeds", "outside_date_range"}
# Fields of a record shown in the samples, per method (those present, in this order).
SAMPLE_FIELDS = {
    "mind": ("id", "style", "topic_overlap", "n_tokens", "n_turns", "truncated", "text"),
    "markdown_qa": ("id", "doc", "section_title", "qa_type", "cot_level", "grounding_score", "question", "answer",
                    "reasoning_steps", "quotes"),
    "instruct": ("id", "domain", "origin", "depth", "evol_ops", "overall", "instruction", "response"),
    "papers": ("id", "title", "qa_type", "sections", "pages", "question", "answer", "citations"),
    "knowledge_graph": ("id", "kind", "hops", "path_titles", "question", "answer", "reasoning_steps"),
    "personas": ("id", "template", "domain", "persona", "output", "sources"),
    "curriculum": ("id", "stage", "fk_grade", "theme", "words", "features", "text"),
    "data_selection": ("id", "domain", "kind", "cluster", "Input", "Output"),
}
# Audit fields of _dropped/ records not worth showing (vectors, whole contexts, serialised plans).
SKIP_AUDIT = {"embedding", "curriculum", "context_blocks", "pages", "prompt", "local_context", "global_context"}


# ---------------------------------------------------------------------------------------------
# inputs and confs
# ---------------------------------------------------------------------------------------------
def jsonl_rows(path: Path, ids: set[str] | None = None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if ids is None or r.get("id") in ids]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def markdown_section(path: Path, heading: str) -> str:
    """The section of a markdown file under ``heading`` (its heading line up to the next heading,
    headings inside code fences not counting)."""
    out, inside, fence = [], False, False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        is_heading = not fence and line.startswith("#") and line.lstrip("#").startswith(" ")
        if is_heading and inside:
            break
        if is_heading and line.lstrip("#").strip() == heading:
            inside = True
        if inside:
            out.append(line)
    if not out:
        raise ValueError(f"{path}: no heading {heading!r}")
    return "\n".join(out).strip() + "\n"


def prepare_inputs(model: str, namespace: str | None = None) -> tuple[dict[str, dict], bool]:
    """Per method its conf (Params) and a description of its input; whether ../shared/corpora was
    there. Inputs sliced from the corpora are written under build/bench-method-quality/inputs/."""
    corpus = CORPORA.is_dir()
    if INPUTS.exists():
        shutil.rmtree(INPUTS)
    INPUTS.mkdir(parents=True)
    math_text, docs, gsm8k, papers = (CORPORA / "math_text" / "prob140.jsonl", CORPORA / "markdown_docs",
                                      CORPORA / "gsm8k" / "train.jsonl", CORPORA / "papers")
    plan: dict[str, dict] = {}

    # mind: 1 context x 7 styles, 512 tokens; a textbook section the shipped sample does not hold
    if corpus:
        src = write_jsonl(INPUTS / "mind" / "prob140_slice.jsonl", jsonl_rows(math_text, {"2_05_Updating_Probabilities"}))
        what = "prob140 section 2_05_Updating_Probabilities (not in include/sample_data/mind), its first context"
    else:
        src, what = ROOT / "include/sample_data/mind/prob140_sample.jsonl", "include/ sample (corpora missing), first context"
    plan["mind"] = {"conf": {"input_path": str(src), "max_chunks": 1, "max_tokens": 512}, "input": what}

    # markdown_qa: 3 sections (one file each) x 3 pairs
    if corpus:
        folder = INPUTS / "markdown_qa"
        folder.mkdir()
        (folder / "ch08-02-strings-slicing.md").write_text(markdown_section(docs / "ch08-02-strings.md", "Slicing Strings"))
        (folder / "ch09-02-result-shortcuts.md").write_text(markdown_section(
            docs / "ch09-02-recoverable-errors-with-result.md", "Shortcuts for Panic on Error"))
        (folder / "ch08-03-hash-maps-updating.md").write_text(markdown_section(
            docs / "ch08-03-hash-maps.md", "Updating a Value Based on the Old Value"))
        src = folder
        what = ("3 sections of the Rust book: 'Slicing Strings' (ch08-02-strings.md), 'Shortcuts for Panic on "
                "Error' (ch09-02-recoverable-errors-with-result.md) and 'Updating a Value Based on the Old Value' "
                "(ch08-03-hash-maps.md)")
    else:
        src, what = ROOT / "include/sample_data/markdown_qa/docs/ch03-04-comments.md", "include/ sample ch03-04-comments.md (corpora missing)"
    plan["markdown_qa"] = {"conf": {"input_path": str(src), "pairs_per_section": 3, "max_tokens": 512,
                                    "section_min_tokens": 40, "train_ratio": 0.5}, "input": what}

    # instruct: 6 seeds, 1 evolution round, 1 response each, no Self-Instruct
    conf = {"self_instruct_count": 0, "evol_rounds": 1, "n_responses": 1, "max_instruction_tokens": 160,
            "max_response_tokens": 320, "train_ratio": 0.67}
    if corpus:
        rows = [json.loads(line) for line in gsm8k.read_text().splitlines()]
        picked = [(i, rows[i]) for i in (101, 777, 2024, 3333, 5555, 6666)]
        src = write_jsonl(INPUTS / "instruct" / "seeds.jsonl", [
            {"id": f"gsm8k-train-{i}", "domain": "math", "instruction": r["question"]} for i, r in picked])
        what = "6 GSM8K train questions (rows 101, 777, 2024, 3333, 5555, 6666) as seeds"
    else:
        src, what = ROOT / "include/sample_data/instruct/seeds.yaml", "include/ seeds.yaml, first 6 (corpora missing)"
        conf["max_seeds"] = 6
    plan["instruct"] = {"conf": {"input_path": str(src)} | conf, "input": what}

    # papers: 1 paper, its first 5 contexts, 1 question each, 1 multi-hop
    pdf = papers / "mapreduce-simplified-data-processing-on-large-clusters.pdf"
    if corpus and pdf.is_file():
        src, what = pdf, "MapReduce (Dean & Ghemawat) PDF, read in place; first 5 contexts"
    else:
        src, what = ROOT / "include/sample_data/papers", "include/ sample paper (corpora missing); first 5 contexts"
    plan["papers"] = {"conf": {"input_path": str(src), "max_contexts_per_paper": 5, "questions_per_context": 1,
                               "multi_hop_per_paper": 1, "max_tokens": 384, "train_ratio": 1.0}, "input": what}

    # knowledge_graph: 3 chunks of one chapter; 1 report, 3 paths per length
    chapter = docs / "ch08-02-strings.md"
    if corpus and chapter.is_file():
        src, what = chapter, "ch08-02-strings.md of the Rust book, first 3 chunks of 400 tokens"
    else:
        src, what = ROOT / "include/sample_data/markdown_qa/docs", "include/ markdown sample (corpora missing), first 3 chunks"
    plan["knowledge_graph"] = {"conf": {"input_path": str(src), "chunk_tokens": 400, "chunk_overlap": 50, "max_chunks": 3,
                                        "extraction_max_tokens": 640, "max_tokens": 320, "summary_min_chars": 4000,
                                        "max_reports": 1, "paths_per_length": 3, "train_ratio": 0.5}, "input": what}

    # personas: 2 texts x 3 personas, no expansion, 3 personas write 2 templates each
    if corpus:
        texts = jsonl_rows(math_text, {"6_04_Odds_Ratios"}) + [
            {"id": "rust-ch08-03-hash-maps", "text": (docs / "ch08-03-hash-maps.md").read_text()}]
        what = "2 texts: prob140 section 6_04_Odds_Ratios and the Rust book's ch08-03-hash-maps.md (first 1,500 chars each)"
        # sources for both kinds of persona: the Rust chapters and the textbook's other chapters
        source_folder = INPUTS / "personas" / "sources"
        shutil.copytree(docs, source_folder, ignore=shutil.ignore_patterns("ch08-03-hash-maps.md"))
        write_jsonl(source_folder / "prob140.jsonl",
                    [{"id": r["id"], "text": r["text"]} for r in jsonl_rows(math_text) if r["id"] != "6_04_Odds_Ratios"])
        sources = str(source_folder)
    else:
        texts = jsonl_rows(ROOT / "include/sample_data/mind/prob140_sample.jsonl")[:2]
        what, sources = "first 2 texts of the include/ MIND sample (corpora missing)", "include/sample_data/markdown_qa/docs"
    src = write_jsonl(INPUTS / "personas" / "texts.jsonl", [{"id": t["id"], "text": t["text"]} for t in texts])
    plan["personas"] = {"conf": {"input_path": str(src), "text_max_chars": 1500, "personas_per_text": 3, "expand_depth": 0,
                                 "max_personas": 3, "templates": ["math_problem", "knowledge_text"], "source": "corpus",
                                 "sources_path": sources, "max_tokens": 512, "train_ratio": 0.67},
                        "input": what + "; sources (BM25): the other Rust chapters and the textbook's other sections"}

    # curriculum: the six stages of the shipped stages file, 6 stories each (3 left a stage's on-theme
    # share resting on 2 stories), no evaluation
    plan["curriculum"] = {"conf": {"input_path": str(ROOT / "synth_tasks/include/configs/curriculum/stages.yaml"), "items_per_stage": 6,
                                   "eval_items_per_stage": 0, "evaluate": False, "check_rising": False,
                                   "max_tokens": 400},
                          "input": "include/configs/curriculum/stages.yaml, all six stages"}

    # data_selection: no LLM, its default mix
    plan["data_selection"] = {"conf": {}, "input": "include/configs/data_selection_mix.yaml (the default small mix)"}

    namespace = namespace or f"bench-method-quality-{model}-{time.strftime('%Y%m%dT%H%M%S')}"
    for name in LLM_METHODS:
        plan[name]["conf"]["cache_namespace"] = namespace
    return plan, corpus


# ---------------------------------------------------------------------------------------------
# running a DAG
# ---------------------------------------------------------------------------------------------
def dag_env(model: str) -> dict:
    env = dict(os.environ)
    for var in ("SYNTH_LLM_BASE_URL", "SYNTH_LLM_PROVIDER", "SYNTH_LLM_MODEL", "SYNTH_LLM_API_KEY",
                "SYNTH_LLM_STRUCTURED_OUTPUT", "SYNTH_LLM_MAX_CONCURRENCY", "AIRFLOW_CONN_SYNTH_LLM"):
        env.pop(var, None)
    roots = [str(INPUTS)] + ([str(CORPORA)] if CORPORA.is_dir() else [])
    return env | {"AIRFLOW_HOME": str(AIRFLOW_HOME), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                  "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                  "SYNTH_DATA_ROOT": f"file://{DATA}", "SYNTH_INPUT_ROOTS": ",".join(roots),
                  "SYNTH_EMBEDDED_MODEL": model, "SYNTH_RUN_DIR": os.environ["SYNTH_RUN_DIR"]}


def prepare_airflow(env: dict) -> None:
    """A fresh AIRFLOW_HOME (once): the metadata database and the synth_llm pool, as the Makefile does."""
    if (AIRFLOW_HOME / "airflow.db").is_file():
        return
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / "airflow-migrate.log", "w") as log:
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, stdout=log, stderr=subprocess.STDOUT,
                       check=True)
        subprocess.run([sys.executable, "-m", "airflow", "pools", "set", "synth_llm", "4", "LLM-calling tasks"], env=env,
                       stdout=log, stderr=subprocess.STDOUT, check=True)


def run_dag(dag_id: str, conf: dict, env: dict, timeout_s: float) -> dict:
    """Run one DAG through the CLI in a subprocess; its exit code, wall time, the summary URL it
    printed and the end of its stderr."""
    LOGS.mkdir(parents=True, exist_ok=True)
    out_path, err_path = LOGS / f"{dag_id}.stdout.log", LOGS / f"{dag_id}.stderr.log"
    cmd = [sys.executable, "-m", "synth_tasks.cli", "run-dag", dag_id, "--conf", json.dumps(conf)]
    started = time.monotonic()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        try:
            rc = proc.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.send_signal(signal.SIGTERM)  # the CLI stops its run's process group on SIGTERM
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
    wall = round(time.monotonic() - started, 1)
    stdout = out_path.read_text(errors="replace")
    summary_url = next((line.split(None, 1)[1].strip() for line in stdout.splitlines()
                        if line.startswith("summary:") and len(line.split(None, 1)) == 2), None)
    entry = {"rc": rc, "timed_out": timed_out, "wall_seconds": wall, "summary_url": summary_url,
             "logs": [shown(out_path), shown(err_path)]}
    if rc != 0:
        entry["stderr_tail"] = "\n".join(err_path.read_text(errors="replace").splitlines()[-40:])
        if not entry["stderr_tail"].strip():  # Airflow logs to stdout: its end says more than an empty stderr
            entry["stdout_tail"] = "\n".join(stdout.splitlines()[-40:])
    return entry


# ---------------------------------------------------------------------------------------------
# reading a run
# ---------------------------------------------------------------------------------------------
def partition_dir(dag_id: str, summary_url: str | None) -> Path | None:
    if summary_url:
        return Path(summary_url.removeprefix("file://")).parent
    runs = [p for p in (DATA / dag_id).glob("*") if p.is_dir()] if (DATA / dag_id).is_dir() else []
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def read_summary(base: Path) -> dict | None:
    for path in (base / "_summary.json", base / "_staging" / "_summary.json"):  # staged: the export refused it
        if path.is_file():
            return json.loads(path.read_text())
    return None


def read_parquet_rows(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for part in sorted(folder.glob("*.parquet")) for r in pq.read_table(part).to_pylist()]


def read_parquet_file(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist() if path.is_file() else []


def read_ledgers(base: Path) -> list[dict]:
    return [r for folder in sorted((base / "_ledger").glob("*")) for r in read_parquet_rows(folder)]


def read_final(base: Path) -> list[dict]:
    rows = []
    for split in ("train", "validation"):
        path = base / "final" / f"{split}.jsonl"
        if path.is_file():
            rows += [json.loads(line) | {"_split": split} for line in path.read_text().splitlines() if line.strip()]
    return rows


def partial_summary(base: Path) -> dict:
    """What a run that ended before its export had done: the counts of its _stats/ (each stage's
    shards added up), in the shape of _summary.json's stages and usage."""
    stages, usage = {}, {}
    for folder in sorted((base / "_stats").glob("*"), key=lambda p: p.stat().st_mtime):
        total: dict = {}
        for part in sorted(folder.glob("*.json")):
            for k, v in json.loads(part.read_text()).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("shard", "n_shards", "started_at"):
                    total[k] = round(total.get(k, 0) + v, 3)
                elif k in ("filter_reasons", "error_kinds", "usage") and isinstance(v, dict):
                    for kk, vv in v.items():
                        total.setdefault(k, {})[kk] = total.get(k, {}).get(kk, 0) + vv
        for k, v in total.pop("usage", {}).items():
            usage[k] = usage.get(k, 0) + v
        stages[folder.name] = {"filter_reasons": {}, "error_kinds": {}} | total
    return {"stage_order": list(stages), "stages": stages, "usage": usage}


def stage_table(summary: dict) -> dict:
    keys = ("input", "created", "kept", "filtered", "failed", "produced", "filter_reasons", "error_kinds", "seconds")
    return {name: {k: summary["stages"][name].get(k) for k in keys} for name in summary["stage_order"]
            if name in summary["stages"]}


def ratio(numerator: int | float, denominator: int | float, what: str) -> dict:
    return {"value": round(numerator / denominator, 4) if denominator else None, "numerator": numerator,
            "denominator": denominator, "what": what}


def spread(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "min": None, "max": None, "n": 0}
    return {"mean": round(statistics.fmean(values), 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "n": len(values)}


# ---------------------------------------------------------------------------------------------
# per-method figures: (figures, goal, met)
# ---------------------------------------------------------------------------------------------
def at_least(fig: dict, **bounds: float) -> tuple[dict, dict]:
    """(goal, met) for figures that must reach a lower bound: a share (">= 0.70") or a count (">= 3");
    a figure without a value (nothing to divide by) is not met."""
    goal = {k: f">= {b:.2f}" if b < 1 else f">= {b:g}" for k, b in bounds.items()}
    met = {k: (fig[k]["value"] or 0) >= b for k, b in bounds.items()}
    return goal, met


def figures_mind(s: dict, base: Path, final: list[dict]):
    st = s["stages"]
    overlaps = [r["topic_overlap"] for r in final if r.get("topic_overlap") is not None]
    fig = {"kept_on_topic": ratio(st["filter"]["kept"], st["generate"]["input"],
                                  "conversations kept by the filters (on topic among them) / conversations asked for"),
           "mean_topic_overlap_of_kept": spread(overlaps)}
    return fig, *at_least(fig, kept_on_topic=0.70)


def figures_markdown_qa(s: dict, base: Path, final: list[dict]):
    g = s["stages"]["ground"]
    fig = {"grounded": ratio(g["kept"], g["input"], "pairs kept by the ground stage / pairs that reached it")}
    return fig, *at_least(fig, grounded=0.70)


def figures_instruct(s: dict, base: Path, final: list[dict]):
    created = s["stages"]["evolve"].get("created") or 0
    reached = sum(str(r.get("origin", "")).startswith("evol") for r in final)
    fig = {"surviving_evolutions": ratio(reached, created, "evolved instructions in final/ / evolved instructions "
                                                           "created (evolve stage's created)"),
           "evolutions_past_elimination": ratio(created - s["stages"]["evolve"]["filtered"] - s["stages"]["evolve"]["failed"],
                                                created, "evolved instructions past the evolve stage's elimination "
                                                "checks / created"),
           "mean_overall_score_in_final": spread([r["overall"] for r in final if r.get("overall") is not None])}
    return fig, *at_least(fig, surviving_evolutions=0.30)


def figures_papers(s: dict, base: Path, final: list[dict]):
    g = s["stages"]["ground"]
    fig = {"quote_on_page": ratio(g["kept"], g["input"], "pairs kept by the ground stage (every quote on its cited "
                                                         "page) / pairs generated")}
    return fig, *at_least(fig, quote_on_page=0.60)


def figures_knowledge_graph(s: dict, base: Path, final: list[dict]):
    st = s["stages"]
    chunks = st["prepare"]["produced"]
    graph = base / "final" / "graph"
    n_ent = len(read_parquet_file(graph / "entities.parquet"))
    n_rel = len(read_parquet_file(graph / "relationships.parquet"))
    outcome = {r["record_id"]: r["reason"] or r["outcome"] for r in read_parquet_rows(base / "_ledger" / "check")}
    generated = [r for r in read_parquet_rows(base / "generate") if r.get("kind") == "multi_hop"]
    questions = [{"question": r["question"], "answer": r["answer"], "path": r.get("path_titles"),
                  "outcome": outcome.get(r["id"], "?")} for r in sorted(generated, key=lambda r: r["id"])[:20]]
    fig = {"chunks": chunks, "entities": n_ent, "relationships": n_rel,
           "entities_per_chunk": ratio(n_ent, chunks, "entities in final/graph/entities.parquet / chunks"),
           "relations_per_chunk": ratio(n_rel, chunks, "relationships in final/graph/relationships.parquet / chunks"),
           "multi_hop_questions": {"planned": sum(1 for r in read_parquet_rows(base / "plan") if r.get("kind") == "multi_hop"),
                                   "generated": len(generated),
                                   "kept": sum(r.get("kind") == "multi_hop" for r in final)},
           "global_questions_kept": sum(r.get("kind") == "global" for r in final),
           "multi_hop_list": questions}
    return fig, *at_least(fig, entities_per_chunk=3, relations_per_chunk=2)


def figures_personas(s: dict, base: Path, final: list[dict]):
    st = s["stages"]
    made = st["dedup"]["input"]
    placeholders = st["dedup"]["filter_reasons"].get("placeholder", 0)
    fig = {"real_personas": ratio(made - placeholders, made, "personas not filtered as placeholder / personas "
                                                               "generated (dedup stage input)"),
           "outputs_kept": ratio(len(final), st["generate"]["kept"], "outputs in final/ / outputs generated "
                                                                     "(generate stage kept)"),
           "persona_filter_reasons": st["dedup"]["filter_reasons"], "output_filter_reasons": st["filter"]["filter_reasons"]}
    return fig, *at_least(fig, real_personas=0.90, outputs_kept=0.50)


def figures_curriculum(s: dict, base: Path, final: list[dict]):
    from synth_tasks.methods.curriculum.measures import measure

    st = s["stages"]
    manifest_path = base / "final" / "curriculum.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    order = manifest["stage_order"] if manifest else \
        list(dict.fromkeys(r["stage"] for r in read_parquet_rows(base / "prepare")))
    kept = {name: [r["measures"]["fk_grade"] for r in final if r.get("stage") == name] for name in order}
    # every story the model wrote, those the generate stage dropped as truncated included (measured
    # on the text they have): the model's own rise, before any filter
    texts = [(r["stage"], r["text"]) for r in read_parquet_rows(base / "generate")]
    texts += [(r["id"].split(":", 1)[0], r["raw"]) for r in read_parquet_rows(base / "_dropped" / "generate")
              if (r.get("raw") or "").strip()]
    generated: dict[str, list[float]] = {name: [] for name in order}
    for stage, text in texts:
        generated.setdefault(stage, []).append(measure(text, frozenset()).fk_grade)
    per_kept = {name: spread(v) for name, v in kept.items()}
    per_generated = {name: spread(v) for name, v in generated.items()}

    def rising(per: dict) -> bool | None:
        means = [per[name]["mean"] for name in order]
        if any(m is None for m in means):
            return None
        return all(b > a for a, b in zip(means, means[1:]))

    reasons: dict[str, int] = {}
    for name in s["stage_order"]:
        for k, v in st[name]["filter_reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    # on theme: of the stories measured for a stage (kept or filtered), the share closest to its own
    # stage's theme, as the export's manifest counts it
    themes = {x["stage"]: x["theme"] for x in manifest["stages"]} if manifest else {}
    measured = sum(t["measured"] for t in themes.values())
    fig = {"stories_kept": ratio(len(final), st["generate"]["input"], "stories in final/ / stories asked for "
                                                                       "(generate stage input)"),
           "filter_reasons": reasons, "stage_order": order,
           "on_theme": ratio(sum(t["on_theme"] for t in themes.values()), measured,
                             "stories closest to their own stage's theme / stories measured"),
           "on_theme_by_stage": themes, "rise_steps": manifest["check"]["steps"] if manifest else None,
           "fk_grade_by_stage_kept": per_kept, "rising_kept": rising(per_kept),
           "fk_grade_by_stage_all_generated": per_generated, "rising_all_generated": rising(per_generated)}
    # Goals: the model's own rise by stage, over every story it wrote (the band and theme filters
    # after it decide what is kept, not how hard the model wrote), and each stage's share on theme.
    shares = [t["share"] for t in themes.values()]
    return fig, {"rising_all_generated": "mean Flesch-Kincaid grade of the stories written rises stage by stage",
                 "on_theme_every_stage": "every stage's share of stories on its theme >= 0.70"}, \
        {"rising_all_generated": bool(fig["rising_all_generated"]),
         "on_theme_every_stage": bool(shares) and all(x is not None and x >= 0.70 for x in shares)}


def figures_data_selection(s: dict, base: Path, final: list[dict]):
    return {"records": s["counts"], "by_domain": {d: sum(r.get("domain") == d for r in final)
                                                  for d in sorted({r.get("domain") for r in final})}}, {}, {}


FIGURES = {name: globals()[f"figures_{name}"] for name in METHODS}


# ---------------------------------------------------------------------------------------------
# samples
# ---------------------------------------------------------------------------------------------
def cut(value, limit: int = CUT, tail: bool = False):
    """Long strings cut at ``limit`` characters with a marker (``tail``: their end kept); lists and
    dicts as JSON, cut alike."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if not isinstance(value, str):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [cut(v, limit) for v in value]
        value = json.dumps(value, ensure_ascii=False)
    if len(value) <= limit:
        return value
    if tail:
        return f"[… cut: the last {limit:,} of {len(value):,} characters] " + value[-limit:]
    return value[:limit] + f" [… cut: {len(value):,} characters in all]"


def sample_view(method: str, r: dict) -> dict:
    r = dict(r)
    if method == "curriculum":
        r["fk_grade"] = (r.get("measures") or {}).get("fk_grade")
    if method == "papers":
        r["citations"] = [f"p. {c.get('page')}: {c.get('quote')}" for c in r.get("citations") or []]
    if method == "knowledge_graph" and r.get("reasoning_steps"):
        r["reasoning_steps"] = [s if isinstance(s, str) else json.dumps(s, ensure_ascii=False) for s in r["reasoning_steps"]]
    if method == "personas":
        if r.get("messages") and r.get("template") == "multi_turn":
            r["output"] = "\n\n".join(f"{m['role']}: {m['content']}" for m in r["messages"])
        r["sources"] = [s.get("ref") if isinstance(s, dict) else s for s in r.get("sources") or []]
    # data_selection's Input is few-shot examples first, the item's own question last: keep its end
    view = {k: cut(r[k], tail=(method, k) == ("data_selection", "Input")) for k in SAMPLE_FIELDS[method] if k in r}
    return view | {"split": r.get("_split")}


def pick_samples(method: str, final: list[dict]) -> list[dict]:
    """5 records of final/ (seeded sample); markdown_qa one per pair (its all-steps rendering), curriculum
    in planned-stage order."""
    rows = sorted(final, key=lambda r: str(r.get("id")))
    if method == "markdown_qa":
        best = {}
        for r in rows:
            key = r["id"].rsplit(":", 1)[0]
            if key not in best or r.get("cot_level") == "all_steps":
                best[key] = r
        rows = list(best.values())
    chosen = random.Random(0).sample(rows, min(N_SAMPLES, len(rows)))
    if method == "curriculum":
        chosen.sort(key=lambda r: (r.get("stage_index", 0), r["id"]))
    else:
        chosen.sort(key=lambda r: str(r.get("id")))
    return [sample_view(method, r) for r in chosen]


def pick_filtered(base: Path) -> tuple[list[dict], int]:
    """Up to 3 filtered records from _dropped/<stage>/, one reason kind after another (quality
    reasons before bookkeeping ones), and how many filtered records there are in all."""
    by_kind: dict[str, list[dict]] = {}
    total = 0
    for folder in sorted((base / "_dropped").glob("*")):
        for r in read_parquet_rows(folder):
            if not r.get("reason"):
                continue  # an audit copy of a part of a record (a failed response), not a filtered record
            total += 1
            kind = r["reason"].split(":", 1)[0]
            by_kind.setdefault(kind, []).append({"stage": folder.name} | r)
    kinds = sorted(by_kind, key=lambda k: (k in BOOKKEEPING, -len(by_kind[k]), k))
    if any(k not in BOOKKEEPING for k in kinds):
        kinds = [k for k in kinds if k not in BOOKKEEPING]
    picked = []
    while len(picked) < N_FILTERED and any(by_kind[k] for k in kinds):
        for k in kinds:
            if by_kind[k] and len(picked) < N_FILTERED:
                picked.append(by_kind[k].pop(0))
    views = [{k: cut(audit_value(v)) for k, v in r.items() if k not in SKIP_AUDIT and v not in (None, "", [])}
             for r in picked]
    return views, total


def audit_value(value):
    """An audit field as a reader wants it: JSON held in a string parsed, a list of citations as
    "p. N: quote" lines, other lists of objects one compact JSON line per item."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        if all("quote" in v for v in value):
            return [f"p. {v.get('page')}: {v.get('quote')}" for v in value]
        return [json.dumps(v, ensure_ascii=False) for v in value]
    return value


def pick_failed(base: Path) -> list[dict]:
    rows = [r for r in read_ledgers(base) if r["outcome"] == "failed"]
    return [{"stage": r["stage"], "id": r["record_id"], "error": cut(r["error"], 400), "raw_response": cut(r["raw_response"], 800)}
            for r in rows[:N_FAILED]]


# ---------------------------------------------------------------------------------------------
# one method
# ---------------------------------------------------------------------------------------------
def measure_method(name: str, plan: dict, env: dict, timeout_s: float, prov: dict) -> dict:
    if (DATA / name).exists():
        shutil.rmtree(DATA / name)  # one partition per method: the newest is this run's
    if name == "personas" and (DATA / "_hub").exists():
        shutil.rmtree(DATA / "_hub")  # the persona hub grows between runs: start it empty
    print(f"--- {name}: {json.dumps(plan['conf'])}", flush=True)
    ran = run_dag(name, plan["conf"], env, timeout_s)
    entry = {"dag_id": name, "conf": plan["conf"], "input": plan["input"]} | ran
    entry["measured"] = {k: prov.get(k) for k in ("commit", "dirty", "sources_sha256", "when")}
    entry["ok"] = ran["rc"] == 0
    base = partition_dir(name, ran["summary_url"])
    summary = read_summary(base) if base else None
    if base is None:
        entry["error"] = "the run wrote no partition"
        return entry
    if summary is None:
        partial = partial_summary(base)
        entry |= {"error": "the run wrote no _summary.json: stage counts from its _stats/ (the stages that finished)",
                  "partition": shown(base), "stages": stage_table(partial), "usage": partial["usage"]}
        entry["filtered_samples"], entry["filtered_total"] = pick_filtered(base)
        entry["failed_samples"] = pick_failed(base)
        return entry
    entry |= {"partition": shown(base), "accounted_for": summary.get("accounted_for"),
              "problems": summary.get("problems"), "run_wall_seconds": summary.get("wall_seconds"),
              "stages": stage_table(summary), "usage": summary.get("usage"), "models": summary.get("models"),
              "records": summary.get("counts")}
    final = read_final(base)
    try:
        entry["figures"], entry["goal"], entry["met"] = FIGURES[name](summary, base, final)
    except Exception as exc:  # noqa: BLE001 - a figure that cannot be computed is recorded, not fatal
        entry["figures_error"] = f"{type(exc).__name__}: {exc}"
    entry["samples"] = pick_samples(name, final)
    entry["filtered_samples"], entry["filtered_total"] = pick_filtered(base)
    entry["failed_samples"] = pick_failed(base)
    return entry


# ---------------------------------------------------------------------------------------------
# the markdown report
# ---------------------------------------------------------------------------------------------
def md_escape_cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return md_text(text.replace("|", "\\|").replace("\n", " "))


def md_text(line: str) -> str:
    """``<`` outside code spans escaped, so that "<Role user>" or "Vec<u8>" show instead of vanishing as
    HTML tags."""
    parts = line.split("`")
    return "`".join(p.replace("<", "&lt;") if i % 2 == 0 else p for i, p in enumerate(parts))


def md_quote(text: str) -> str:
    """A blockquote of ``text``: markdown headings inside it escaped, code fences left alone."""
    out, fence = [], False
    for line in str(text).splitlines() or [""]:
        if line.lstrip().startswith("```"):
            fence = not fence
            out.append("> " + line)
        elif fence:
            out.append("> " + line)
        else:
            out.append("> " + ("\\" if line.startswith("#") else "") + md_text(line))
    return "\n".join(out)


def md_record(fields: dict, title: str) -> list[str]:
    out = [f"#### {title}", ""]
    short, long = [], []
    for k, v in fields.items():
        if v is None or k == "id":
            continue
        if isinstance(v, str) and (len(v) > 100 or "\n" in v):
            long.append((k, v))
        elif isinstance(v, list) and any(isinstance(x, str) and len(x) > 60 for x in v):
            long.append((k, v))
        else:
            short.append(f"**{k}**: {md_escape_cell(v) if not isinstance(v, str) else md_text(v)}")
    if short:
        out += [" · ".join(short), ""]
    for k, v in long:
        out.append(f"**{k}**:")
        out.append("")
        if isinstance(v, list):
            out += [f"{i + 1}. " + md_text(str(x).replace("\n", " ")) for i, x in enumerate(v)]
        else:
            out.append(md_quote(v))
        out.append("")
    return out


def fmt_value(fig) -> str:
    if isinstance(fig, dict) and "numerator" in fig:
        value = "n/a" if fig["value"] is None else f"{fig['value']:.2f}"
        return f"{value} ({fig['numerator']} / {fig['denominator']})"
    if isinstance(fig, dict) and "mean" in fig and "n" in fig:
        return "n/a" if fig["mean"] is None else f"mean {fig['mean']} (min {fig['min']}, max {fig['max']}, n {fig['n']})"
    return md_escape_cell(fig)


def md_method(name: str, e: dict) -> list[str]:
    out = [f"## {name}", ""]
    status = "ok" if e.get("ok") else f"**FAILED** (exit code {e.get('rc')}{', timed out' if e.get('timed_out') else ''})"
    usage = e.get("usage") or {}
    records = e.get("records") or {}
    inner = f" (the run itself {e['run_wall_seconds']} s)" if e.get("run_wall_seconds") is not None else ""
    out += [f"- **status**: {status}; wall {e.get('wall_seconds')} s{inner}",
            f"- **input**: {e.get('input')}",
            f"- **conf**: `{json.dumps(e.get('conf'))}`",
            f"- **LLM**: {usage.get('requests', 0)} requests, {usage.get('prompt_tokens', 0)} prompt + "
            f"{usage.get('completion_tokens', 0)} completion tokens; models {e.get('models')}",
            f"- **records**: {records.get('train', 0)} train, {records.get('validation', 0)} validation; accounted for: "
            f"{e.get('accounted_for')}", ""]
    if e.get("error"):
        out += [f"Error: {e['error']}", ""]
    for key in ("stderr_tail", "stdout_tail"):
        if (e.get(key) or "").strip():
            out += [f"<details><summary>last lines of {key.split('_')[0]}</summary>", "", "```", e[key], "```", "",
                    "</details>", ""]
    if e.get("figures_error"):
        out += [f"Figures could not be computed: `{e['figures_error']}`", ""]
    figures = e.get("figures") or {}
    if figures:
        out += ["### Figures", "", "| figure | value | what | goal | met |", "|---|---|---|---|---|"]
        for k, v in figures.items():
            if k in ("multi_hop_list",) or k.startswith("fk_grade_by"):
                continue
            what = v.get("what", "") if isinstance(v, dict) else ""
            out.append(f"| {k} | {fmt_value(v)} | {md_escape_cell(what)} | {(e.get('goal') or {}).get(k, '')} | "
                       f"{(e.get('met') or {}).get(k, '')} |")
        out.append("")
        for key, label in (("fk_grade_by_planned_stage_kept", "stories in final/"),
                           ("fk_grade_by_planned_stage_all_generated", "every story the model wrote, those cut off "
                            "at max_tokens included")):
            if key in figures:
                out += [f"Flesch-Kincaid grade by planned stage ({label}):", "",
                        "| planned stage | mean | min | max | n |", "|---|---|---|---|---|"]
                out += [f"| {s} | {v['mean']} | {v['min']} | {v['max']} | {v['n']} |" for s, v in figures[key].items()]
                out.append("")
        if figures.get("multi_hop_list"):
            out += ["Multi-hop questions generated (up to 20), with what the check said:", "",
                    "| question | answer | path | outcome |", "|---|---|---|---|"]
            out += [f"| {md_escape_cell(q['question'])} | {md_escape_cell(q['answer'])} | "
                    f"{md_escape_cell(' → '.join(q['path'] or []))} | {md_escape_cell(q['outcome'])} |"
                    for q in figures["multi_hop_list"]]
            out.append("")
    if e.get("stages"):
        out += ["### Stage funnel", "", "| stage | input | created | kept | filtered | failed | produced | filter reasons "
                "| error kinds | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
        for s, v in e["stages"].items():
            out.append(f"| {s} | {v.get('input')} | {v.get('created') or 0} | {v.get('kept')} | {v.get('filtered')} | {v.get('failed')} | "
                       f"{v.get('produced')} | {md_escape_cell(v.get('filter_reasons') or '')} | "
                       f"{md_escape_cell(v.get('error_kinds') or '')} | {v.get('seconds')} |")
        out.append("")
    total = (records.get("train", 0) or 0) + (records.get("validation", 0) or 0)
    out += [f"### Samples from final/ ({len(e.get('samples') or [])} of {total})", ""]
    if not e.get("samples"):
        out += ["(none: nothing reached final/)", ""]
    for i, r in enumerate(e.get("samples") or []):
        out += md_record(r, f"{i + 1}. `{r.get('id')}` ({r.get('split')})")
    out += [f"### Filtered ({len(e.get('filtered_samples') or [])} of {e.get('filtered_total', 0)})", ""]
    if not e.get("filtered_samples"):
        out += ["(none)", ""]
    for i, r in enumerate(e.get("filtered_samples") or []):
        fields = {k: v for k, v in r.items() if k not in ("stage", "reason")}
        out += md_record(fields, f"{i + 1}. {r.get('stage')}: {md_escape_cell(r.get('reason'))} (`{r.get('id')}`)")
    if e.get("failed_samples"):
        out += [f"### Failed ({len(e['failed_samples'])} shown)", ""]
        for i, r in enumerate(e["failed_samples"]):
            out += md_record({"error": r["error"], "raw_response": r["raw_response"]},
                             f"{i + 1}. {r['stage']}: `{r['id']}`")
    return out


def write_markdown(report: dict, path: Path) -> None:
    prov = report["provenance"]
    out = [f"# Method quality samples: {report['model']['alias']} (`--model {report['model']['name']}`)", "",
           f"Written by `bench/bench_method_quality.py` on {prov['when']} (commit {prov['commit']}, "
           f"{'dirty tree' if prov['dirty'] else 'clean tree'}); machine: {prov['machine']['cpus']} CPUs. Inputs: "
           f"{report['inputs_from']}. Each method ran as its DAG on the embedded model; per method below: its figures, "
           "the stage funnel, 5 records of final/ (a seeded sample) and up to 3 records its filters dropped, with the "
           f"reason. Long texts are cut at {CUT:,} characters. The numbers are in `{report['json']}`.", "",
           "| method | status | wall s | requests | completion tokens | records | goals |", "|---|---|---|---|---|---|---|"]
    for name in METHODS:
        e = report["methods"].get(name)
        if e is None:
            continue
        met, figures = e.get("met") or {}, e.get("figures") or {}
        goals = "; ".join(f"{k} {fmt_value(figures.get(k))}: {'met' if v else 'missed'}" for k, v in met.items()) or "n/a"
        rec = e.get("records") or {}
        out.append(f"| {name} | {'ok' if e.get('ok') else 'FAILED rc ' + str(e.get('rc'))} | {e.get('wall_seconds')} | "
                   f"{(e.get('usage') or {}).get('requests', 0)} | {(e.get('usage') or {}).get('completion_tokens', 0)} | "
                   f"{(rec.get('train') or 0) + (rec.get('validation') or 0)} | {goals} |")
    out.append("")
    for name in METHODS:
        if name in report["methods"]:
            out += md_method(name, report["methods"][name])
    path.write_text("\n".join(out) + "\n")


# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["quality", "smollm2"], default="quality")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset (default: all eight)")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="per method (default 1800)")
    parser.add_argument("--check", action="store_true", help="is the results file stale?")
    parser.add_argument("--cache-namespace", help="replay an earlier run's answers from the response cache (its "
                                                  "namespace, in that run's conf): to measure again after a "
                                                  "pipeline change that did not change the prompts")
    args = parser.parse_args(argv)
    suffix = "" if args.model == "quality" else f"-{args.model}"
    json_name, md_path = f"method_quality{suffix}.json", RESULTS / f"method_quality_samples{suffix}.md"
    if args.check:
        problem = stale(json_name)
        print(problem or f"bench/results/{json_name} describes the code here")
        return 1 if problem else 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {', '.join(METHODS)}")

    os.environ.setdefault("SYNTH_RUN_DIR", str(ROOT / ".run"))  # where `make llm-up` keeps the servers' state
    prov = provenance(MEASURED)
    plan, corpus = prepare_inputs(args.model, args.cache_namespace)
    env = dag_env(args.model)
    prepare_airflow(env)

    from synth_tasks.llm import embedded

    model = embedded.MODELS[args.model]
    was_running = embedded.read_state(model) is not None
    state = embedded.start(model) if methods != ["data_selection"] else None
    path = RESULTS / json_name
    report = json.loads(path.read_text()) if path.is_file() else {}
    report |= {"benchmark": "method_quality", "json": shown(path),
               "model": {"name": model.name, "alias": model.alias, "n_ctx": model.n_ctx},
               "inputs_from": "../shared/corpora (slices in build/bench-method-quality/inputs/)" if corpus else
               "include/ samples: ../shared/corpora is missing", "provenance": prov}
    report.setdefault("methods", {})
    try:
        for name in methods:
            entry = measure_method(name, plan[name], env, args.timeout_s, prov)
            report["methods"][name] = entry
            usage = entry.get("usage") or {}
            print(f"{name}: rc {entry['rc']}, {entry['wall_seconds']} s, {usage.get('requests', 0)} requests, "
                  f"met {entry.get('met')}", flush=True)
            write_result(json_name, report)  # after every method: an interrupted run keeps what it measured
            write_markdown(report, md_path)
    finally:
        if state is not None and not was_running:
            embedded.stop(model)
    print(f"wrote {shown(path)} and {shown(md_path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
