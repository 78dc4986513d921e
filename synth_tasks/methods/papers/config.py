"""The papers method's configuration (``PapersConfig``)."""

from __future__ import annotations

from pydantic import model_validator

from synth_tasks.config import LLMParams, MethodConfig, SamplingParams, override, param
from synth_tasks.methods.papers.qa import SINGLE_CONTEXT_TYPES, QAType


class PapersConfig(LLMParams):
    input_path: str = override(
        MethodConfig, "input_path", "include/sample_data/papers",
        "Folder, file or glob of .pdf research papers, or an s3:// URL. Relative paths are under the project "
        "root (include/... is the shipped data). {ds} is replaced by the run's data-interval date.")
    train_ratio: float = override(MethodConfig, "train_ratio", 0.8)
    context_max_tokens: int = param(700, "A section longer than this is cut into several contexts, between "
                                    "blocks (a table is never cut).", title="Max context tokens", ge=100, le=16000)
    context_min_tokens: int = param(60, "A shorter context joins the next one of the same section.",
                                    title="Min context tokens", ge=0, le=4000)
    max_contexts_per_paper: int | None = param(None, "Use only the first N contexts of each paper (all when "
                                               "empty).", title="Max contexts per paper", ge=1)
    questions_per_context: int = param(2, "QA pairs planned per context.", title="Questions per context",
                                       ge=1, le=20)
    type_weights: dict[QAType, float] = param(
        {t: 1.0 for t in SINGLE_CONTEXT_TYPES}, "Relative weight of each single-context QA type (0 turns one off); "
        "numeric_table is only asked of contexts holding a table. Multi-hop questions are planned by "
        "multi_hop_per_paper.", title="QA type weights")
    multi_hop_per_paper: int = param(2, "Multi-hop questions per paper, each over two sections (a passage and "
                                     "the table it cites first).", title="Multi-hop questions per paper", ge=0, le=100)
    describe_figures: bool = param(False, "Ask a vision endpoint (vision_conn_id) for a description of each "
                                   "figure, grounded in its caption. The embedded text model is never sent images.",
                                   title="Describe figures")
    figure_dpi: int = param(110, "Resolution of the figure crops (PNG).", title="Figure DPI", ge=36, le=600)
    temperature: float = param(0.7, "Sampling temperature.", section="Generation", title="Temperature",
                               ge=0.0, le=2.0)
    max_tokens: int = param(512, "Max tokens per LLM answer.", section="Generation", title="Max tokens",
                            ge=16, le=16384)
    min_answer_support: float = param(0.5, "Share (0-1) of a non-numeric answer's content words that its quotes "
                                      "must contain (every quote must stand word for word on its cited page).",
                                      section="Quality", title="Min answer support", ge=0.0, le=1.0)
    min_quote_chars: int = param(8, "Quotes shorter than this prove nothing (a lone number matches any table).",
                                 section="Quality", title="Min quote characters", ge=1, le=200)
    duplicate_threshold: float = param(90.0, "Questions of one paper at or above this similarity (0-100) are "
                                       "near-duplicates.", section="Quality", title="Duplicate threshold",
                                       ge=0, le=100)
    vision_conn_id: str | None = param(None, "Airflow connection of the endpoint that describes figures: an "
                                       "OpenAI-compatible server taking image_url content parts (default: "
                                       "llm_conn_id).", section="LLM endpoint", title="Vision connection")
    vision_model: str | None = param(None, "Vision model name (default: the connection's).",
                                     section="LLM endpoint", title="Vision model")

    @model_validator(mode="after")
    def _weights(self):
        if QAType.MULTI_HOP in self.type_weights:
            raise ValueError("type_weights: multi_hop is planned per paper, set multi_hop_per_paper instead")
        if any(w < 0 for w in self.type_weights.values()):
            raise ValueError("type_weights: weights must be >= 0")
        if not any(w > 0 for w in self.type_weights.values()) and self.multi_hop_per_paper == 0:
            raise ValueError("type_weights: no QA type has a weight > 0 and multi_hop_per_paper is 0")
        return self

    def sampling(self, job_id: str, temperature: float | None = None) -> SamplingParams:
        return SamplingParams.seeded(self.seed, job_id, top_p=0.95, max_tokens=self.max_tokens,
                                     temperature=self.temperature if temperature is None else temperature)
