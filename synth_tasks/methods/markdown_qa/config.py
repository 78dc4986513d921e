"""The Params of the markdown_qa DAG: the QA types, the chain-of-thought levels and MarkdownQAConfig."""

from __future__ import annotations

from enum import StrEnum

from pydantic import model_validator

from synth_tasks.config import LLMParams, MethodConfig, SamplingParams, override, param


class QAType(StrEnum):
    FACTUAL_RECALL = "factual_recall"
    INFERENCE = "inference"
    MULTI_HOP = "multi_hop"
    APPLICATION = "application"
    COMPARATIVE = "comparative"
    CAUSE_EFFECT = "cause_effect"
    SUMMARIZATION = "summarization"
    HYPOTHETICAL = "hypothetical"
    CRITICAL_ANALYSIS = "critical_analysis"
    TECHNICAL_EXPLANATION = "technical_explanation"
    PROCESS_WORKFLOW = "process_workflow"
    TRUE_FALSE = "true_false"
    FILL_IN_BLANK = "fill_in_blank"
    AMBIGUITY_RESOLUTION = "ambiguity_resolution"


HEURISTIC_TYPES = (QAType.FACTUAL_RECALL, QAType.TRUE_FALSE, QAType.FILL_IN_BLANK)


class CoTLevel(StrEnum):
    NONE = "none"
    ONE_STEP = "one_step"
    TWO_STEP = "two_step"
    ALL_STEPS = "all_steps"


class MarkdownQAConfig(LLMParams):
    input_path: str = override(
        MethodConfig, "input_path", "include/sample_data/markdown_qa/docs",
        "Folder, file or glob of .md documents, or an s3:// URL. Relative paths are under the project root "
        "(include/... is the shipped data). {ds} is replaced by the run's data-interval date.")
    train_ratio: float = override(MethodConfig, "train_ratio", 0.8)
    no_llm: bool = param(False, "Heuristic facts and fact-recall, true/false and fill-in-the-blank pairs "
                         "only: deterministic, needs no model.", title="No LLM (heuristic mode)")
    section_max_tokens: int = param(1000, "Longer sections are cut by tokens, on block boundaries.",
                                    title="Max section tokens", ge=100, le=16000)
    section_min_tokens: int = param(50, "Shorter sections are merged forward.", title="Min section tokens",
                                    ge=0, le=2000)
    pairs_per_section: int = param(3, "QA pairs planned per section.", title="Pairs per section", ge=1, le=50)
    type_weights: dict[QAType, float] = param({t: 1.0 for t in QAType}, "Relative weight of each QA type "
                                              "(0 turns a type off).", title="QA type weights")
    cot_levels: list[CoTLevel] = param(list(CoTLevel), "Chain-of-thought levels to render every pair at.",
                                       title="CoT levels", min_length=1)
    temperature: float = param(0.7, "Sampling temperature.", section="Generation", title="Temperature",
                               ge=0.0, le=2.0)
    max_tokens: int = param(512, "Max tokens per LLM answer.", section="Generation", title="Max tokens",
                            ge=16, le=16384)
    grounding_threshold: float = param(85.0, "Min fuzzy match (0-100) of each quote in its section.",
                                       section="Quality", title="Grounding threshold", ge=0, le=100)
    min_quote_words: int = param(3, "Min words of each quote: a one- or two-word quote matches almost any "
                                 "section and grounds nothing.", section="Quality", title="Min quote words", ge=1)
    duplicate_threshold: float = param(90.0, "Questions of one document at or above this similarity (0-100) "
                                       "are near-duplicates.", section="Quality", title="Duplicate threshold",
                                       ge=0, le=100)

    @model_validator(mode="after")
    def _some_type_is_on(self):
        usable = HEURISTIC_TYPES if self.no_llm else tuple(QAType)
        if not any(self.type_weights.get(t, 0) > 0 for t in usable):
            raise ValueError(f"type_weights: no QA type usable{' in no_llm mode' if self.no_llm else ''} has a "
                             f"weight > 0 (usable: {[str(t) for t in usable]})")
        if any(w < 0 for w in self.type_weights.values()):
            raise ValueError("type_weights: weights must be >= 0")
        return self

    def sampling(self, job_id: str) -> SamplingParams:
        return SamplingParams.seeded(self.seed, job_id, temperature=self.temperature, top_p=0.95,
                                     max_tokens=self.max_tokens)
