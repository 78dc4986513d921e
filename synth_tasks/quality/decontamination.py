"""Decontamination against benchmark test sets: generated text that shares an n-gram (13 words by
default, as in GPT-3's and Llama's reports) with a benchmark item is filtered, naming the benchmark."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from synth_tasks.prompts import include_dir
from synth_tasks.quality.filters import KEEP, Verdict, drop

_WORD = re.compile(r"[a-z0-9]+")

# name -> (file under include/benchmarks, fields whose text is checked)
BENCHMARKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gsm8k_test": ("gsm8k_test.jsonl", ("question", "answer")),
}


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> list[str]:
    """The text's word n-grams in reading order (so the reason names the first shared one, the
    same in every run)."""
    words = _words(text)
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


@dataclass
class Decontaminator:
    """Holds the n-grams of the chosen benchmarks; call it on a text to keep or drop it."""

    benchmarks: tuple[str, ...] = ("gsm8k_test",)
    n: int = 13
    name: str = "benchmark_overlap"
    _index: dict[str, str] = field(default_factory=dict, repr=False)  # n-gram -> benchmark

    def __post_init__(self):
        for bench in self.benchmarks:
            if bench not in BENCHMARKS:
                raise KeyError(f"unknown benchmark {bench!r}; known: {sorted(BENCHMARKS)}")
            filename, fields = BENCHMARKS[bench]
            path = Path(include_dir()) / "benchmarks" / filename
            for line in path.read_text(encoding="utf-8").splitlines():
                item = json.loads(line)
                for f in fields:
                    for gram in ngrams(str(item.get(f, "")), self.n):
                        self._index.setdefault(gram, bench)

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        for gram in ngrams(text, self.n):
            bench = self._index.get(gram)
            if bench is not None:
                return drop(f"{self.name}: {self.n}-gram shared with {bench}: \"{gram}\"")
        return KEEP
