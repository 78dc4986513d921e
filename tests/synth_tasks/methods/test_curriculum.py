"""The curriculum method's pieces on hand-made inputs with known answers: syllables, readability,
vocabulary, stage assignment, schedules, the rising check, answerability, scoring, dedup."""

from __future__ import annotations

import json

import pytest

from synth_tasks.methods.curriculum.measures import (flesch_kincaid_grade, lemma_candidates, measure,
                                                     out_of_vocabulary, sentence_count, syllables, words)

# Hand-counted (dictionary syllabification). The counter is a rule set: two of these it gets wrong,
# and the test says which, so a change that breaks more fails.
HAND_COUNTED = {
    "cat": 1, "the": 1, "apple": 2, "little": 2, "make": 1, "there": 1, "orange": 2, "tree": 1, "blue": 1, "are": 1,
    "jumped": 1, "played": 1, "wanted": 2, "needed": 2, "makes": 1, "boxes": 2, "horses": 2, "faces": 2, "babies": 2,
    "times": 1, "yellow": 2, "playing": 2, "going": 2, "being": 2, "happy": 2, "lion": 2, "giant": 2, "usual": 3,
    "nation": 2, "whale": 1, "smile": 1, "elephant": 3, "beautiful": 3, "butterfly": 3, "banana": 3, "computer": 3,
    "together": 3, "remember": 3, "family": 3, "animal": 3, "wonderful": 3, "because": 2, "people": 2, "friend": 1,
    "school": 1, "garden": 2, "rainbow": 2, "circle": 2, "triangle": 3, "square": 1, "purple": 2, "opportunity": 5,
    "understanding": 4, "imagination": 5, "education": 4, "everyone": 3, "something": 2, "idea": 3, "create": 2,
    "violin": 3, "radio": 3, "quiet": 2, "science": 2, "piano": 3, "dinosaur": 3, "strawberry": 3, "sometimes": 2,
    "basket": 2, "kitchen": 2, "rabbit": 2, "ball": 1, "shapes": 1, "colours": 2, "edges": 2, "fire": 1, "hour": 1,
    "curious": 3, "different": 3, "difficult": 3, "experiment": 4, "gravity": 3, "balance": 2, "heavier": 3,
    "believed": 2, "surprised": 2, "realized": 3, "excited": 3, "lovely": 2, "careful": 2, "religion": 3, "ages": 2,
    "field": 1, "happier": 3, "area": 3, "great": 1, "question": 2, "special": 2, "really": 2, "story": 2, "water": 2,
    "mother": 2, "bigger": 2, "thought": 1, "through": 1, "across": 2,
}
KNOWN_MISSES = {"create", "realized"}


def test_syllables_match_hand_counts_but_the_known_misses():
    wrong = {w for w, n in HAND_COUNTED.items() if syllables(w) != n}
    assert wrong == KNOWN_MISSES
    assert syllables("create") == 1 and syllables("realized") == 2  # what it says instead


def test_readability_of_hand_made_texts_with_hand_computed_grades():
    # 6 words, 1 sentence, 6 syllables: 0.39*6 + 11.8*1 - 15.59 = -1.45; ease 206.835 - 6.09 - 84.6
    m = measure("The cat sat on the mat.", set())
    assert (m.n_words, m.n_sentences) == (6, 1)
    assert m.fk_grade == pytest.approx(-1.45) and m.reading_ease == pytest.approx(116.145)
    # 2 sentences, 15 words, 26 syllables, counted by hand word by word:
    # The(1) happy(2) rabbit(2) jumped(1) over(2) the(1) purple(2) basket(2) / Its(1) family(3) walked(1)
    # together(3) across(2) the(1) garden(2);  0.39*15/2 + 11.8*26/15 - 15.59 = 7.788
    text = "The happy rabbit jumped over the purple basket. Its family walked together across the garden."
    m = measure(text, set())
    assert (m.n_words, m.n_sentences) == (15, 2) and sum(syllables(w) for w in words(text)) == 26
    assert m.fk_grade == pytest.approx(7.788, abs=1e-3) and flesch_kincaid_grade(15, 2, 26) == m.fk_grade
    assert m.reading_ease == pytest.approx(206.835 - 1.015 * 7.5 - 84.6 * 26 / 15)
    assert sentence_count("It costs 3.5 coins! Yes.") == 2 and sentence_count("no end") == 1


