"""Question composition on real replies of the quality model to the piece prompts
(tests/fixtures/model_answers/knowledge_graph_pieces.json): the replies as the model wrote them
(quotes, a trailing period, a capital "The") compose to the recorded question, or fail with the
recorded reason."""

import json

import pytest

from synth_tasks.methods.knowledge_graph.paths import compose_question
from synth_tasks.methods.knowledge_graph.stages import piece_text
from tests.conftest import DATA

CASES = json.loads((DATA / "model_answers" / "knowledge_graph_pieces.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[" -> ".join(n[0] for n in c["path_names"]) for c in CASES])
def test_recorded_replies_compose_as_recorded(case):
    *clues, question = [piece_text(r) for r in case["replies"]]
    assert compose_question(case["path_names"], clues, question) == (case["question"], case["problem"])


def test_the_recorded_outcomes_cover_both_kinds():
    """12 of the 20 replies could not be composed (a piece that does not name its entity); every
    composed question names the start entity."""
    assert sum(c["problem"] is not None for c in CASES) == 12 and len(CASES) == 20
    for c in CASES:
        if c["question"] is not None:
            assert any(name.lower() in c["question"].lower() for name in c["path_names"][0])
