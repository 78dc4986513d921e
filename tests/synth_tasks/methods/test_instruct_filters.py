"""The instruct method's filters (methods/instruct/filters.py): Self-Instruct's novelty and shape rules and
Evol-Instruct's elimination rules, on concrete texts."""

import pytest
from rouge_score import rouge_scorer

from synth_tasks.methods.instruct.filters import (
    ApologyResponse,
    CleanStart,
    ContentlessResponse,
    KeywordBlocklist,
    RougeNovelty,
    TemplateLeak,
    WordCount,
    rouge_l,
)

PAIRS = [
    ("Give three tips for staying healthy.", "Give three tips for staying healthy and happy!"),
    ("Write a Python function that reverses a string.", "Write a function in Python to reverse a list."),
    ("Explain photosynthesis to a ten-year-old.", "Summarize the causes of World War I."),
    ("What's 12% of 250? Show your work.", "what is 12 percent of 250, show the work"),
    ("Translate 'good morning' into French", "Translate \"good night\" into Spanish."),
    ("", "Anything at all."),
    ("-- !!", "Tokens? None."),
]


@pytest.mark.parametrize("a, b", PAIRS)
def test_rouge_l_equals_the_reference_implementation(a, b):
    reference = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(a, b)["rougeL"].fmeasure
    assert rouge_l(a, b) == pytest.approx(reference, abs=1e-9)


def test_novelty_drops_near_copies_of_the_pool_and_names_the_closest():
    novelty = RougeNovelty(threshold=0.7)
    novelty.add("seed-1", "Give three tips for staying healthy.")
    novelty.add("seed-2", "Write a haiku about the sea.")
    verdict = novelty("Give three tips for staying healthy and happy.")
    assert not verdict.keep and verdict.reason == "too_similar: ROUGE-L 0.86 > 0.7 against seed-1"
    assert novelty("Write a limerick about a cat who learns to code.").keep
    # exactly at the threshold is kept: the rule drops only scores above 0.7
    novelty2 = RougeNovelty(threshold=0.7)
    novelty2.add("x", "a b c d e f g")
    assert rouge_l("a b c d e f g", "a b c d e f g h i j k l") == pytest.approx(0.7368, abs=1e-4)
    assert rouge_l("a b c d e f g", "a b c x y z q") < 0.7 and novelty2("a b c x y z q").keep


def test_the_pool_grows_with_kept_instructions():
    novelty = RougeNovelty()
    assert novelty("List five uses of baking soda.").keep
    novelty.add("gen-1", "List five uses of baking soda.")
    assert not novelty("List five uses of baking soda at home.").keep
    assert len(novelty) == 1


@pytest.mark.parametrize("text, reason", [
    ("Sort these numbers.", "too_few_words: 3 < 4"),
    ("word " * 151, "too_many_words: 151 > 150"),
])
def test_word_count(text, reason):
    assert WordCount()(text).reason == reason


def test_word_count_keeps_four_to_150_words():
    assert WordCount()("Sort these four numbers.").keep and WordCount()("word " * 150).keep


@pytest.mark.parametrize("text, keyword", [
    ("Describe the image below in detail.", "image"),
    ("Draw a diagram of the water cycle.", "draw"),
    ("Plot the function y = x^2 from -3 to 3.", "plot"),
    ("Read the attached files and summarize them.", "file"),
    ("Look at this Graph and tell me the trend.", "graph"),
    ("Go to the website and find the price.", "go to"),
    ("Which map projection preserves area?", "map"),
])
def test_blocklist_hits_whole_words_and_plurals(text, keyword):
    assert KeywordBlocklist()(text).reason == f"blocklisted_keyword: {keyword}"


@pytest.mark.parametrize("text", [
    "Write a profile of a famous mathematician.",  # "file" inside "profile"
    "Explain the mapping between sets.",  # "map" inside "mapping"
    "Where did you go today?",
    "Explain how a graphical user interface works.",
])
def test_blocklist_ignores_words_that_merely_contain_a_keyword(text):
    assert KeywordBlocklist()(text).keep


@pytest.mark.parametrize("text, reason", [
    ("- Write a poem.", "starts_with_punctuation: '-'"),
    ('"Quote this."', "starts_with_punctuation: '\"'"),
    ("¿Qué hora es?", "starts_with_non_ascii: '¿'"),
    ("Écris un poème.", "starts_with_non_ascii: 'É'"),
    ("   ", "empty_instruction: nothing left after parsing"),
])
def test_clean_start(text, reason):
    assert CleanStart()(text).reason == reason


def test_clean_start_keeps_plain_instructions():
    assert CleanStart()("  Write a poem.").keep and CleanStart()("3 ways to fold a shirt?").keep


@pytest.mark.parametrize("text", [
    "#Rewritten Prompt#: Explain recursion with two examples.",
    "Here is the rewritten prompt: explain recursion.",
    "Based on the given prompt, add a constraint.",
])
def test_template_leak(text):
    assert TemplateLeak()(text).reason.startswith("template_leak: contains ")


def test_template_leak_keeps_clean_rewrites():
    assert TemplateLeak()("Explain recursion with two examples, one in Python and one in Lisp.").keep


def test_short_apologies_eliminate_but_long_answers_that_say_sorry_do_not():
    assert ApologyResponse()("I'm sorry, but I cannot answer that.").reason == "apology_response: says sorry in 7 words"
    long_answer = "Sorry for the wait. " + "Here is a full worked answer with many steps. " * 10
    assert ApologyResponse()(long_answer).keep
    assert ApologyResponse()("The answer is 42 because six times seven is 42.").keep


@pytest.mark.parametrize("text", ["", "...!?", "It is what it is.", "And so, to the -- of it; then!"])
def test_contentless_responses(text):
    assert ContentlessResponse()(text).reason.startswith("contentless_response: only punctuation and stop words")


def test_responses_with_content_words_are_kept():
    assert ContentlessResponse()("It is 42.").keep and ContentlessResponse()("Photosynthesis makes sugar.").keep
