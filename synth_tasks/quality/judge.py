"""Scoring instruction-response pairs on the five HelpSteer2 attributes (0-4 each), combined into
one weighted score (default 0.3/0.3/0.2/0.1/0.1), by an LLM judge or by an OpenAI-compatible
reward-model endpoint behind the same interface. Malformed or out-of-range judgements raise
LLMError with the raw text: a record is never scored silently."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel

from synth_tasks.config import SamplingParams
from synth_tasks.prompts import load_prompt, render

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
DEFAULT_WEIGHTS = {"helpfulness": 0.3, "correctness": 0.3, "coherence": 0.2, "complexity": 0.1, "verbosity": 0.1}
JUDGE_MAX_TOKENS = 128  # five small integers as JSON


# An enum rather than a 0..4 range: constrained decoders (llama.cpp's grammar) enforce enums but
# not integer bounds, so the schema itself keeps a small judge from answering 5; other backends
# get a validation error, one repair attempt, and then a failure with the raw text.
Score = Literal[0, 1, 2, 3, 4]


class HelpSteerScores(BaseModel):
    helpfulness: Score
    correctness: Score
    coherence: Score
    complexity: Score
    verbosity: Score


def weighted_score(scores: dict[str, float], weights: dict[str, float] = DEFAULT_WEIGHTS) -> float:
    """Weighted mean of the attribute scores (weights are normalised to sum to 1)."""
    missing = [a for a in weights if a not in scores]
    if missing:
        raise ValueError(f"scores lack {missing}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("weights must sum to more than 0")
    return round(sum(scores[a] * w for a, w in weights.items()) / total, 4)


class LLMJudge:
    """Asks an instruction-following model for the five scores as structured output."""

    def __init__(self, client, sampling: SamplingParams | None = None,
                 weights: dict[str, float] = DEFAULT_WEIGHTS):
        self.client, self.weights = client, weights
        self.sampling = sampling or SamplingParams(temperature=0.0, max_tokens=JUDGE_MAX_TOKENS)

    async def score(self, instruction: str, response: str) -> dict:
        prompt = render(load_prompt("quality/judge_helpsteer2"), instruction=instruction, response=response)
        result = await self.client.chat([{"role": "user", "content": prompt}], self.sampling,
                                        response_model=HelpSteerScores)
        scores = result.parsed.model_dump()
        return scores | {"overall": weighted_score(scores, self.weights)}


class RewardModelJudge:
    """A reward model served behind chat completions (e.g. Nemotron-4-340B-Reward), which answers a
    [user, assistant] conversation with one logprob entry per attribute: token = attribute name,
    logprob = its score."""

    def __init__(self, client, weights: dict[str, float] = DEFAULT_WEIGHTS):
        self.client, self.weights = client, weights

    async def score(self, instruction: str, response: str) -> dict:
        from synth_tasks.llm.client import LLMError

        raw = await self.client.raw_completion(
            [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}])
        try:
            entries = raw["choices"][0]["logprobs"]["content"]
            scores = {e["token"]: float(e["logprob"]) for e in entries if e["token"] in ATTRIBUTES}
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise LLMError("invalid_reward_response", f"no attribute scores ({exc})", raw=json.dumps(raw)) from None
        missing = [a for a in self.weights if a not in scores]
        if missing:
            raise LLMError("invalid_reward_response", f"missing {missing}", raw=json.dumps(raw))
        return {a: round(scores[a], 4) for a in ATTRIBUTES if a in scores} | {
            "overall": weighted_score(scores, self.weights)}
