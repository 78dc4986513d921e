"""The stage functions of curriculum (declared in ``METHOD``, ``__init__.py``) and its export: the
ordered stage shards, the evaluation splits, the manifest and the report."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING

from synth_tasks.draw import stable_int
from synth_tasks.method import llm_seconds
from synth_tasks.methods.curriculum.config import CurriculumConfig
from synth_tasks.methods.curriculum.evaluation import (QUESTION_MODELS, answerable, evaluate_item, normalize,
                                                       stage_report)
from synth_tasks.methods.curriculum.measures import measure
from synth_tasks.methods.curriculum.schedule import Schedule, measure_stats, rising_check, schedule_phases
from synth_tasks.methods.curriculum.theme import closest_stages
from synth_tasks.prompts import load_prompt, render
from synth_tasks.quality.filters import Refusal

if TYPE_CHECKING:  # the stage runner and the export import pyarrow: not at DAG parse time
    from synth_tasks.export import ExportContext
    from synth_tasks.stage import StageRun

log = logging.getLogger(__name__)


class CurriculumCheckError(RuntimeError):
    """The curriculum's difficulty does not rise stage by stage, or an evaluation item is in training."""


# --------------------------------------------------------------------------------------------
# the curriculum travels with every record as JSON (stages, bands, word lists): later stages and
# the export need it and must not re-read an input that may have changed since
# --------------------------------------------------------------------------------------------
def curriculum_json(curriculum) -> str:
    return json.dumps({"spec": curriculum.spec.model_dump(mode="json"),
                       "own_words": [list(w) for w in curriculum.own_words],
                       "vocabularies": [sorted(v) for v in curriculum.vocabularies],
                       "theme_examples": [list(e) for e in curriculum.theme_examples]}, sort_keys=True)


@lru_cache(maxsize=8)
def load_curriculum(text: str):
    from synth_tasks.methods.curriculum.stages_file import Curriculum, StagesFile  # yaml: not at DAG parse time

    data = json.loads(text)
    return Curriculum(StagesFile.model_validate(data["spec"]), tuple(tuple(w) for w in data["own_words"]),
                      tuple(frozenset(v) for v in data["vocabularies"]),
                      # a run's items written before theme examples existed carry none
                      tuple(tuple(e) for e in data.get("theme_examples", ())))


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def plan_jobs(curriculum, cfg: CurriculumConfig, source: str) -> list[dict]:
    """Per stage its training and evaluation jobs, each with its own seeded draw of content words
    and features, so prompts differ and a re-run asks the same."""
    cjson = curriculum_json(curriculum)
    jobs = []
    for i, stage in enumerate(curriculum.stages):
        n_train = stage.items if cfg.items_per_stage is None else cfg.items_per_stage
        n_eval = stage.eval_items if cfg.eval_items_per_stage is None else cfg.eval_items_per_stage
        eval_types = list(stage.eval_templates)
        for k in range(n_train + n_eval):
            role = "train" if k < n_train else "eval"
            rng = random.Random(stable_int(f"{cfg.seed}:{stage.name}:{role}:{k}", n_bytes=8))
            pool = curriculum.own_words[i]
            words = rng.sample(pool, min(cfg.words_per_prompt, len(pool)))
            features = rng.sample(curriculum.spec.features, rng.randint(1, min(cfg.max_features_per_prompt,
                                                                                 len(curriculum.spec.features))))
            template = stage.templates[k % len(stage.templates)]
            prompt = render(load_prompt(template), words=", ".join(words), features=" and ".join(features),
                            level=stage.vocabulary_level)
            jobs.append({"id": f"{stage.name}:{role}:{k:04d}", "role": role, "stage": stage.name, "stage_index": i,
                         "template": template, "words": words, "features": features, "prompt": prompt, "source_file": source,
                         "eval_type": str(eval_types[(k - n_train) % len(eval_types)]) if role == "eval" else None,
                         "curriculum": cjson})
    return jobs


