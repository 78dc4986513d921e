import json
import re

import pytest

from synth_tasks.quality.decontamination import Decontaminator
from tests.conftest import ROOT

GSM8K = [json.loads(l) for l in (ROOT / "include/benchmarks/gsm8k_test.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def decontaminate():
    return Decontaminator()


def test_a_planted_gsm8k_test_question_is_removed(decontaminate):
    planted = f"Here is a nice practice problem for you. {GSM8K[17]['question']} Think step by step."
    verdict = decontaminate(planted)
    assert not verdict.keep and verdict.reason.startswith("benchmark_overlap: 13-gram shared with gsm8k_test")


def test_the_reason_names_the_first_shared_ngram_in_every_process():
    """The reason is the same in every run (it named an n-gram picked in set order, which string
    hash randomisation changes from process to process)."""
    import subprocess
    import sys

    code = ("from synth_tasks.quality.decontamination import Decontaminator; import json; "
            f"print(Decontaminator()(json.loads({json.dumps(json.dumps(GSM8K[17]))})['question']).reason)")
    reasons = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout for seed in (1, 2, 3)}
    first = " ".join(re.findall(r"[a-z0-9]+", GSM8K[17]["question"].lower())[:13])
    assert len(reasons) == 1 and reasons.pop().strip().endswith(f'"{first}"')


def test_case_and_punctuation_do_not_hide_contamination(decontaminate):
    question = GSM8K[3]["question"]
    assert not decontaminate(question.upper().replace(",", " ,")).keep


def test_ordinary_math_text_is_kept(decontaminate):
    text = ("A farmer plants corn in rows of twelve. If each row yields forty ears and she plants "
            "nine rows, she harvests four hundred and thirty-two ears in total this season.")
    assert decontaminate(text).keep
    assert len(GSM8K) == 1319


def test_unknown_benchmark_is_named():
    with pytest.raises(KeyError, match="unknown benchmark 'mmlu'"):
        Decontaminator(benchmarks=("mmlu",))


# -- issue #25: arithmetic made 13-grams that said nothing about a copy -------------------------------
# GSM8K train item 5004 (MIT): its solution shares "7 days in a week so she eats 3*7 = <<3*7=21>>21"
# with test item 19 (Claire's omelets), a 13-gram of calculator annotations ("... 3 7 3 7 21")
SANDRA = {"question": "Sandra eats 3 beignets every morning.  How many beignets will she eat in 16 weeks?",
          "answer": "She eats 3 beignets every morning and there are 7 days in a week so she eats 3*7 = <<3*7=21>>21 "
                    "beignets in a week\nShe eats 21 beignets in a week so over 16 weeks she will have eaten 21*16 = "
                    "<<336=336>>336 beignets\n#### 336"}


def test_calculator_annotations_do_not_make_a_shared_ngram(decontaminate):
    text = SANDRA["question"] + "\n" + SANDRA["answer"]
    assert decontaminate(text).keep
    # the n-grams with the arithmetic left in (as before) flag it
    assert not Decontaminator(strip_arithmetic=False)(text).keep


def test_arithmetic_is_cut_out_and_no_ngram_spans_the_cut():
    from synth_tasks.quality.decontamination import word_stretches

    assert word_stretches("so she eats 3*7 = <<3*7=21>>21 eggs; 2 weeks * 7 days/week = 14 days at $1.50 each") == [
        ["so", "she", "eats"], ["21", "eggs"], ["days", "at", "150", "each"]]
    # lone numbers in prose stay, a price or a fraction as one number
    assert word_stretches("Claire makes a 3 egg omelet in 4 weeks, gives 1/3 away and sells 2 at $1.50") == [
        ["claire", "makes", "a", "3", "egg", "omelet", "in", "4", "weeks", "gives", "13", "away", "and", "sells", "2",
         "at", "150"]]


def test_a_copied_question_with_other_numbers_in_its_solution_is_still_removed(decontaminate):
    item = GSM8K[18]  # Claire's omelets: the question copied, the solution's arithmetic redone
    answer = re.sub(r"\d+", "5", item["answer"])
    assert not decontaminate(item["question"] + "\n" + answer).keep