def test_vocabulary_share_with_inflections():
    vocab = {"cat", "run", "happy", "box", "the", "like"}
    assert out_of_vocabulary(["Cats", "running", "happier", "boxes", "liked", "zebra", "cat's"], vocab) == ["zebra"]
    assert "run" in lemma_candidates("running") and "happy" in lemma_candidates("happiest")
    m = measure("The cat likes the zebra.", vocab)
    assert m.oov_share == pytest.approx(1 / 5)


def test_compression_ratio_flags_repetition():
    varied = measure("Tom found a red ball under the old green chair near the window.", set())
    looped = measure("the ball the ball the ball the ball the ball the ball the ball the ball the ball", set())
    assert looped.compression_ratio < 0.3 < varied.compression_ratio


@pytest.fixture(scope="module")
def shipped():
    from synth_tasks.methods.curriculum.stages_file import build_curriculum, parse_stages
    from synth_tasks.prompts import include_dir

    folder = include_dir() / "configs" / "curriculum"
    return build_curriculum(parse_stages((folder / "stages.yaml").read_text()), lambda rel: (folder / rel).read_text())


def test_shipped_stages_file(shipped):
    assert [s.name for s in shipped.stages] == ["basic-perception", "object-recognition", "spatial-physics",
                                                "language-communication", "abstract-reasoning", "social-cognition"]
    # bands move up stage by stage and overlap (they catch a story written for the wrong age; they
    # must not sort stories into a rise), vocabularies grow
    low = [s.grade[0] if s.grade[0] is not None else float("-inf") for s in shipped.stages]
    high = [s.grade[1] if s.grade[1] is not None else float("inf") for s in shipped.stages]
    assert low == sorted(low) and high == sorted(high)
    assert all(b_low < a_high for a_high, b_low in zip(high, low[1:]))
    assert all(len(a) < len(b) for a, b in zip(shipped.vocabularies, shipped.vocabularies[1:]))
    assert shipped.word_stage["red"] == 1 and all(1 <= v <= 6 for v in shipped.word_stage.values())
    assert [len(e) for e in shipped.theme_examples] == [12, 5, 12, 10, 9, 10]  # every stage has examples


def test_the_curriculum_travels_with_its_theme_examples(shipped):
    from synth_tasks.methods.curriculum.stages import curriculum_json, load_curriculum

    assert load_curriculum(curriculum_json(shipped)).theme_examples == shipped.theme_examples
    # items an earlier version wrote (a run resumed after an upgrade) carry no examples: measured without
    earlier = json.loads(curriculum_json(shipped))
    del earlier["theme_examples"]
    assert load_curriculum(json.dumps(earlier)).theme_examples == ()


def test_band_problems_name_the_band(shipped):
    from synth_tasks.methods.curriculum.stages import band_problem

    easy = measure("Tom has a red ball. The ball is round. It is big and soft. The sun is hot.", shipped.vocabularies[0])
    hard = measure("Marianne understood immediately that her mischievous brother had deliberately transferred the "
                   "chocolate elsewhere, although everybody believed otherwise.", shipped.vocabularies[0])
    assert band_problem(shipped.stages[0], easy) is None
    assert band_problem(shipped.stages[0], hard) == f"too_hard_for_stage: grade {hard.fk_grade:.1f} >= 3.5"
    assert band_problem(shipped.stages[5], easy) == f"too_easy_for_stage: grade {easy.fk_grade:.1f} < 4"
    # words outside the first stage's vocabulary (its band allows 35%)
    jargon = measure("Zap the zork. Blip the glim. Frab a snoo.", shipped.vocabularies[0])  # 6 of 9 words unknown
    assert band_problem(shipped.stages[0], jargon).startswith("off_vocabulary: ")