def prepare(run: StageRun[CurriculumConfig], files: list[str]) -> None:
    """Read the stages file and its word lists and plan every stage's generation jobs (training and
    held-out evaluation items); an unreadable or invalid stages file fails, naming the problem."""
    from synth_tasks.methods.curriculum.stages_file import build_curriculum, parse_stages  # yaml: not at DAG parse time

    cfg = run.cfg
    for n, url in enumerate(files):
        if n:  # item ids are per stage: a second curriculum in the same run would collide
            run.failed(url, f"extra_stages_file: one stages file per run, {files[0]} is used")
            continue
        folder = url.rsplit("/", 1)[0]
        try:
            spec = parse_stages(run.input_store.read_bytes(url).decode("utf-8"))
            curriculum = build_curriculum(spec, lambda rel: run.input_store.read_bytes(f"{folder}/{rel}").decode("utf-8"))
            for s in spec.stages:  # every prompt it names must exist, before any request is sent
                for name in [*s.templates, *s.eval_templates.values()]:
                    load_prompt(name)
        except Exception as exc:  # noqa: BLE001 - any problem with the file is this record's failure
            log.error("stages file %s failed: %s", url, exc)
            run.failed(url, f"bad_stages_file: {type(exc).__name__}: {exc}")
            continue
        jobs = plan_jobs(curriculum, cfg, url)
        if cfg.evaluate and not any(j["role"] == "eval" for j in jobs):
            raise CurriculumCheckError("evaluate is on but no stage plans an evaluation item: set eval_items in the "
                                       "stages file or the eval_items_per_stage Param, or turn evaluate off")
        run.kept(url, *jobs)
        run.counts["jobs"] += len(jobs)
        run.info["curriculum_stages"] = [s.name for s in spec.stages]


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------
def clean_story(text: str) -> str:
    """The story without a leading "Story:" / "Here is a story:" line or surrounding quotes."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    while lines and (not lines[0] or lines[0].lower().rstrip(":").startswith(("here is", "here's", "story", "title"))
                     and lines[0].endswith(":")):
        lines.pop(0)
    story = " ".join(ln for ln in lines if ln)
    if story.lower().startswith("story:"):
        story = story[6:].strip()
    return story.strip('"\u201c\u201d ')


def generate(run: StageRun[CurriculumConfig], jobs: list[dict]) -> None:
    """Write one story per job from its stage's prompt (content words and features drawn per job); a
    story cut off at max_tokens is filtered as truncated (a story without its end teaches nothing)."""
    cfg = run.cfg
    answered = run.llm_calls(jobs, lambda job: run.llm.chat([{"role": "user", "content": job["prompt"]}],
                                                            cfg.sampling(job["id"])))
    for job, result in answered:
        story = clean_story(result.text)
        if not story:
            run.filtered(job["id"], "empty_story: the model wrote nothing", raw=result.text)
        elif result.finish_reason == "length":
            run.filtered(job["id"], f"truncated: cut off at max_tokens={cfg.max_tokens}", raw=result.text)
        else:
            run.kept(job["id"], job | {"text": story, "model": result.model, "finish_reason": result.finish_reason})


# --------------------------------------------------------------------------------------------
# measure
# --------------------------------------------------------------------------------------------
def band_problem(stage, m) -> str | None:
    """Why measures ``m`` do not fit ``stage``'s band, or None."""
    lo, hi = stage.grade
    if hi is not None and m.fk_grade >= hi:
        return f"too_hard_for_stage: grade {m.fk_grade:.1f} >= {hi:g}"
    if lo is not None and m.fk_grade < lo:
        return f"too_easy_for_stage: grade {m.fk_grade:.1f} < {lo:g}"
    if stage.max_oov is not None and m.oov_share > stage.max_oov:
        return f"off_vocabulary: {m.oov_share:.0%} of words outside the stage vocabulary > {stage.max_oov:.0%}"
    return None


