"""Decontamination against benchmark test sets: generated text that shares an n-gram (13 words by
default, as in GPT-3's and Llama's reports) with a benchmark item is filtered, naming the benchmark.

Arithmetic is cut out of the text on both sides before the n-grams are taken, and no n-gram spans
a cut: GSM8K's calculator annotations (``3*7 = <<3*7=21>>21``), calculations and runs of bare
numbers repeat in thousands of unrelated solutions, so a 13-gram such as "7 days in a week so she
eats 3 7 3 7 21" said nothing about a copy. A lone number in prose stays (a copied question keeps
its numbers)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from synth_tasks.prompts import include_dir
from synth_tasks.quality.filters import KEEP, Verdict, drop

_WORD = re.compile(r"[a-z0-9]+")
# GSM8K's calculator annotation: <<48/2=24>>
_CALCULATOR = re.compile(r"<<[^<>]*>>")
# a calculation: numbers joined by + - * / x × ÷ =, each but the last with an optional unit
# ("2 weeks * 7 days/week", "0.2 x 50", "$12/60"), $ and % around the numbers
_OP = r"[-+*/x×÷=]"
_NUMBER = r"\$?\d[\d,]*(?:\.\d+)?%?"
_UNIT = r"(?:\s*[A-Za-z]+(?:/[A-Za-z]+)?)?"
_ARITHMETIC = re.compile(rf"(?:{_NUMBER}{_UNIT}\s*{_OP}\s*)+{_NUMBER}")
_CUT = "\x00"  # where arithmetic was cut out: no n-gram spans it
# 1.50 and 1,000 are one number each, not a run of two; so is a fraction in prose ("gives 1/3 to
# Bill"), told from a division by having no operator or number on either side
_NUMBER_MARK = re.compile(r"(?<=\d)[.,](?=\d)")
_FRACTION = re.compile(rf"(?<!{_OP})(?<!{_OP}\s)(?<![\d.])(\d+)/(\d+)(?![\d.])(?!\s*{_OP})")

# name -> (file under include/benchmarks, fields whose text is checked)
BENCHMARKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gsm8k_test": ("gsm8k_test.jsonl", ("question", "answer")),
}


def word_stretches(text: str, strip_arithmetic: bool = True) -> list[list[str]]:
    """The text's lower-case words, in the stretches an n-gram may span. With ``strip_arithmetic``,
    calculator annotations, calculations and runs of two or more bare numbers (``3 7 21``) are cut
    out, and the words either side of a cut are not joined: they were not next to each other. A
    lone number in prose stays (``$1.50`` and ``1/3`` in prose are one number each: ``150``, ``13``)."""
    if not strip_arithmetic:
        return [_WORD.findall(text.lower())]
    text = _FRACTION.sub(r"\1\2", _CALCULATOR.sub(f" {_CUT} ", text))
    text = _NUMBER_MARK.sub("", _ARITHMETIC.sub(f" {_CUT} ", text))
    stretches: list[list[str]] = []
    for part in text.split(_CUT):
        stretch: list[str] = []
        numbers: list[str] = []
        for word in [*_WORD.findall(part.lower()), ""]:  # the empty word ends a trailing run
            if word.isdigit():
                numbers.append(word)
                continue
            if len(numbers) == 1:
                stretch.append(numbers[0])
            elif numbers:  # a run of bare numbers: cut here
                stretches.append(stretch)
                stretch = []
            numbers = []
            if word:
                stretch.append(word)
        stretches.append(stretch)
    return [s for s in stretches if s]


def ngrams(text: str, n: int, strip_arithmetic: bool = True) -> list[str]:
    """The text's word n-grams in reading order (so the reason names the first shared one, the
    same in every run); none spans arithmetic unless ``strip_arithmetic`` is False."""
    return [" ".join(words[i : i + n]) for words in word_stretches(text, strip_arithmetic)
            for i in range(len(words) - n + 1)]


@dataclass
class Decontaminator:
    """Holds the n-grams of the chosen benchmarks; call it on a text to keep or drop it.
    ``strip_arithmetic=False`` gives the n-grams with the arithmetic left in (the earlier
    behaviour, kept for the benchmark that measures the difference)."""

    benchmarks: tuple[str, ...] = ("gsm8k_test",)
    n: int = 13
    name: str = "benchmark_overlap"
    strip_arithmetic: bool = True
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
                    for gram in ngrams(str(item.get(f, "")), self.n, self.strip_arithmetic):
                        self._index.setdefault(gram, bench)

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        for gram in ngrams(text, self.n, self.strip_arithmetic):
            bench = self._index.get(gram)
            if bench is not None:
                return drop(f"{self.name}: {self.n}-gram shared with {bench}: \"{gram}\"")
        return KEEP