# One story per stage, written here for this test (not by the generator, nor tuned on): what a
# reader would file under that stage.
THEMED = {
    "basic-perception": "Mia sees a big yellow sun. The sky is blue. She finds a small round stone. It is grey and "
                        "smooth. The light makes it shine.",
    "object-recognition": "Leo puts the spoons with the spoons and the cups with the cups. A car, a bus and a boat go "
                          "in the toy box. An apple is a fruit, so it goes in the bowl with the pears.",
    "spatial-physics": "The ball rolled down the hill and stopped at the bottom. Jo put a heavy rock on one side "
                       "of the plank and it tipped down, so she moved the rock to the middle to make it balance.",
    "language-communication": "Ava did not know the word gigantic, so she asked her teacher what it meant. The "
                              "teacher explained that it means very big, and Ava used the new word in a sentence.",
    "abstract-reasoning": "Sam saw the numbers three, six, nine and twelve. Each number was three more than the one "
                          "before, so he reasoned that the rule meant fifteen would come next.",
    "social-cognition": "Nora thought her friend was angry, but then she understood that he only felt sad because "
                        "he believed nobody remembered his birthday. She knew what he wanted and invited him over.",
}


def test_measure_keeps_a_story_in_its_planned_stage_or_filters_it_with_the_reason(layout, shipped):
    from synth_tasks.method import Stage
    from synth_tasks.methods.curriculum.config import CurriculumConfig
    from synth_tasks.methods.curriculum.stages import curriculum_json, measure_items
    from synth_tasks.stage import StageRun

    cjson = curriculum_json(shipped)
    items = [{"id": f"{stage}:train:0000", "role": "train", "stage": stage, "stage_index": shipped.index(stage),
              "text": text, "curriculum": cjson} for stage, text in THEMED.items()]
    # the false-belief story written for basic perception: too hard for it, and never moved to the
    # stage it would fit; the colours story written for social cognition: off that stage's theme
    items += [{"id": "basic-perception:train:0001", "role": "train", "stage": "basic-perception", "stage_index": 0,
               "text": "Sally put her marble in the basket and left. While she was away, Anne secretly moved the "
                       "marble into the box. When Sally returned, she believed the marble was still in the basket.",
               "curriculum": cjson},
              {"id": "social-cognition:train:0001", "role": "train", "stage": "social-cognition", "stage_index": 5,
               "text": "The big red ball and the small blue square sat together under the bright light of the "
                       "window, where every colour and every shape and every edge could be seen very clearly.",
               "curriculum": cjson},
              # a refusal long enough for min_words and close to social cognition's theme: no story all the same
              {"id": "social-cognition:train:0002", "role": "train", "stage": "social-cognition", "stage_index": 5,
               "text": "I'm sorry, but I can't assist with that request. Writing a story about what other people "
                       "think, feel or believe about each other is something I am not able to help with today.",
               "curriculum": cjson}]
    run = StageRun(Stage("measure", measure_items), CurriculumConfig(), layout, 0, 1)
    measure_items(run, items)
    rows = {r["record_id"]: r for r in run.ledger.rows}
    kept = {o["id"]: o for o in run.outputs}
    assert sorted(kept) == sorted(f"{stage}:train:0000" for stage in THEMED)  # each themed story where planned
    assert all(o["stage"] == o["id"].split(":")[0] and o["theme"]["closest_stage"] == o["stage"] for o in kept.values())
    assert rows["basic-perception:train:0001"]["reason"].startswith("too_hard_for_stage: grade ")
    assert rows["social-cognition:train:0001"]["reason"].startswith("off_theme: closest to basic-perception (")
    assert rows["social-cognition:train:0002"]["reason"] == "refusal: \"I'm sorry, but I can't\""
    # the refusal is no story: not one of the stage's measured stories, so not in its theme share
    assert run.counts["measured:social-cognition"] == 2 and run.counts["on_theme:social-cognition"] == 1
    assert kept["abstract-reasoning:train:0000"]["measures"]["vocabulary_stage"] > \
        kept["basic-perception:train:0000"]["measures"]["vocabulary_stage"]


