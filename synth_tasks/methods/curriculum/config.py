"""The Params of the curriculum DAG: the difficulty measures and CurriculumConfig."""

from __future__ import annotations

from enum import StrEnum

from synth_tasks.config import LLMParams, MethodConfig, SamplingParams, override, param
from synth_tasks.methods.curriculum.schedule import Schedule


class Measure(StrEnum):
    FK_GRADE = "fk_grade"
    READING_EASE = "reading_ease"
    OOV_SHARE = "oov_share"
    VOCABULARY_STAGE = "vocabulary_stage"
    WORDS_PER_SENTENCE = "words_per_sentence"
    N_WORDS = "n_words"
    N_SENTENCES = "n_sentences"
    SYLLABLES_PER_WORD = "syllables_per_word"
    COMPRESSION_RATIO = "compression_ratio"
    N_OPERATIONS = "n_operations"
    CODE_COMPLEXITY = "code_complexity"


class CurriculumConfig(LLMParams):
    input_path: str = override(
        MethodConfig, "input_path", "include/configs/curriculum/stages.yaml",
        "The stages file (YAML: stages in order with prompts, grade band, word list, item counts); its word "
        "lists are read beside it. Point it at your own file to add, remove or reorder stages.")
    train_ratio: float = override(MethodConfig, "train_ratio", 1.0,
                                  "Share of training items in train.jsonl and the stage shards; the rest go to "
                                  "validation.jsonl. The held-out evaluation items are separate (final/eval/).")
    items_per_stage: int | None = param(None, "Training items per stage for every stage (default: the stages "
                                        "file's `items`).", title="Items per stage", ge=0)
    eval_items_per_stage: int | None = param(None, "Evaluation items per stage (default: the stages file's "
                                             "`eval_items`).", title="Evaluation items per stage", ge=0)
    words_per_prompt: int = param(3, "Content words drawn from the stage's word list for each request.",
                                  title="Words per prompt", ge=1, le=10)
    max_features_per_prompt: int = param(2, "Story features (dialogue, a twist...) drawn per request: 1 to this.",
                                         title="Features per prompt", ge=1, le=5)
    check_theme: bool = param(True, "Filter a story whose closest stage theme (sentence-embedding similarity "
                              "to the stage titles) is another stage's (off_theme); off: keep it, the share on "
                              "theme is still measured and reported.", section="Quality", title="Check the theme")
    schedule: Schedule = param(Schedule.INCREMENTAL, "Training schedule written to curriculum.json: sequential "
                               "(one stage per phase), incremental (each phase adds the next stage) or hybrid "
                               "(the new stage plus a replay share of the earlier ones).", title="Training schedule")
    hybrid_replay: float = param(0.25, "Hybrid schedule: weight share of the earlier stages in each phase.",
                                 title="Hybrid replay share", ge=0.0, lt=1.0)
    stage_shard_records: int = param(1000, "Records per ordered shard file (part-*.parquet) of a stage.",
                                     section="Output", title="Records per stage shard", ge=1)
    rising_measures: list[Measure] = param([Measure.FK_GRADE], "Measures whose mean and median must get harder "
                                           "stage by stage (reading ease: fall), else the export fails.",
                                           section="Quality", title="Measures that must rise")
    check_rising: bool = param(True, "Fail the run when the rising_measures do not rise stage by stage.",
                               section="Quality", title="Check rising difficulty")
    min_words: int = param(15, "Drop stories shorter than this many words.", section="Quality",
                           title="Min words", ge=1)
    min_compression_ratio: float = param(0.3, "Drop stories whose zlib compression ratio is below this "
                                         "(repetitive text compresses well).", section="Quality",
                                         title="Min compression ratio", ge=0.0, le=1.0)
    duplicate_threshold: float = param(90.0, "Stories at or above this token-sort similarity (0-100) are "
                                       "near-duplicates.", section="Quality", title="Duplicate threshold",
                                       ge=0, le=100)
    temperature: float = param(0.8, "Sampling temperature of the stories.", section="Generation",
                               title="Temperature", ge=0.0, le=2.0)
    max_tokens: int = param(400, "Max tokens per story (a story cut off here is filtered as truncated).",
                            section="Generation", title="Max tokens", ge=16, le=8192)
    question_max_tokens: int = param(200, "Max tokens per evaluation question.", section="Generation",
                                     title="Question max tokens", ge=16, le=4096)
    evaluate: bool = param(True, "Run every stage's evaluation against the model under test (eval_conn_id).",
                           section="Quality", title="Evaluate a model")
    eval_conn_id: str | None = param(None, "Airflow connection of the model under test (default: llm_conn_id).",
                                     section="Judge endpoint", title="Model-under-test connection")
    eval_model: str | None = param(None, "Model name under test (default: the connection's).",
                                   section="Judge endpoint", title="Model under test")
    eval_max_tokens: int = param(32, "Max tokens of the model's answer.", section="Judge endpoint",
                                 title="Answer max tokens", ge=1, le=1024)
    mastery_threshold: float = param(0.6, "Share of a stage's evaluation answered correctly for mastery.",
                                     section="Quality", title="Mastery threshold", ge=0.0, le=1.0)

    def sampling(self, key: str, max_tokens: int | None = None, temperature: float | None = None) -> SamplingParams:
        return SamplingParams.seeded(self.seed, key, temperature=self.temperature if temperature is None else temperature,
                                     top_p=0.95, max_tokens=max_tokens or self.max_tokens)
