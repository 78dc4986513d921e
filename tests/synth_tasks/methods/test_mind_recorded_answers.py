"""MIND's parsing and filters on real answers, recorded from both embedded models for one context
they were not tuned on (tests/fixtures/model_answers/: the quality model's and the 135M model's JSON
turns, each labelled by a reader as on topic, off topic or vague)."""

import json
import re

import pytest

from synth_tasks.llm.client import _json_text
from synth_tasks.methods.mind.config import MIN_JSON_TURNS
from synth_tasks.methods.mind.stages import salvage_turns, turns_model
from synth_tasks.methods.mind.dialogue import Turn, format_turns, strip_own_label
from synth_tasks.quality.filters import OnTopic
from tests.conftest import DATA

ANSWERS = json.loads((DATA / "model_answers" / "mind_answers.json").read_text())
CONTEXT = (DATA / "model_answers" / "mind_context.md").read_text()
QUALITY = [a for a in ANSWERS if a["model"] == "qwen2.5-coder-1.5b-instruct"]
SMALL = [a for a in ANSWERS if a["model"] == "smollm2-135m-instruct"]


def conversation(answer: dict) -> str | None:
    """The conversation MIND's generate stage makes of an answer: its turns, or the whole turns of an
    answer cut off at max_tokens; None when neither parses."""
    model = turns_model(answer["style"])
    try:
        turns = model.model_validate_json(_json_text(answer["raw"])).turns
    except ValueError:
        turns = salvage_turns(answer["raw"], model)
    if turns is None:
        return None
    return format_turns([Turn(t.speaker, strip_own_label(t.speaker, " ".join(t.text.split()))) for t in turns])


def test_the_recorded_set_has_both_models():
    assert len(QUALITY) == 7 and len(SMALL) == 8


@pytest.mark.parametrize("answer", QUALITY, ids=lambda a: a["style"] + "-" + a["finish_reason"])
def test_every_quality_answer_becomes_a_conversation_with_its_latex_intact(answer):
    text = conversation(answer)
    assert text is not None and len(text.split("\n\n")) >= MIN_JSON_TURNS
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", text)  # no \b of "\bar", no \f of "\frac"
    for command in re.findall(r"(?<!\\)\\(frac|text|times|cdot|sum)\b", answer["raw"]):
        assert f"\\{command}" in text


def test_on_topic_keeps_every_quality_conversation_and_drops_the_135m_models_off_topic_ones():
    check = OnTopic()
    kept = {id(a): check(conversation(a) or a["raw"], CONTEXT).keep for a in ANSWERS}
    assert all(kept[id(a)] for a in ANSWERS if a["label"] == "on_topic")
    assert not any(kept[id(a)] for a in ANSWERS if a["label"] == "off_topic")
    # what the reader found vaguely related (general probability, not this context) is dropped too
    assert sum(kept[id(a)] for a in ANSWERS if a["label"] == "vague") == 0