def test_a_stages_file_with_an_empty_band_or_a_path_outside_is_refused():
    from synth_tasks.config import ConfigError
    from synth_tasks.methods.curriculum.stages_file import parse_stages

    stage = ("{name: a, title: A, templates: [t], eval_templates: {short_answer: e}, grade: [%s], "
             "vocabulary: %s, vocabulary_level: x, items: 1}")
    with pytest.raises(ConfigError, match="vocabulary.*relative"):
        parse_stages(f"features: [a]\nstages: [{stage % ('1, 2', '../x.txt')}]")
    for outside in ("../../../secret/words.txt", "/etc/words", "s3://bucket/words.txt"):  # the common list too
        with pytest.raises(ConfigError, match="common_vocabulary.*relative"):
            parse_stages(f"common_vocabulary: {outside}\nfeatures: [a]\nstages: [{stage % ('1, 2', 'x.txt')}]")
    with pytest.raises(ConfigError, match=r"grade band \[3.0, 2.0\) is empty"):
        parse_stages(f"features: [a]\nstages: [{stage % ('3, 2', 'x.txt')}]")
    parse_stages(f"features: [a]\nstages: [{stage % ('1, 2', 'x.txt')}]")  # the same stage, valid


def test_a_bad_theme_examples_line_names_the_file_and_the_line():
    from synth_tasks.methods.curriculum.stages_file import parse_theme_examples

    good = '{"stage": "a", "text": "A story."}'
    assert parse_theme_examples(f"{good}\n\n{good}\n", "ex.jsonl", ["a", "b"]) == {"a": ["A story.", "A story."],
                                                                                  "b": []}
    for line, problem in (("{not json", "invalid JSON"), ('{"stage": "c", "text": "x"}', "'stage' must name a stage"),
                          ('{"stage": "a", "text": " "}', "'text' must be a story"),
                          ('["a"]', "expected a JSON object, got list")):
        with pytest.raises(ValueError, match=f"ex.jsonl line 2: {problem}"):
            parse_theme_examples(f"{good}\n{line}\n", "ex.jsonl", ["a", "b"])


def test_theme_examples_are_read_beside_the_stages_file():
    from synth_tasks.config import ConfigError
    from synth_tasks.methods.curriculum.stages_file import build_curriculum, parse_stages

    stage = ("{name: a, title: A, templates: [t], eval_templates: {short_answer: e}, grade: [1, 2], "
             "vocabulary: x.txt, vocabulary_level: x, items: 1}")
    with pytest.raises(ConfigError, match="theme_examples.*relative"):
        parse_stages(f"theme_examples: ../secret.jsonl\nfeatures: [a]\nstages: [{stage}]")
    files = {"x.txt": "red blue", "ex.jsonl": '{"stage": "a", "text": "A red story."}\n'}
    curriculum = build_curriculum(parse_stages(f"theme_examples: ex.jsonl\nfeatures: [a]\nstages: [{stage}]"),
                                  files.__getitem__)
    assert curriculum.theme_examples == (("A red story.",),)
    assert build_curriculum(parse_stages(f"features: [a]\nstages: [{stage}]"), files.__getitem__).theme_examples == ()


def test_a_stages_examples_draw_it_towards_stories_like_them():
    from synth_tasks.methods.curriculum.theme import closest_stages

    story = "Tom counted the apples in the bowl: three red ones and two green ones, five in all."
    themes = ["A story about seeing colours.", "A story with numbers, in which a character counts."]
    [(alone, by_stage)] = closest_stages([story], themes)
    counting = ["Mia counted her crayons: four blue and three yellow make seven.",
                "Sam added the coins in his hand, 2 + 3 = 5, and counted them again to check."]
    [(with_examples, by_stage_with_examples)] = closest_stages([story], themes, [[], counting])
    assert by_stage_with_examples[1] > by_stage[1] and with_examples == 1
    assert by_stage_with_examples[0] == pytest.approx(by_stage[0], abs=1e-3)  # no examples: its sentence alone


# ---------------------------------------------------------------------------------------------
# schedules and the rising check on constructed shards
# ---------------------------------------------------------------------------------------------
SHARDS = [[{"path": "s1/p0", "records": 10}], [{"path": "s2/p0", "records": 20}, {"path": "s2/p1", "records": 10}],
          [], [{"path": "s4/p0", "records": 10}]]


def _weights(phase):
    return {e["path"]: e["weight"] for e in phase["shards"]}


def test_sequential_schedule():
    from synth_tasks.methods.curriculum.schedule import Schedule, schedule_phases

    phases = schedule_phases(SHARDS, Schedule.SEQUENTIAL)
    assert [p["stage"] for p in phases] == [0, 1, 3]  # the empty stage gets no phase
    assert [_weights(p) for p in phases] == [{"s1/p0": 1.0}, {"s2/p0": pytest.approx(2 / 3), "s2/p1": pytest.approx(1 / 3)},
                                             {"s4/p0": 1.0}]