def measure_items(run: StageRun[CurriculumConfig], items: list[dict]) -> None:
    """Measure every story against the stage it was written for (readability, vocabulary, length,
    compression, operations, theme) and keep it there only when it fits: a refusal, too short, repetitive,
    outside the stage's grade band or vocabulary, or closer to another stage's theme, it is
    filtered with the reason. A story is never moved to another stage: the stage's content is what
    its prompt asked for, and a rise in difficulty must be measured, not made by sorting."""
    cfg = run.cfg
    themes: dict[str, tuple[int, list[float]]] = {}
    for cjson in {it["curriculum"] for it in items}:  # one per run: its stories embedded in one batch
        mine = [it for it in items if it["curriculum"] == cjson]
        curriculum = load_curriculum(cjson)
        closest = closest_stages([it["text"] for it in mine], [s.theme or s.title for s in curriculum.stages],
                                 curriculum.theme_examples)
        themes.update({it["id"]: c for it, c in zip(mine, closest)})
    for it in items:
        curriculum = load_curriculum(it["curriculum"])
        index = curriculum.index(it["stage"])
        stage = curriculum.stages[index]
        refusal = Refusal()(it["text"])
        if not refusal.keep:  # no story, so none of the stage's measured stories (it can sit close to a theme)
            run.filtered(it["id"], refusal.reason, text=it["text"], stage=stage.name)
            continue
        m = measure(it["text"], curriculum.vocabularies[index], curriculum.word_stage)
        closest, similarity = themes[it["id"]]
        on_theme = closest == index
        run.counts[f"measured:{stage.name}"] += 1
        run.counts[f"on_theme:{stage.name}"] += on_theme
        theme = {"closest_stage": curriculum.stages[closest].name, "similarity": similarity[index],
                 "closest_similarity": similarity[closest]}
        audit = {"text": it["text"], "stage": stage.name, "fk_grade": round(m.fk_grade, 2)}
        problem = band_problem(stage, m)
        if m.n_words < cfg.min_words:
            run.filtered(it["id"], f"too_short: {m.n_words} words < {cfg.min_words}", **audit)
        elif m.compression_ratio < cfg.min_compression_ratio:
            run.filtered(it["id"], f"repetitive: compression ratio {m.compression_ratio:.2f} < "
                                   f"{cfg.min_compression_ratio:g}", **audit)
        elif problem is not None:
            run.filtered(it["id"], problem, **audit)
        elif cfg.check_theme and not on_theme:
            run.filtered(it["id"], f"off_theme: closest to {theme['closest_stage']} ({theme['closest_similarity']:.2f}"
                                   f" > {theme['similarity']:.2f} for {stage.name})", **audit)
        else:
            run.kept(it["id"], it | {"measures": m.as_dict(), "theme": theme})


# --------------------------------------------------------------------------------------------
# questions for the held-out evaluation
# --------------------------------------------------------------------------------------------
def question_messages(item: dict, curriculum) -> list[dict]:
    stage = curriculum.stages[item["stage_index"]]
    template = stage.eval_templates.get(item["eval_type"]) or next(iter(stage.eval_templates.values()))
    return [{"role": "user", "content": render(load_prompt(template), story=item["text"])}]


def _letter_answer(question: dict) -> dict:
    """A multiple-choice answer given as its letter ("B") becomes the choice's text."""
    answer = question["answer"].strip().rstrip(".)").lstrip("(")
    if question.get("choices") and len(answer) == 1 and answer.upper() in "ABCD":
        return question | {"answer": question["choices"]["ABCD".index(answer.upper())]}
    return question


def make_questions(run: StageRun[CurriculumConfig], items: list[dict]) -> None:
    """For every evaluation item, a question with its reference answer (short answer, or multiple
    choice with four choices) kept only when answerable from its own story; training items pass."""
    cfg = run.cfg
    evals = [it for it in items if it["role"] == "eval"]
    for it in items:
        if it["role"] != "eval":
            run.kept(it["id"], it | {"eval_type": None, "question": None, "choices": None, "answer": None})
    answered = run.llm_calls(evals, lambda it: run.llm.chat(
        question_messages(it, load_curriculum(it["curriculum"])),
        cfg.sampling(it["id"] + ":question", cfg.question_max_tokens, temperature=0.3),
        response_model=QUESTION_MODELS[it["eval_type"]]))
    for it, result in answered:
        q = _letter_answer(result.parsed.model_dump())
        q = {k: (v.strip() if isinstance(v, str) else [c.strip() for c in v]) for k, v in q.items()}
        problem = answerable(it["eval_type"], q, it["text"])
        if problem:
            run.filtered(it["id"], problem, text=it["text"], question=json.dumps(q))
        else:
            run.kept(it["id"], it | {"question": q["question"], "choices": q.get("choices"), "answer": q["answer"]})


# --------------------------------------------------------------------------------------------
# dedup: evaluation stories first, so a training story never shadows one
# --------------------------------------------------------------------------------------------
def dedup(run: StageRun[CurriculumConfig], items: list[dict]) -> None:
    """Drop exact and near-duplicate stories across all stages; a training story that repeats an
    evaluation story is dropped (evaluation items never appear in training)."""
    from synth_tasks.quality.dedup import exact_duplicate_of, near_duplicate_of  # rapidfuzz: not at DAG parse time

    ordered = sorted(items, key=lambda it: (it["role"] != "eval", it["id"]))
    texts = [it["text"] for it in ordered]
    exact, near = exact_duplicate_of(texts), near_duplicate_of(texts, run.cfg.duplicate_threshold)
    for it, ex, nd in zip(ordered, exact, near):
        of = ex if ex is not None else nd
        if of is None:
            run.kept(it["id"], it)
            continue
        how, other = ("exact" if ex is not None else "near"), ordered[of]
        kind = "eval_overlap" if other["role"] == "eval" and it["role"] == "train" else "duplicate_story"
        run.filtered(it["id"], f"{kind}: {how} duplicate of {other['id']}", text=it["text"])


