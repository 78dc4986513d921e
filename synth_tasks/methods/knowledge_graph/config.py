"""The knowledge-graph method's config: its Params and the extraction formats."""

from __future__ import annotations

from enum import StrEnum

from pydantic import model_validator

from synth_tasks.config import LLMParams, MethodConfig, SamplingParams, override, param


class ExtractionFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    TUPLES = "tuples"


DEFAULT_TYPES = ["concept", "technology", "organization", "person", "geo", "event"]


class KnowledgeGraphConfig(LLMParams):
    input_path: str = override(
        MethodConfig, "input_path", "include/sample_data/markdown_qa/docs",
        "Folder, file or glob of .md/.txt documents, .jsonl/.parquet text records (text_column), or the papers "
        "DAG's extraction (papers.parquet, one row per block), or an s3:// URL. Relative paths are under the "
        "project root. {ds} is the run's date.")
    train_ratio: float = override(MethodConfig, "train_ratio", 0.8)
    text_column: str = param("text", "Field holding the text of JSONL/Parquet records.", section="Input",
                             title="Text column")
    chunk_tokens: int = param(600, "Tokens per chunk (tiktoken cl100k), cut on paragraph, then sentence "
                              "boundaries; GraphRAG's paper uses 600.", section="Input", title="Chunk tokens",
                              ge=100, le=8000)
    chunk_overlap: int = param(100, "Tokens of the previous chunk repeated at the start of the next one.",
                               section="Input", title="Chunk overlap", ge=0, le=2000)
    max_chunks: int | None = param(None, "Use only the first N chunks (documents in name order); all when empty.",
                                   section="Input", title="Max chunks", ge=1)
    no_llm: bool = param(False, "Deterministic mode without a model: co-occurrence extraction, template reports "
                         "and report questions; paths become graph-walk records, not questions (tests, demos).",
                         title="No LLM (co-occurrence mode)")
    entity_types: list[str] = param(DEFAULT_TYPES, "Entity types the extraction may use (anything else becomes "
                                    "'other').", title="Entity types", min_length=1)
    extraction_format: ExtractionFormat = param(
        ExtractionFormat.AUTO, "json: structured output (schema-constrained where the endpoint supports it); "
        "tuples: GraphRAG's delimited records; auto: json unless the endpoint only takes the schema in the prompt.",
        title="Extraction format")
    gleaning_rounds: int | None = param(None, "Extra rounds asking for missed entities (GraphRAG's gleaning). "
                                        "Empty: 1, or 0 on the embedded model (it repeats itself instead).",
                                        title="Gleaning rounds", ge=0, le=5)
    extraction_max_tokens: int = param(768, "Max tokens of one extraction answer.", title="Extraction max tokens",
                                       ge=64, le=16384)
    entity_grounding_threshold: float = param(
        90.0, "An extracted entity is kept only when its name occurs in its chunk (rapidfuzz partial ratio, 0-100, "
        "on normalised text); small models copy the prompt's example or invent names. 0 turns the check off.",
        section="Quality", title="Entity grounding threshold", ge=0, le=100)
    fuzzy_threshold: float = param(90.0, "Entity names of one type at least this similar (rapidfuzz ratio, 0-100, "
                                   "after normalisation) are one entity.", title="Fuzzy merge threshold",
                                   ge=50, le=100)
    summary_min_chars: int = param(600, "Merged descriptions longer than this are summarised by the LLM; shorter "
                                   "ones are joined.", title="Summarise descriptions over (chars)", ge=50)
    max_cluster_size: int = param(10, "Hierarchical Leiden splits communities larger than this.",
                                  title="Max community size", ge=2, le=100000)
    max_reports: int = param(50, "Community reports written at most (the largest communities, coarse levels "
                             "first); communities of one entity get none.", title="Max community reports", ge=0)
    path_hops: list[int] = param([2, 3], "Path lengths (hops) of multi-hop questions (of graph walks with no_llm).",
                                 section="Generation", title="Path hops", min_length=0)
    paths_per_length: int = param(20, "Paths planned per length: with an LLM, only paths whose answer is the one "
                                  "entity their relation types lead to.", section="Generation",
                                  title="Paths per length", ge=0, le=100000)
    global_questions: bool = param(True, "One global question per community report.", section="Generation",
                                   title="Global questions")
    temperature: float = param(0.3, "Sampling temperature.", section="Generation", title="Temperature",
                               ge=0.0, le=2.0)
    max_tokens: int = param(512, "Max tokens per LLM answer (reports, summaries, questions).", section="Generation",
                            title="Max tokens", ge=16, le=16384)
    retrieval_k: int = param(5, "Chunks retrieved per question by local retrieval (personalised PageRank from the "
                             "entities the question names).", section="Quality", title="Local retrieval k",
                             ge=1, le=100)

    @model_validator(mode="after")
    def _check(self):
        if self.chunk_overlap * 2 > self.chunk_tokens:
            raise ValueError(f"chunk_overlap: {self.chunk_overlap} is more than half of chunk_tokens "
                             f"{self.chunk_tokens}")
        bad = [h for h in self.path_hops if h not in (2, 3)]
        if bad:
            raise ValueError(f"path_hops: only 2 and 3 hops are sampled, got {bad}")
        if len({t.strip().lower() for t in self.entity_types}) != len(self.entity_types) or any(
                not t.strip() for t in self.entity_types):
            raise ValueError("entity_types: names must be distinct and not empty")
        return self

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(t.strip().lower().replace(" ", "_") for t in self.entity_types)

    def sampling(self, key: str, max_tokens: int | None = None) -> SamplingParams:
        return SamplingParams.seeded(self.seed, key, temperature=self.temperature, top_p=0.95,
                                     max_tokens=max_tokens or self.max_tokens)