def test_incremental_schedule_adds_each_stage_and_weighs_items_alike():
    from synth_tasks.methods.curriculum.schedule import Schedule, schedule_phases

    phases = schedule_phases(SHARDS, Schedule.INCREMENTAL)
    assert _weights(phases[1]) == {"s1/p0": pytest.approx(0.25), "s2/p0": pytest.approx(0.5), "s2/p1": pytest.approx(0.25)}
    assert _weights(phases[2]) == {"s1/p0": 0.2, "s2/p0": 0.4, "s2/p1": 0.2, "s4/p0": 0.2}


def test_hybrid_schedule_replays_a_share_of_earlier_stages():
    from synth_tasks.methods.curriculum.schedule import Schedule, schedule_phases

    phases = schedule_phases(SHARDS, Schedule.HYBRID, replay=0.4)
    assert _weights(phases[0]) == {"s1/p0": 1.0}
    assert _weights(phases[2]) == {"s1/p0": pytest.approx(0.1), "s2/p0": pytest.approx(0.2),
                                   "s2/p1": pytest.approx(0.1), "s4/p0": pytest.approx(0.6)}
    for kind in Schedule:
        assert all(sum(_weights(p).values()) == pytest.approx(1.0) for p in schedule_phases(SHARDS, kind, 0.4))


def test_rising_check():
    from synth_tasks.methods.curriculum.schedule import measure_stats, rising_check

    def stage(name, grades, ease):
        items = [{"measures": {"fk_grade": g, "reading_ease": e} | {k: 0 for k in (
            "oov_share", "vocabulary_stage", "words_per_sentence", "n_words", "n_sentences", "syllables_per_word", "compression_ratio",
            "n_operations", "code_complexity")}} for g, e in zip(grades, ease)]
        return {"stage": name, "difficulty": measure_stats(items)}

    rising = [stage("a", [1, 2, 9], [100, 90, 80]), stage("empty", [], []), stage("b", [5, 6, 7], [70, 60, 50])]
    ok = rising_check(rising, ["fk_grade", "reading_ease"])
    assert ok["ok"] and ok["skipped_empty_stages"] == ["empty"]
    assert rising[0]["difficulty"]["fk_grade"] == {"n": 3, "mean": 4.0, "std": 4.3589, "p10": 1.2, "median": 2.0,
                                                    "p90": 7.6}
    # the step a -> b: +2.0 in mean, but with 3 items each the 95 % interval spans no change
    step = next(s for s in ok["steps"] if s["measure"] == "fk_grade")
    assert (step["from"], step["to"], step["change"]) == ("a", "b", 2.0) and step["interval_95"][0] < 0
    assert not step["established"]
    clear = rising_check([stage("a", [1, 1.2, 0.8], [90, 91, 92]), stage("b", [5, 5.5, 4.5], [70, 71, 72])], ["fk_grade"])
    assert clear["ok"] and clear["steps"][0]["established"]
    bad = rising_check([stage("a", [5, 6], [50, 50]), stage("b", [3, 4], [60, 60])], ["fk_grade", "reading_ease"])
    assert not bad["ok"] and bad["problems"][0] == "fk_grade mean does not rise from a (5.5) to b (3.5)"
    assert "reading_ease mean does not fall from a (50.0) to b (60.0)" in bad["problems"]


# ---------------------------------------------------------------------------------------------
# evaluation: answerability, scoring, report
# ---------------------------------------------------------------------------------------------
STORY = "Tom has a red ball. The ball is round. Tom gives the ball to his dog."


def test_answerability_against_its_own_story():
    from synth_tasks.methods.curriculum.evaluation import answerable

    assert answerable("short_answer", {"question": "What colour is the ball?", "answer": "red"}, STORY) is None
    assert answerable("short_answer", {"question": "Who?", "answer": "a cat"}, STORY).startswith("unanswerable:")
    assert answerable("short_answer", {"question": "What?", "answer": "ro"}, STORY).startswith("unanswerable:")  # not a whole word
    mc = {"question": "Who gets the ball?", "choices": ["cat", "dog", "bird", "fish"], "answer": "dog"}
    assert answerable("multiple_choice", mc, STORY) is None
    assert answerable("multiple_choice", mc | {"choices": ["dog", "dog", "cat", "bird"]}, STORY).startswith("bad_choices:")
    assert answerable("multiple_choice", mc | {"choices": ["cat", "cow", "bird", "fish"]}, STORY).startswith("bad_choices:")


