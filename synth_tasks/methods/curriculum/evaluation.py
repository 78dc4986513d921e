"""Per-stage evaluation: held-out questions with reference answers, checked against their own story;
asking a model under test; scoring (normalised match, or an LLM judge); the per-stage report with a
mastery threshold. Used by the DAG's ``evaluate`` stage and by ``python -m
synth_tasks.methods.curriculum.evaluation`` against any OpenAI-compatible endpoint."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import string

from pydantic import BaseModel, Field, SecretStr

from synth_tasks.config import EndpointConfig, SamplingParams
from synth_tasks.llm.endpoint import resolve_endpoint
from synth_tasks.prompts import load_prompt, render

LETTERS = "ABCD"


class ShortAnswerQuestion(BaseModel):
    question: str = Field(min_length=1, max_length=300)
    answer: str = Field(min_length=1, max_length=80)


class MultipleChoiceQuestion(BaseModel):
    question: str = Field(min_length=1, max_length=300)
    choices: list[str] = Field(min_length=4, max_length=4)
    answer: str = Field(min_length=1, max_length=80)


class NothingEvaluated(RuntimeError):
    """An evaluation that scored nothing: no items, or no answer from the model (or its judge)."""


class JudgeVerdict(BaseModel):
    correct: bool


QUESTION_MODELS = {"short_answer": ShortAnswerQuestion, "multiple_choice": MultipleChoiceQuestion}


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's answer normalisation)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation + "\u2019\u201c\u201d"))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answerable(kind: str, question: dict, story: str) -> str | None:
    """None when the question can be answered from its story, else the filter reason: the reference
    answer must occur in the story (normalised, whole words); a multiple-choice answer must be one
    of four distinct choices, and no wrong choice may be the answer again."""
    answer = normalize(question["answer"])
    if not answer:
        return "unanswerable: empty reference answer"
    if normalize(question["question"]) == answer:
        return "unanswerable: the question is its own answer"
    if f" {answer} " not in f" {normalize(story)} ":
        return f"unanswerable: answer {question['answer']!r} not found in its story"
    if kind == "multiple_choice":
        choices = [normalize(c) for c in question["choices"]]
        if len(set(choices)) != len(choices) or "" in choices:
            return "bad_choices: the four choices are not distinct"
        if choices.count(answer) != 1:
            return f"bad_choices: answer {question['answer']!r} is not exactly one of the choices"
    return None


def answer_messages(item: dict) -> list[dict]:
    kind = item["eval_type"]
    values = {"story": item["text"], "question": item["question"]}
    if kind == "multiple_choice":
        values["choices"] = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(item["choices"]))
    return [{"role": "user", "content": render(load_prompt(f"curriculum/answer_{kind}"), **values)}]


def judge_messages(item: dict, prediction: str) -> list[dict]:
    return [{"role": "user", "content": render(load_prompt("curriculum/judge_answer"), question=item["question"],
                                               reference=item["answer"], prediction=prediction)}]


# "The answer is: red", "Answer - red", "The answer to the question is: \"red\"": a lead-in a
# verbose model puts before its answer, stripped before matching
_LEAD_IN = re.compile(r"^\s*(?:(?:the\s+)?(?:correct\s+|final\s+|short\s+)?answer(?:\s+to\s+(?:the|this)\s+question)?"
                      r"\s*(?:is|would\s+be|:|-)\s*[:\-]?\s*)", re.IGNORECASE)
# words that turn an answer into its opposite or into a guess between several
NEGATIONS = frozenset("not no never none nobody nothing neither nor isnt wasnt arent werent dont doesnt didnt "
                      "cannot cant wont hasnt havent".split())
HEDGES = frozenset("or maybe perhaps probably possibly might either unsure guess".split())
_DENYING_WORDS = NEGATIONS | HEDGES


def negated_or_hedged(prediction: str, reference: str) -> str | None:
    """The word that makes ``prediction`` deny or hedge (a negation or a hedge it has and the
    reference lacks), or None: "It is not red" and "red or blue" do not answer "red"."""
    ref = set(normalize(reference).split())
    return next((w for w in normalize(prediction).split() if w in _DENYING_WORDS and w not in ref), None)


def chosen_letter(prediction: str, choices: list[str]) -> str | None:
    """The choice a multiple-choice reply picks: a leading letter ("B", "B.", "(B)", "The answer is B"),
    else the one choice whose text it contains, unless it negates or hedges ("not the cat")."""
    # the letter alone or closed by ) . : ("A fish" is the choice's text, not the letter A)
    prediction = _LEAD_IN.sub("", prediction, count=1)
    m = re.match(r"^\s*\(?([A-Da-d])(?:[).:]|\s*$)", prediction)
    if m:
        return m.group(1).upper()
    if negated_or_hedged(prediction, " ".join(choices)):
        return None  # "not the cat", "the cat or the dog": no choice picked
    said = f" {normalize(prediction)} "
    hits = [LETTERS[i] for i, c in enumerate(choices) if normalize(c) and f" {normalize(c)} " in said]
    return hits[0] if len(hits) == 1 else None


def match_score(item: dict, prediction: str) -> bool:
    """Exact / normalised match. Multiple choice: the chosen letter is the reference's. Short
    answer: after a lead-in ("The answer is:") is stripped, the normalised prediction equals the
    reference, or contains it with at most three other words (a model that answers "The ball is
    red." to "What colour is the ball?"), none of them a negation or a hedge."""
    if item["eval_type"] == "multiple_choice":
        letter = chosen_letter(prediction, list(item["choices"]))
        ref = [normalize(c) for c in item["choices"]].index(normalize(item["answer"]))
        return letter == LETTERS[ref]
    answer = _LEAD_IN.sub("", prediction, count=1)
    pred, ref = normalize(answer), normalize(item["answer"])
    if not pred or negated_or_hedged(answer, item["answer"]):
        return False
    return pred == ref or (f" {ref} " in f" {pred} " and len(pred.split()) <= len(ref.split()) + 3)


def stage_report(items: list[dict], stage_names: list[str], threshold: float) -> dict:
    """Per stage in curriculum order: items, correct, score and whether it is mastered
    (score >= threshold); ``first_not_mastered`` is where training should not yet advance past. A
    stage with no evaluation items is not mastered (nothing shows it is)."""
    stages = []
    for name in stage_names:
        mine = [it for it in items if it["stage"] == name]
        scored = [it for it in mine if it.get("eval_correct") is not None]
        correct = sum(bool(it["eval_correct"]) for it in scored)
        score = correct / len(scored) if scored else None
        stages.append({"stage": name, "items": len(mine), "scored": len(scored), "correct": correct,
                       "errors": len(mine) - len(scored), "score": None if score is None else round(score, 4),
                       "mastered": score is not None and score >= threshold})
    leading = 0
    while leading < len(stages) and stages[leading]["mastered"]:
        leading += 1
    return {"mastery_threshold": threshold, "stages": stages,
            "first_not_mastered": stages[leading]["stage"] if leading < len(stages) else None,
            "mastered_through": stages[leading - 1]["stage"] if leading else None}


async def evaluate_item(client, item: dict, sampling, *, judge=None, judge_sampling=None) -> dict:
    """Ask the model under test one held-out question and score its reply. Returns the fields the
    item gains: eval_prediction, eval_correct (None when the model gave no answer), eval_error,
    eval_scored_by."""
    from synth_tasks.llm.client import LLMError  # openai and pyarrow: not at DAG parse time

    try:
        result = await client.chat(answer_messages(item), sampling)
    except LLMError as exc:
        return {"eval_prediction": None, "eval_correct": None, "eval_error": f"{exc.kind}: {exc}", "eval_scored_by": None}
    prediction = result.text.strip()
    if judge is None:
        return {"eval_prediction": prediction, "eval_correct": match_score(item, prediction), "eval_error": None,
                "eval_scored_by": "match"}
    try:
        verdict = await judge.chat(judge_messages(item, prediction), judge_sampling, response_model=JudgeVerdict)
    except LLMError as exc:
        return {"eval_prediction": prediction, "eval_correct": None, "eval_error": f"judge {exc.kind}: {exc}",
                "eval_scored_by": None}
    return {"eval_prediction": prediction, "eval_correct": bool(verdict.parsed.correct), "eval_error": None,
            "eval_scored_by": "judge"}


def evaluate_endpoint(items: list[dict], stage_names: list[str], endpoint, *, threshold: float,
                      max_tokens: int = 32, concurrency: int = 4, seed: int = 0, judge_endpoint=None) -> dict:
    """Run every item against ``endpoint`` (an EndpointConfig) outside Airflow, no response cache:
    {"report": per-stage report, "items": items with their predictions}. Nothing to evaluate, or
    no answer scored, is an error (a report of 0/0 per stage would read as "not mastered")."""
    from synth_tasks.llm.client import LLMClient  # openai and pyarrow: not at DAG parse time

    if not items:
        raise NothingEvaluated("no evaluation items: nothing to evaluate")

    async def main():
        client = LLMClient(endpoint, concurrency=concurrency)
        judge = LLMClient(judge_endpoint, concurrency=concurrency) if judge_endpoint else None
        try:
            results = await asyncio.gather(*(evaluate_item(
                client, it, SamplingParams.seeded(seed, it["id"] + ":answer", temperature=0.0, max_tokens=max_tokens),
                judge=judge, judge_sampling=SamplingParams(temperature=0.0, max_tokens=16)) for it in items))
        finally:
            await client.aclose()
            if judge:
                await judge.aclose()
        return [it | r for it, r in zip(items, results)]

    scored = asyncio.run(main())
    if not any(it["eval_correct"] is not None for it in scored):
        errors = sorted({it["eval_error"] for it in scored if it["eval_error"]})[:3]
        raise NothingEvaluated(f"none of {len(scored)} evaluation items was answered and scored: {'; '.join(errors)}")
    return {"report": stage_report(scored, stage_names, threshold), "items": scored}


def evaluate_final(final_dir: str, endpoint, *, threshold: float, max_tokens: int = 32, concurrency: int = 4,
                   judge_endpoint=None, out: str | None = None) -> dict:
    """Evaluate a model on a curriculum run's held-out splits: ``final_dir`` is the run's final/
    folder (local path or URL) holding curriculum.json and eval/*.jsonl. Writes the report (with
    every prediction) to ``out`` when given; returns it."""
    from synth_tasks.storage import Store  # fsspec and pyarrow: not at DAG parse time

    store = Store(final_dir if "://" in final_dir else f"file://{os.path.abspath(final_dir)}")
    manifest = store.read_json(f"{store.root}/curriculum.json")
    items = []
    for stage in manifest["stages"]:
        url = f"{store.root}/eval/{stage['folder']}.jsonl"
        if store.exists(url):
            items += [json.loads(line) for line in store.read_bytes(url).decode().splitlines() if line.strip()]
    if not items:
        raise NothingEvaluated(f"{final_dir}: no evaluation items under eval/ (was the run made with eval_items 0?)")
    result = evaluate_endpoint(items, manifest["stage_order"], endpoint, threshold=threshold, max_tokens=max_tokens,
                               concurrency=concurrency, judge_endpoint=judge_endpoint)
    report = result["report"] | {"model": endpoint.model, "base_url": endpoint.base_url,
                                 "scored_by": "judge" if judge_endpoint else "match"}
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(report | {"items": result["items"]}, fh, ensure_ascii=False, indent=2)
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m synth_tasks.methods.curriculum.evaluation FINAL_DIR [--base-url URL --model M]``: every
    stage's evaluation against an OpenAI-compatible endpoint (default: $SYNTH_LLM_* or the embedded
    server), scored by normalised match or, with --judge-base-url/--judge-model, by an LLM judge."""
    parser = argparse.ArgumentParser(prog="python -m synth_tasks.methods.curriculum.evaluation")
    parser.add_argument("final_dir", help="a curriculum run's final/ folder (path or URL)")
    parser.add_argument("--base-url"), parser.add_argument("--model"), parser.add_argument("--api-key")
    parser.add_argument("--structured-output", default="json_schema",
                        choices=["json_schema", "json_object_schema", "prompt"])
    parser.add_argument("--judge-base-url"), parser.add_argument("--judge-model")
    parser.add_argument("--threshold", type=float, default=0.6, help="mastery threshold (share correct)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", help="write the report with every prediction here (JSON)")
    args = parser.parse_args(argv)

    def endpoint(base_url, model):
        return EndpointConfig(base_url=base_url.rstrip("/"), model=model, api_key=SecretStr(args.api_key or "not-needed"),
                              structured_output=args.structured_output)

    target = endpoint(args.base_url, args.model) if args.base_url else resolve_endpoint(None, args.model)
    judge = endpoint(args.judge_base_url, args.judge_model or target.model) if args.judge_base_url else None
    report = evaluate_final(args.final_dir, target, threshold=args.threshold, max_tokens=args.max_tokens,
                            concurrency=args.concurrency, judge_endpoint=judge, out=args.out)
    for s in report["stages"]:
        print(f"{s['stage']:>24}: {s['correct']}/{s['scored']} correct  score {s['score']}  "
              f"{'mastered' if s['mastered'] else 'not mastered'}")
    print(f"first stage not mastered: {report['first_not_mastered']}  (threshold {report['mastery_threshold']})")
    print(json.dumps({"model": report["model"], "scores": {s['stage']: s['score'] for s in report['stages']}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
