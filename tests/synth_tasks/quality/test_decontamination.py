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
