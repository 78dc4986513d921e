"""The personas method's configuration (``PersonasConfig``) and its enums."""

from __future__ import annotations

from enum import StrEnum

from pydantic import model_validator

from synth_tasks.config import LLMParams, MethodConfig, SamplingParams, override, param


class Template(StrEnum):
    MATH_PROBLEM = "math_problem"
    USER_INSTRUCTION = "user_instruction"
    KNOWLEDGE_TEXT = "knowledge_text"
    MULTI_TURN = "multi_turn"


class Source(StrEnum):
    NONE = "none"
    CORPUS = "corpus"
    WEB = "web"


class PoolFrom(StrEnum):
    RUN = "run"
    HUB = "hub"


class PersonasConfig(LLMParams):
    input_path: str = override(
        MethodConfig, "input_path", "include/sample_data/mind/prob140_sample.jsonl",
        "File, folder or glob of .jsonl/.parquet texts personas are drawn from (any corpus the other DAGs "
        "read), or an s3:// URL. Relative paths are under the project root. {ds} is the run's date.")
    train_ratio: float = override(MethodConfig, "train_ratio", 0.8)
    text_column: str = param("text", "Field holding the text.", section="Input", title="Text column")
    text_max_chars: int = param(3000, "Texts are cut to this many characters in the Text-to-Persona prompt.",
                                section="Input", title="Max text characters", ge=200, le=100000)
    personas_per_text: int = param(3, "Personas asked for per input text (Text-to-Persona).",
                                   title="Personas per text", ge=1, le=20)
    expand_depth: int = param(1, "Persona-to-Persona iterations (the paper uses 6); 0 turns expansion off.",
                              title="Expansion depth", ge=0, le=10)
    relations_per_persona: int = param(2, "Close relations asked for per persona and iteration.",
                                       title="Relations per persona", ge=1, le=10)
    minhash_threshold: float = param(0.9, "Personas whose MinHash Jaccard over words (128 permutations) reaches "
                                     "this are duplicates.", section="Quality", title="MinHash threshold",
                                     gt=0.0, le=1.0)
    embedding_threshold: float = param(0.9, "Personas whose MiniLM cosine similarity reaches this are "
                                       "duplicates.", section="Quality", title="Embedding threshold",
                                       gt=0.0, le=1.0)
    embedding_dedup: bool = param(True, "Run the embedding pass (loads the shipped MiniLM model).",
                                  section="Quality", title="Embedding dedup")
    pool: PoolFrom = param(PoolFrom.RUN, "Write with this run's new personas, or with the hub's personas "
                           "created in [hub_from, hub_to].", title="Persona pool")
    hub_from: str | None = param(None, "With pool=hub: first created date (YYYY-MM-DD) of personas used.",
                                 title="Hub created from", pattern=r"^\d{4}-\d{2}-\d{2}$")
    hub_to: str | None = param(None, "With pool=hub: last created date (YYYY-MM-DD) of personas used.",
                               title="Hub created to", pattern=r"^\d{4}-\d{2}-\d{2}$")
    max_personas: int = param(8, "Personas drawn (seeded) from the pool to write with.", title="Max personas",
                              ge=1, le=100000)
    source: Source = param(Source.CORPUS, "Where persona agents gather material: none, a folder corpus "
                           "(sources_path, BM25), or the web (web_seed_urls; fetches URLs only when chosen).",
                           section="Generation", title="Source of material")
    sources_path: str = param("include/sample_data/markdown_qa/docs", "Folder of .md/.txt/.jsonl documents "
                              "(local or s3://) for source=corpus; inside the allowed input roots. {ds} is the "
                              "run's date.",
                              section="Generation", title="Corpus folder")
    queries_per_persona: int = param(3, "Topics and search queries each persona writes.", section="Generation",
                                     title="Queries per persona", ge=1, le=10)
    sources_per_persona: int = param(2, "Passages retrieved and put in the prompt per persona.",
                                     section="Generation", title="Sources per persona", ge=1, le=10)
    web_seed_urls: list[str] = param([], "source=web: where the crawl starts.", section="Generation",
                                     title="Web seed URLs")
    web_allowed_domains: list[str] = param([], "source=web: hosts the crawl may fetch (default: the seeds' "
                                           "hosts).", section="Generation", title="Web allowed domains")
    web_max_pages: int = param(20, "source=web: pages fetched per run at most.", section="Generation",
                               title="Web max pages", ge=1, le=10000)
    web_max_bytes: int = param(2_000_000, "source=web: bytes per page at most (larger pages are cut off).",
                               section="Generation", title="Web max bytes per page", ge=1024)
    web_rate_limit_s: float = param(1.0, "source=web: seconds between two requests to one host.",
                                    section="Generation", title="Web rate limit (s)", ge=0.0)
    web_timeout_s: float = param(10.0, "source=web: deadline of one page fetch.", section="Generation",
                                 title="Web timeout (s)", gt=0.0)
    trend_window: int = param(7, "Trending topics: today's fetched material is compared with the material of "
                              "this many earlier days.", section="Generation", title="Trend window (days)",
                              ge=1, le=365)
    prefer_trending: bool = param(False, "Tell persona agents today's trending topics and ask them to prefer "
                                  "those that fit them.", section="Generation", title="Prefer trending topics")
    templates: list[Template] = param(list(Template), "What to write per persona.", section="Generation",
                                      title="Templates", min_length=1)
    turns: int = param(2, "Multi-turn: persona messages (each answered by the assistant).", section="Generation",
                       title="Dialogue turns", ge=1, le=8)
    temperature: float = param(0.7, "Sampling temperature.", section="Generation", title="Temperature",
                               ge=0.0, le=2.0)
    max_tokens: int = param(512, "Max tokens per LLM answer.", section="Generation", title="Max tokens",
                            ge=16, le=16384)
    grounding_threshold: float = param(85.0, "Min fuzzy match (0-100) of each evidence quote in the sources.",
                                       section="Quality", title="Grounding threshold", ge=0, le=100)
    restate_threshold: float = param(80.0, "Outputs this similar (0-100, token-sort ratio) to the persona, or "
                                     "adding fewer than 3 words to it, only restate it.", section="Quality",
                                     title="Restatement threshold", ge=0, le=100)
    output_duplicate_threshold: float = param(0.8, "Outputs of one template whose MinHash Jaccard over word "
                                              "3-grams reaches this are near-duplicates.", section="Quality",
                                              title="Output duplicate threshold", gt=0.0, le=1.0)
    respond: bool = param(False, "Answer every math problem and user prompt (the assistant's response) and score "
                          "the pair on the HelpSteer2 attributes with the shared LLM judge.", section="Quality",
                          title="Respond and judge")
    min_judge_score: float = param(0.0, "With respond: pairs whose weighted HelpSteer2 score (0-4) is below this "
                                   "are filtered.", section="Quality", title="Min judge score", ge=0.0, le=4.0)
    decontaminate: bool = param(True, "Drop math problems sharing a 13-gram with the shipped benchmark test "
                                "sets.", section="Quality", title="Decontaminate math")

    @model_validator(mode="after")
    def _range_needs_hub(self):
        if (self.hub_from or self.hub_to) and self.pool != PoolFrom.HUB:
            raise ValueError("hub_from/hub_to: a created-date range applies only with pool=hub")
        if self.hub_from and self.hub_to and self.hub_from > self.hub_to:
            raise ValueError(f"hub_from {self.hub_from} is after hub_to {self.hub_to}")
        if self.source == Source.WEB and not self.web_seed_urls:
            raise ValueError("web_seed_urls: source=web needs at least one seed URL")
        return self

    def sampling(self, key: str, max_tokens: int | None = None) -> SamplingParams:
        return SamplingParams.seeded(self.seed, key, temperature=self.temperature, top_p=0.95,
                                     max_tokens=max_tokens or self.max_tokens)