def test_scoring_on_known_answers():
    from synth_tasks.methods.curriculum.evaluation import match_score, stage_report

    sa = {"eval_type": "short_answer", "answer": "red"}
    mc = {"eval_type": "multiple_choice", "choices": ["cat", "dog", "bird", "fish"], "answer": "dog"}
    assert match_score(sa, "Red.") and match_score(sa, "The ball is red.") and not match_score(sa, "blue")
    assert not match_score(sa, "It is not red but a very different colour of ball")
    # negated and hedged answers are wrong even when short; a verbose lead-in is not
    assert not match_score(sa, "It is not red") and not match_score(sa, "red or blue") and not match_score(sa, "maybe red")
    assert not match_score({"eval_type": "short_answer", "answer": "the cat"}, "It was not the cat")
    assert match_score(sa, 'The answer to the question is: "red"') and match_score(sa, "The answer is red.")
    assert not match_score(mc, "not the dog") and match_score(mc, "The answer is B.")
    assert match_score(mc | {"choices": ["a cat", "a dog", "a bird", "a fish"], "answer": "a dog"}, "a dog")
    assert match_score(mc, "B") and match_score(mc, "(B) dog") and match_score(mc, "Answer: b")
    assert match_score(mc, "the dog") and not match_score(mc, "A") and not match_score(mc, "dog or cat")
    items = [{"stage": "one", "eval_correct": True}, {"stage": "one", "eval_correct": True},
             {"stage": "two", "eval_correct": True}, {"stage": "two", "eval_correct": False},
             {"stage": "two", "eval_correct": None}, {"stage": "three", "eval_correct": True}]
    report = stage_report(items, ["one", "two", "three", "four"], threshold=0.6)
    assert [(s["score"], s["mastered"], s["errors"]) for s in report["stages"]] == [
        (1.0, True, 0), (0.5, False, 1), (1.0, True, 0), (None, False, 0)]
    assert report["first_not_mastered"] == "two" and report["mastered_through"] == "one"
    assert stage_report(items[:2], ["one"], 0.6)["first_not_mastered"] is None
    assert stage_report(items[2:5], ["two", "one"], 0.6)["mastered_through"] is None


def test_evaluating_nothing_is_an_error(tmp_path, layout):
    import json

    from synth_tasks.config import EndpointConfig
    from synth_tasks.method import Stage
    from synth_tasks.methods.curriculum.config import CurriculumConfig
    from synth_tasks.methods.curriculum.evaluation import NothingEvaluated, evaluate_endpoint, evaluate_final
    from synth_tasks.methods.curriculum.stages import CurriculumCheckError, prepare
    from synth_tasks.prompts import include_dir
    from synth_tasks.stage import StageRun

    endpoint = EndpointConfig(base_url="http://127.0.0.1:9/v1", model="nobody")  # never asked: nothing to ask
    with pytest.raises(NothingEvaluated, match="no evaluation items"):
        evaluate_endpoint([], ["one"], endpoint, threshold=0.6)
    (tmp_path / "curriculum.json").write_text(json.dumps({"stage_order": ["one"], "stages": [{"folder": "stage-01-one"}]}))
    with pytest.raises(NothingEvaluated, match="no evaluation items under eval/"):
        evaluate_final(str(tmp_path), endpoint, threshold=0.6)
    # a run that asks for an evaluation but plans no evaluation item fails before any request
    from synth_tasks.storage import Store

    stages_file, source = f"file://{include_dir()}/configs/curriculum/stages.yaml", Store(f"file://{include_dir()}")
    run = StageRun(Stage("prepare", prepare, mapped=False), CurriculumConfig(eval_items_per_stage=0), layout, 0, 1,
                   input_store=source)
    with pytest.raises(CurriculumCheckError, match="no stage plans an evaluation item"):
        prepare(run, [stages_file])
    run = StageRun(Stage("prepare", prepare, mapped=False), CurriculumConfig(eval_items_per_stage=0, evaluate=False),
                   layout, 0, 1, input_store=source)
    prepare(run, [stages_file])
    assert run.counts["jobs"] == 240 and not [r for r in run.ledger.rows if r["outcome"] == "failed"]