# --------------------------------------------------------------------------------------------
# evaluate the model under test
# --------------------------------------------------------------------------------------------
def evaluate(run: StageRun[CurriculumConfig], items: list[dict]) -> None:
    """Ask the model under test (eval_conn_id) every evaluation question and score its answer by
    normalised match; its answers ride on the items to the export's per-stage report. A model that
    gives no answer leaves the item unscored (eval_error), never lost."""
    cfg = run.cfg
    evals = [it for it in items if it["role"] == "eval"]
    none = {"eval_prediction": None, "eval_correct": None, "eval_error": None, "eval_scored_by": None}
    if not cfg.evaluate or not evals:
        for it in items:
            run.kept(it["id"], it | none | {"eval_model": None})
        return

    async def all_items():
        return await asyncio.gather(*(evaluate_item(
            run.llm, it, cfg.sampling(it["id"] + ":answer", cfg.eval_max_tokens, temperature=0.0)) for it in evals))

    answers = run.run_async(all_items)
    model = run.endpoint.model
    results = {it["id"]: answer | {"eval_model": model} for it, answer in zip(evals, answers)}
    for it in items:
        run.kept(it["id"], it | results.get(it["id"], none | {"eval_model": None}))
    run.info["evaluated_model"] = model


# --------------------------------------------------------------------------------------------
# export: ordered stage shards, evaluation splits, manifest, report
# --------------------------------------------------------------------------------------------
TRAIN_FIELDS = ("id", "stage", "stage_index", "text", "words", "features", "template", "measures", "theme", "model",
                "source_file")
EVAL_FIELDS = ("id", "stage", "stage_index", "eval_type", "text", "question", "choices", "answer", "measures")


def training_records(received: list[dict]) -> list[dict]:
    """The final training records: training items only, without the planning columns."""
    return [{k: r.get(k) for k in TRAIN_FIELDS} for r in received if r["role"] == "train"]


def theme_share(measured: Counter, stage: str) -> dict:
    """Of the stories written for ``stage`` that were measured (kept or filtered), how many were
    closest to its own theme: the generator's share on theme, before the theme filter."""
    n, on = measured[f"measured:{stage}"], measured[f"on_theme:{stage}"]
    return {"measured": n, "on_theme": on, "share": round(on / n, 4) if n else None}


