from synth_tasks.methods.markdown_qa.heuristics import heuristic_facts, heuristic_pair, key_term, negate, subject_of


def test_facts_are_declarative_sentences_from_prose_only():
    md = ("# T\n\nThe service retries a failed write five times. Why?\n\n```\nThe code block is not prose at all.\n```\n\n"
          "Short one.\n\nOperators must inspect the dead-letter queue every day.")
    assert heuristic_facts(md) == ["The service retries a failed write five times.",
                                   "Operators must inspect the dead-letter queue every day."]


def test_negation_subject_and_key_term():
    assert negate("The queue is drained daily.") == "The queue is not drained daily."
    assert negate("Operators can restart the service.") == "Operators cannot restart the service."
    assert negate("The service retries writes.") is None
    assert subject_of("The batch setting is read at startup.") == "the batch setting"
    assert subject_of("It is deployed in three regions.") is None
    assert key_term("An alert fires when the lag exceeds ten minutes.") == "exceeds"


def test_pairs_quote_their_fact():
    fact = "The dead-letter queue is inspected by operators every day."
    for kind in ("factual_recall", "true_false", "fill_in_blank"):
        pair = heuristic_pair(kind, fact, "Retries")
        assert pair["quotes"] == [fact] and pair["reasoning_steps"]
    cloze = heuristic_pair("fill_in_blank", fact, "Retries")
    assert cloze["question"] == "Fill in the blank: The dead-letter queue is ____ by operators every day."
    assert cloze["answer"] == "inspected"
    assert heuristic_pair("true_false", fact, "Retries")["answer"] in ("True", "False")