def test_dedup_drops_training_stories_that_repeat_an_evaluation_story(layout):
    from synth_tasks.methods.curriculum.config import CurriculumConfig
    from synth_tasks.methods.curriculum.stages import dedup
    from synth_tasks.method import Stage
    from synth_tasks.stage import StageRun

    run = StageRun(Stage("dedup", dedup, mapped=False), CurriculumConfig(), layout, 0, 1)
    other = "A tall tower of blocks fell over because its bottom block was too small to hold it."
    items = [{"id": "a:train:0000", "role": "train", "text": STORY},
             {"id": "z:eval:0000", "role": "eval", "text": STORY.replace("Tom", "tom")},
             {"id": "b:train:0001", "role": "train", "text": other},
             {"id": "b:train:0002", "role": "train", "text": other + " "}]
    dedup(run, items)
    rows = {r["record_id"]: r for r in run.ledger.rows}
    assert rows["a:train:0000"]["reason"] == "eval_overlap: exact duplicate of z:eval:0000"
    assert rows["b:train:0002"]["reason"] == "duplicate_story: exact duplicate of b:train:0001"
    assert [o["id"] for o in run.outputs] == ["z:eval:0000", "b:train:0001"]


def test_plans_are_seeded_and_draw_from_the_stage_word_list(shipped):
    from synth_tasks.methods.curriculum.config import CurriculumConfig
    from synth_tasks.methods.curriculum.stages import plan_jobs

    cfg = CurriculumConfig(items_per_stage=3, eval_items_per_stage=2)
    jobs = plan_jobs(shipped, cfg, "stages.yaml")
    assert len(jobs) == 30 and jobs == plan_jobs(shipped, cfg, "stages.yaml")
    assert [j["eval_type"] for j in jobs[:5]] == [None, None, None, "short_answer", "multiple_choice"]
    for j in jobs:
        assert set(j["words"]) <= set(shipped.own_words[j["stage_index"]]) and len(j["words"]) == 3
        assert all(w in j["prompt"] for w in j["words"])
    assert len({tuple(j["words"]) for j in jobs}) == 30  # every request its own draw
    other = plan_jobs(shipped, CurriculumConfig(items_per_stage=3, eval_items_per_stage=2, seed=1), "stages.yaml")
    assert [j["words"] for j in other] != [j["words"] for j in jobs]


def test_structural_measures():
    from synth_tasks.methods.curriculum.measures import arithmetic_operations, code_complexity

    assert arithmetic_operations("She had 3 + 4 apples, then 7 - 2 = 5, and 2 times 3 is 6.") == 3
    code = "Look:\n```python\ndef f(x):\n    if x > 1 and x < 9:\n        return [i for i in range(x) if i % 2]\n    return 0\n```"
    assert code_complexity(code) == 1 + 1 + 1 + 2  # if, and, comprehension with one condition
    assert code_complexity("The cat sat on the mat.") == 0


def test_publish_carries_subfolders_and_removes_stale_ones(layout):
    """The ordered shards live in final/stage-NN-*/: publishing must carry subfolders and, on a
    re-run, remove the shards the new run did not write."""
    store = layout.store
    for name in ("curriculum.json", "stage-01-a/part-00000.parquet", "stage-02-b/part-00000.parquet"):
        store.write_bytes(f"{layout.staging_dir}/{name}", name.encode())
    layout.publish()
    assert store.read_bytes(f"{layout.final_dir}/stage-02-b/part-00000.parquet") == b"stage-02-b/part-00000.parquet"
    store.write_bytes(f"{layout.staging_dir}/curriculum.json", b"new")
    store.write_bytes(f"{layout.staging_dir}/stage-01-a/part-00000.parquet", b"new")
    layout.publish()
    assert [u.split("/final/")[1] for u in store.list_files(layout.final_dir, recursive=True)] == [
        "curriculum.json", "stage-01-a/part-00000.parquet"]
    assert not store.exists(f"{layout.final_dir}/stage-02-b")  # no empty stage folder left behind
    assert store.exists(f"{layout.final_dir}/stage-01-a")


