"""Which theme measure to trust for curriculum's off_theme filter: the sentence-embedding measure the
measure stage uses, against the quality model (Qwen2.5-Coder-1.5B) asked as a judge, on the same
stories.

The stories are a curriculum run's ``generate/`` output (every story written, before any filter);
by default the quality benchmark's curriculum run (``bench_method_quality.py``, 6 stories a stage).
The committed result is on a held-out run instead (``--partition``; seed 3, 12 stories a stage):
the theme examples come from a seed-2 run, so stories the examples were drawn from would flatter
the embedding.
Each measure says, per story, whether it is about its planned stage's theme:

- ``embedding``: ``theme.closest_stages`` with the stages file's theme examples, as the measure
  stage runs it, on theme when the closest stage is its own;
- ``judge_choice``: the model picks which of the six stage themes (lettered A-F, in the stages
  file's order) the story is mainly about, as structured output (an enum of the six letters);
- ``judge_yes_no``: the model says yes or no to "is this story mainly <theme>?", asked once with the
  story's own theme and once with the theme three stages away. A judge that tells themes apart says
  yes to the first and no to the second.

Run: ``.venv/bin/python bench/bench_curriculum_theme.py [--partition DIR]`` (starts and stops the
embedded quality model; about 8 minutes on 2 cores for 35 stories, 15 for 72). ``--check`` says whether
bench/results/curriculum_theme.json still describes the code."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, provenance, shown, stale, write_result  # noqa: E402

MEASURED = ["bench/bench_curriculum_theme.py", "synth_tasks/methods/curriculum/theme.py",
            "synth_tasks/include/configs/curriculum/stages.yaml",
            "synth_tasks/include/configs/curriculum/theme_examples.jsonl"]
DEFAULT_PARTITION = ("build/bench-method-quality/data/curriculum/"
                     "run-manual__2026-12-07T15~3A28~3A26.768216~2B00~3A00")
LETTERS = "ABCDEF"


def stories(partition: Path) -> list[dict]:
    import pandas as pd

    parts = sorted((partition / "generate").glob("*.parquet"))
    if not parts:
        raise SystemExit(f"{partition}/generate holds no parquet parts: run bench_method_quality.py first")
    frame = pd.concat(pd.read_parquet(p, columns=["id", "stage", "text"]) for p in parts)
    return frame.to_dict("records")


def choice_prompt(text: str, themes: list[str]) -> str:
    kinds = "\n".join(f"{letter}. {theme}" for letter, theme in zip(LETTERS, themes))
    return (f"Here are six kinds of children's story:\n{kinds}\n\nStory:\n\"\"\"\n{text}\n\"\"\"\n\n"
            "Which kind is this story mainly? Answer with one letter.")


def yes_no_prompt(text: str, theme: str) -> str:
    return (f"Story:\n\"\"\"\n{text}\n\"\"\"\n\nA teacher wants: {theme}\n"
            "Is the story above mainly that kind of story? Answer yes or no.")


async def ask_judge(items: list[dict], themes: list[str], names: list[str]) -> None:
    """Fills each item's judge_choice and judge_yes_no (own theme, theme three stages away)."""
    from pydantic import BaseModel

    from synth_tasks.config import SamplingParams
    from synth_tasks.llm.client import LLMClient
    from synth_tasks.llm.endpoint import resolve_endpoint

    class Choice(BaseModel):
        kind: Literal["A", "B", "C", "D", "E", "F"]

    class YesNo(BaseModel):
        answer: Literal["yes", "no"]

    client = LLMClient(resolve_endpoint(), concurrency=1)
    sampling = SamplingParams(temperature=0.0, max_tokens=16)
    try:
        for it in items:
            own = names.index(it["stage"])
            other = (own + 3) % len(names)
            choice = await client.chat([{"role": "user", "content": choice_prompt(it["text"], themes)}], sampling,
                                       response_model=Choice)
            it["judge_choice"] = names[LETTERS.index(choice.parsed.kind)]
            it["judge_yes_no"] = {}
            for label, index in (("own", own), ("other", other)):
                reply = await client.chat([{"role": "user", "content": yes_no_prompt(it["text"], themes[index])}],
                                          sampling, response_model=YesNo)
                it["judge_yes_no"][label] = {"theme": names[index], "answer": reply.parsed.answer}
            print(it["id"], it["judge_choice"], it["judge_yes_no"], flush=True)
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        problem = stale("curriculum_theme.json")
        print(problem or "bench/results/curriculum_theme.json describes the code here")
        return 1 if problem else 0
    partition = ROOT / (args[args.index("--partition") + 1] if "--partition" in args else DEFAULT_PARTITION)

    from synth_tasks.llm import embedded
    from synth_tasks.methods.curriculum.stages_file import build_curriculum, parse_stages
    from synth_tasks.methods.curriculum.theme import closest_stages

    folder = (ROOT / MEASURED[2]).parent
    curriculum = build_curriculum(parse_stages((ROOT / MEASURED[2]).read_text()), lambda rel: (folder / rel).read_text())
    names, themes = [s.name for s in curriculum.stages], [s.theme or s.title for s in curriculum.stages]
    items = stories(partition)
    for it, (closest, _) in zip(items, closest_stages([it["text"] for it in items], themes, curriculum.theme_examples)):
        it["embedding"] = names[closest]

    os.environ.setdefault("SYNTH_RUN_DIR", tempfile.mkdtemp(prefix="theme-bench-run-"))
    model = embedded.MODELS["quality"]
    os.environ["SYNTH_EMBEDDED_MODEL"] = model.name
    embedded.start(model)
    started = time.monotonic()
    try:
        asyncio.run(ask_judge(items, themes, names))
    finally:
        embedded.stop(model)
    wall = time.monotonic() - started

    def per_stage(on_theme) -> dict:
        return {name: f"{sum(on_theme(it) for it in items if it['stage'] == name)} of "
                      f"{sum(it['stage'] == name for it in items)}" for name in names}

    report = {
        "benchmark": "curriculum_theme", "provenance": provenance(MEASURED), "model": model.name,
        "stories_from": shown(partition), "stories": len(items), "judge_wall_seconds": round(wall, 1),
        "on_theme_by_stage": {
            "embedding": per_stage(lambda it: it["embedding"] == it["stage"]),
            "judge_choice": per_stage(lambda it: it["judge_choice"] == it["stage"]),
            "judge_yes_no_own_theme": per_stage(lambda it: it["judge_yes_no"]["own"]["answer"] == "yes"),
        },
        "judge_choice_answers": dict(Counter(it["judge_choice"] for it in items).most_common()),
        "judge_yes_no": {"yes_to_own_theme": sum(it["judge_yes_no"]["own"]["answer"] == "yes" for it in items),
                         "yes_to_theme_three_stages_away": sum(it["judge_yes_no"]["other"]["answer"] == "yes"
                                                               for it in items),
                         "of": len(items)},
        "items": [{k: it[k] for k in ("id", "stage", "embedding", "judge_choice", "judge_yes_no")} for it in items],
    }
    out = write_result("curriculum_theme.json", report)
    print(json.dumps({k: report[k] for k in ("on_theme_by_stage", "judge_choice_answers", "judge_yes_no")}, indent=1))
    print(f"written to {shown(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
