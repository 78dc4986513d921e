"""The instruct method's Params: one config, which is also the trigger form (sections and titles)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import field_validator, model_validator

from synth_tasks.config import LLMParams, MethodConfig, SamplingParams, override, param
from synth_tasks.quality.decontamination import BENCHMARKS
from synth_tasks.quality.judge import ATTRIBUTES, DEFAULT_WEIGHTS

# Self-Instruct's keyword blocklist (tasks a text model cannot do): the default of ``blocklist`` and
# of the filters' ``KeywordBlocklist``.
SELF_INSTRUCT_BLOCKLIST = ("image", "graph", "picture", "file", "map", "draw", "plot", "go to")


class EvolOperation(StrEnum):
    ADD_CONSTRAINTS = "add_constraints"
    DEEPENING = "deepening"
    CONCRETIZING = "concretizing"
    INCREASE_REASONING = "increase_reasoning"
    COMPLICATE_INPUT = "complicate_input"
    IN_BREADTH = "in_breadth"


class JudgeKind(StrEnum):
    LLM = "llm"
    REWARD_MODEL = "reward_model"


class InstructConfig(LLMParams):
    # -- Input -----------------------------------------------------------------------------------
    input_path: str = override(
        MethodConfig, "input_path", "include/sample_data/instruct/seeds.yaml",
        "Seed instructions: a YAML list, JSONL or Parquet file (id, domain, instruction), a folder of them, "
        "a glob or an s3:// URL. Relative paths are under the project root (include/... is the shipped "
        "data). {ds} is replaced by the run's data-interval date.")
    id_column: str | None = override(MethodConfig, "id_column", "id",
                                     "Field holding a stable seed id (optional; default: file and row).")
    # Fixed, not planned: the novelty pool is per shard, so the shard size shapes the output.
    shard_size: int | None = override(MethodConfig, "shard_size", 64, "Records per mapped task. Each shard keeps "
                                      "its own novelty pool, so this shapes the output; empty: planned from the "
                                      "stages' cost. Grown when the shard count would pass Airflow's "
                                      "[core] max_map_length.")
    instruction_column: str = param("instruction", "Field holding the seed instruction.", section="Input",
                                    title="Instruction column")
    domain_column: str = param("domain", "Field holding the seed's domain (optional; seeds without one are "
                               "'general').", section="Input", title="Domain column")
    max_seeds: int | None = param(None, "Use only the first N seeds (smoke runs).", section="Input",
                                  title="Max seeds", ge=1)

    # -- Method: Self-Instruct and Evol-Instruct -------------------------------------------------
    topics: list[str] = param([], "Extra domains Self-Instruct writes new instructions for.", title="Extra topics")
    self_instruct_count: int = param(24, "Self-Instruct attempts (new instructions asked for), spread evenly "
                                     "over the domains and topics.", title="Self-Instruct attempts", ge=0)
    min_instruction_words: int = param(4, "Drop new instructions with fewer words.", title="Min instruction words",
                                       ge=1)
    max_instruction_words: int = param(150, "Drop new instructions with more words.", title="Max instruction words",
                                       ge=1)
    evol_rounds: int = param(2, "Evol-Instruct rounds per instruction.", title="Evol-Instruct rounds", ge=0, le=10)
    evol_operations: list[EvolOperation] = param(list(EvolOperation), "Operations each round picks one of at random.",
                                                 title="Evol-Instruct operations", min_length=1)

    # -- Generation ------------------------------------------------------------------------------
    n_responses: int = param(2, "Responses per instruction (2+ for preference pairs).", section="Generation",
                             title="Responses per instruction", ge=1, le=8)
    temperature: float = param(0.7, "Sampling temperature for instructions.", section="Generation",
                               title="Instruction temperature", ge=0.0, le=2.0)
    response_temperature: float = param(0.7, "Sampling temperature for responses.", section="Generation",
                                        title="Response temperature", ge=0.0, le=2.0)
    top_p: float = param(0.95, "Nucleus sampling for everything generated.", section="Generation", title="Top p",
                         gt=0.0, le=1.0)
    max_instruction_tokens: int = param(256, "Max tokens of a new instruction.", section="Generation",
                                        title="Max instruction tokens", ge=16, le=4096)
    max_response_tokens: int = param(1024, "Max tokens of a response.", section="Generation",
                                     title="Max response tokens", ge=16, le=32768)

    # -- Quality ---------------------------------------------------------------------------------
    rouge_threshold: float = param(0.7, "Drop a new instruction whose ROUGE-L against the pool exceeds this "
                                   "(Self-Instruct: 0.7).", section="Quality", title="ROUGE-L threshold",
                                   gt=0.0, le=1.0)
    blocklist: list[str] = param(list(SELF_INSTRUCT_BLOCKLIST), "Drop new instructions with any of these words "
                                 "(tasks a text model cannot do).", section="Quality", title="Keyword blocklist")
    min_quality: float = param(2.5, "Drop instructions whose best response's overall score (0-4) is below this.",
                               section="Quality", title="Min quality", ge=0.0, le=4.0)
    llm_safety: bool = param(False, "Also ask the judge model whether each pair is safe.", section="Quality",
                             title="LLM safety judge")
    benchmarks: list[str] = param(["gsm8k_test"], "Benchmark test sets to decontaminate against (13-gram overlap).",
                                  section="Quality", title="Decontaminate against")
    near_duplicate_threshold: float = param(0.7, "MinHash Jaccard (word 3-grams) at which an instruction is a "
                                            "near-duplicate.", section="Quality", title="Near-duplicate threshold",
                                            gt=0.0, le=1.0)

    # -- Output ----------------------------------------------------------------------------------
    train_ratio: float = override(MethodConfig, "train_ratio", 0.9, "Share of seed lineages (a seed or "
                                  "Self-Instruct instruction and its evolved descendants) in the train split.")
    target_size: int | None = param(None, "Cluster-balanced sample of this many instructions (default: keep all; "
                                    "metrics are reported either way).", section="Output", title="Target size", ge=1)
    n_clusters: int | None = param(None, "k-means clusters (default: sqrt of the count).", section="Output",
                                   title="Clusters", ge=1)
    preference_margin: float = param(0.5, "Minimum overall-score gap between chosen and rejected responses of a "
                                     "preference pair.", section="Output", title="Preference margin", ge=0.0, le=4.0)

    # -- Judge endpoint --------------------------------------------------------------------------
    judge: JudgeKind = param(JudgeKind.LLM, "'llm': an instruct model grades the five HelpSteer2 attributes; "
                             "'reward_model': an OpenAI-compatible reward model's scores.", section="Judge endpoint",
                             title="Judge")
    judge_conn_id: str | None = param(None, "Airflow connection of the judge and the LLM safety judge (default: "
                                      "llm_conn_id).", section="Judge endpoint", title="Judge connection")
    judge_model: str | None = param(None, "Judge model name (default: the connection's).", section="Judge endpoint",
                                    title="Judge model")
    judge_weights: dict[str, float] = param(dict(DEFAULT_WEIGHTS), "Weights of the attributes in the overall "
                                            "score (HelpSteer2: 0.3/0.3/0.2/0.1/0.1).", section="Judge endpoint",
                                            title="Judge weights")

    @field_validator("judge_weights")
    @classmethod
    def _known_attributes(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(ATTRIBUTES))
        if unknown:
            raise ValueError(f"unknown attributes {unknown}; known: {list(ATTRIBUTES)}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weights must be >= 0 and sum to more than 0")
        return weights

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(BENCHMARKS))
        if unknown:
            raise ValueError(f"unknown benchmarks {unknown}; known: {sorted(BENCHMARKS)}")
        return names

    @model_validator(mode="after")
    def _word_limits(self):
        if self.min_instruction_words > self.max_instruction_words:
            raise ValueError("min_instruction_words must not exceed max_instruction_words")
        return self

    def sampling(self, key: str, kind: str) -> SamplingParams:
        if kind == "response":
            return SamplingParams.seeded(self.seed, key, temperature=self.response_temperature, top_p=self.top_p,
                                         max_tokens=self.max_response_tokens)
        return SamplingParams.seeded(self.seed, key, temperature=self.temperature, top_p=self.top_p,
                                     max_tokens=self.max_instruction_tokens)