def test_publish_carries_subfolders_on_s3(s3_server, monkeypatch):
    """The same on S3, where folders are only key prefixes."""
    from synth_tasks.airflow_glue import airflow_filesystem
    from synth_tasks.environment import store_for
    from synth_tasks.storage import RunLayout

    monkeypatch.setenv("AIRFLOW_CONN_TEST_S3", s3_server.airflow_conn())
    store = store_for(f"s3://{s3_server.new_bucket('curriculum-publish')}/data", "test_s3", airflow_filesystem)
    layout = RunLayout(store, "curriculum", "2026-01-01")
    for name in ("curriculum.json", "stage-01-a/part-00000.parquet", "stage-02-b/part-00000.parquet"):
        store.write_bytes(f"{layout.staging_dir}/{name}", name.encode())
    layout.publish()
    store.write_bytes(f"{layout.staging_dir}/stage-01-a/part-00000.parquet", b"new")
    layout.publish()
    assert [u.split("/final/")[1] for u in store.list_files(layout.final_dir, recursive=True)] == [
        "stage-01-a/part-00000.parquet"]
    assert store.read_bytes(f"{layout.final_dir}/stage-01-a/part-00000.parquet") == b"new"
    assert store.list_files(layout.staging_dir, recursive=True) == []  # SeaweedFS keeps the emptied folder


def test_a_story_cut_off_at_max_tokens_is_filtered_as_truncated(layout, fault_server):
    import json

    from synth_tasks.config import EndpointConfig
    from synth_tasks.methods.curriculum import METHOD
    from synth_tasks.methods.curriculum.config import CurriculumConfig
    from synth_tasks.methods.curriculum.stages import generate
    from synth_tasks.stage import StageRun

    def answer(text: str, finish_reason: str) -> str:
        return "raw:" + json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "fault-model",
                                    "choices": [{"index": 0, "finish_reason": finish_reason,
                                                 "message": {"role": "assistant", "content": text}}],
                                    "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}})

    fault_server.script.extend([answer("Tom saw a red ball. He kicked it and", "length"),
                                answer("Tom saw a red ball. He kicked it to Mia.", "stop")])
    cfg = CurriculumConfig(concurrency=1, max_tokens=16)  # one at a time: the script meets jobs in order
    stage = next(s for s in METHOD.stages if s.name == "generate")
    endpoint = EndpointConfig(base_url=fault_server.base_url, model="fault-model")
    run = StageRun(stage, cfg, layout, 0, 1, endpoint_for=lambda conn_param: endpoint)
    generate(run, [{"id": "cut", "prompt": "Write a story."}, {"id": "whole", "prompt": "Write a story."}])
    rows = {r["record_id"]: r for r in run.ledger.rows}
    assert rows["cut"]["outcome"] == "filtered" and rows["cut"]["reason"] == "truncated: cut off at max_tokens=16"
    assert rows["whole"]["outcome"] == "kept" and [o["id"] for o in run.outputs] == ["whole"]


def test_questions_and_evaluation_are_costed_by_the_evaluation_items():
    """Only evaluation items ask a question and get an answer: where the Params give the counts the
    plan counts their share, else every item as one (the stages file decides)."""
    from synth_tasks.methods.curriculum import METHOD
    from synth_tasks.methods.curriculum.config import CurriculumConfig

    questions, evaluate = METHOD.stage("questions"), METHOD.stage("evaluate")
    unknown = CurriculumConfig(input_path="x")
    quarter = CurriculumConfig(input_path="x", items_per_stage=30, eval_items_per_stage=10)
    assert questions.seconds_per_record(quarter) == pytest.approx(questions.seconds_per_record(unknown) / 4)
    assert evaluate.seconds_per_record(quarter) == pytest.approx(evaluate.seconds_per_record(unknown) / 4)
    # a question is question_max_tokens long, an answer eval_max_tokens, a story max_tokens
    assert evaluate.seconds_per_record(unknown) < questions.seconds_per_record(unknown) < \
        METHOD.stage("generate").seconds_per_record(unknown)
