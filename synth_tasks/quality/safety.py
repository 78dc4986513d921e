"""Safety filters: a keyword/regex screen (patterns in include/configs/safety_patterns.yaml) and an
optional LLM safety judge. Both return keep/drop with the category as the reason."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel

from synth_tasks.config import SamplingParams
from synth_tasks.prompts import include_dir, load_prompt, render
from synth_tasks.quality.filters import KEEP, Verdict, drop


def load_patterns(path: Path | None = None) -> dict[str, list[re.Pattern]]:
    path = path or Path(include_dir()) / "configs" / "safety_patterns.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        return {category: [re.compile(p, re.IGNORECASE) for p in patterns] for category, patterns in raw.items()}
    except re.error as exc:
        raise ValueError(f"{path}: bad pattern: {exc}") from None


@dataclass
class KeywordSafety:
    patterns: dict[str, list[re.Pattern]] = field(default_factory=load_patterns)
    name: str = "unsafe"

    def __call__(self, text: str, prompt: str = "") -> Verdict:
        for category, patterns in self.patterns.items():
            if any(p.search(text) for p in patterns):
                return drop(f"{self.name}: {category}")
        return KEEP


class SafetyJudgement(BaseModel):
    safe: bool
    category: str


class LLMSafetyJudge:
    """Asks a model whether a text is safe; raises LLMError (with the raw text) when it cannot tell."""

    def __init__(self, client, sampling: SamplingParams | None = None):
        self.client = client
        self.sampling = sampling or SamplingParams(temperature=0.0, max_tokens=64)

    async def __call__(self, text: str) -> Verdict:
        result = await self.client.chat(
            [{"role": "user", "content": render(load_prompt("quality/safety_judge"), text=text)}],
            self.sampling, response_model=SafetyJudgement)
        judgement = result.parsed
        return KEEP if judgement.safe else drop(f"unsafe_llm: {judgement.category.strip() or 'unspecified'}")