def write_curriculum(ctx: ExportContext, train: list[dict], validation: list[dict]) -> dict[str, str]:
    from synth_tasks.export import read_stage_stats  # pyarrow: not at DAG parse time
    from synth_tasks.methods.curriculum.stages_file import slug  # yaml: not at DAG parse time

    cfg: CurriculumConfig = ctx.cfg
    store, final = ctx.store, ctx.final_dir
    if not ctx.records:
        raise CurriculumCheckError("no items reached the export: nothing to order into a curriculum")
    curriculum = load_curriculum(ctx.records[0]["curriculum"])
    evals = sorted((r for r in ctx.records if r["role"] == "eval"), key=lambda r: (r["stage_index"], r["id"]))
    overlap = {normalize(r["text"]) for r in evals} & {normalize(r["text"]) for r in train + validation}
    if overlap:
        raise CurriculumCheckError(f"{len(overlap)} evaluation stories are also in training")

    measured = Counter()  # every story the measure stage saw, kept or filtered: the theme shares
    for stats in read_stage_stats(ctx.layout, ["measure"]):
        measured.update(stats["counts"])
    outputs: dict[str, str] = {}
    per_stage, shard_lists = [], []
    for i, stage in enumerate(curriculum.stages):
        name = slug(i, stage)
        mine = sorted((r for r in train if r["stage_index"] == i), key=lambda r: r["id"])
        shards = []
        for n, start in enumerate(range(0, len(mine), cfg.stage_shard_records)):
            rows = mine[start: start + cfg.stage_shard_records]
            store.write_parquet(f"{final}/{name}/part-{n:05d}.parquet", rows)
            shards.append({"path": f"{name}/part-{n:05d}.parquet", "records": len(rows)})
        shard_lists.append(shards)
        stage_evals = [{k: r.get(k) for k in EVAL_FIELDS} for r in evals if r["stage_index"] == i]
        outputs[f"eval_{name}"] = store.write_jsonl(f"{final}/eval/{name}.jsonl", stage_evals)
        per_stage.append({
            "stage": stage.name, "index": i + 1, "folder": name, "title": stage.title,
            "grade_band": list(stage.grade), "max_oov": stage.max_oov,
            "train": len(mine), "validation": sum(r["stage_index"] == i for r in validation),
            "eval": len(stage_evals), "shards": shards, "difficulty": measure_stats(mine),
            "theme": theme_share(measured, stage.name),
        })

    check = rising_check(per_stage, [str(m) for m in cfg.rising_measures])
    report = None
    if cfg.evaluate:
        if not any(r.get("eval_correct") is not None for r in evals):
            errors = sorted({r["eval_error"] for r in evals if r.get("eval_error")})[:3]
            raise CurriculumCheckError(
                f"evaluate is on but nothing was evaluated: {len(evals)} evaluation items reached the export, none "
                f"answered and scored" + (f" (errors: {'; '.join(errors)})" if errors else
                                           " (see the questions stage's filter reasons)"))
        report = stage_report(evals, [s.name for s in curriculum.stages], cfg.mastery_threshold)
        report["model"] = next((r.get("eval_model") for r in evals if r.get("eval_model")), None)
        outputs["eval_report"] = store.write_json(f"{final}/eval_report.json", report)
        outputs["eval_predictions"] = store.write_jsonl(
            f"{final}/eval_predictions.jsonl",
            [{k: r.get(k) for k in ("id", "stage", "eval_type", "question", "answer", "eval_prediction",
                                    "eval_correct", "eval_error", "eval_scored_by")} for r in evals])
    manifest = {
        "stage_order": [s.name for s in curriculum.stages],
        "stages": per_stage,
        "check": check,
        "schedule": {"kind": str(cfg.schedule), "replay": cfg.hybrid_replay if cfg.schedule == Schedule.HYBRID else None,
                     "phases": schedule_phases(shard_lists, cfg.schedule, cfg.hybrid_replay)},
        "evaluation": None if report is None else {s["stage"]: s["score"] for s in report["stages"]}
        | {"first_not_mastered": report["first_not_mastered"]},
    }
    for phase in manifest["schedule"]["phases"]:
        phase["stage"] = curriculum.stages[phase["stage"]].name
    outputs["curriculum"] = store.write_json(f"{final}/curriculum.json", manifest)
    ctx.info["curriculum"] = {"counts": {s["stage"]: s["train"] for s in per_stage},
                              "theme_share": {s["stage"]: s["theme"]["share"] for s in per_stage},
                              "eval_counts": {s["stage"]: s["eval"] for s in per_stage},
                              "check_ok": check["ok"], "evaluation": manifest["evaluation"]}
    if cfg.check_rising and not check["ok"]:
        raise CurriculumCheckError("difficulty does not rise stage by stage: " + "; ".join(check["problems"]))
    return outputs


# --------------------------------------------------------------------------------------------
# the shard plan: seconds of work per record of a shard (Stage(cost=...) in METHOD)
# --------------------------------------------------------------------------------------------
# measure: readability, vocabulary, compression and the story's sentence embedding against the six
# stages: 44-62 ms a story (86-103 ms of CPU: the embedding uses both cores) on 65 stories of the
# quality model (155 words a story; bench/bench_stage_costs.py, five runs at load 0.9-1.2), once the
# embedding model is loaded and the theme examples embedded, which takes a task 6-8 s once;
# declared about twice that.
MEASURE_SECONDS = 0.12


def eval_share(cfg: CurriculumConfig) -> float:
    """The share of items that are evaluation items where the Params say it, else 1: the stages
    file decides, and the plan does not read it, so every item may be one."""
    if cfg.items_per_stage is None or cfg.eval_items_per_stage is None:
        return 1.0
    total = cfg.items_per_stage + cfg.eval_items_per_stage
    return cfg.eval_items_per_stage / total if total else 1.0


def questions_cost(cfg: CurriculumConfig) -> float:
    """One question (question_max_tokens) per evaluation item; a training item passes on."""
    return llm_seconds(cfg, requests=eval_share(cfg), max_tokens=cfg.question_max_tokens)


def evaluate_cost(cfg: CurriculumConfig) -> float:
    """One answer of the model under test (eval_max_tokens) per evaluation item. Without evaluate
    every item only passes on: no work to size shards by, so one task."""
    return llm_seconds(cfg, requests=eval_share(cfg), max_tokens=cfg.eval_max_tokens) if cfg.evaluate else 0.0
