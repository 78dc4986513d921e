from synth_tasks.quality.dedup import near_duplicate_of
from synth_tasks.quality.grounding import Grounded, evidence_score

SECTION = ("## Retries\n\nWhen the warehouse rejects a write, the service retries it up to five times with "
           "exponential backoff. After the fifth failure, the batch is moved to the **dead-letter queue**.")


def test_evidence_found_despite_markup_and_spacing_is_kept():
    verdict = Grounded(85)("After the fifth failure,  the batch is moved to the dead-letter queue.", SECTION)
    assert verdict.keep and evidence_score("the service retries it up to five times", SECTION) == 100


def test_evidence_not_in_the_section_is_dropped_with_its_reason():
    verdict = Grounded(85)("Batches are encrypted with AES-256 before upload.", SECTION)
    assert not verdict.keep and verdict.reason.startswith("ungrounded_evidence: quote 1 match ")
    assert Grounded(85)("  ", SECTION).reason.startswith("no_evidence")


def test_each_quote_must_be_found_and_say_something():
    quotes = ["the service retries it up to five times", "the batch is moved to the dead-letter queue"]
    assert Grounded(85)(quotes, SECTION).keep
    # The quality model's habit that a single evidence field hid: a real quote wrapped in commentary.
    wrapped = "The text states: 'the service retries it up to five times' This directly supports the answer."
    assert Grounded(85)(wrapped, SECTION).reason.startswith("ungrounded_evidence: quote 1 match ")
    assert Grounded(85)([quotes[0], "Batches are encrypted with AES-256."], SECTION).reason.startswith(
        "ungrounded_evidence: quote 2 match ")
    assert Grounded(85)(["five times"], SECTION).reason == "short_quote: quote 1 has 2 word(s) < 3"
    assert Grounded(85)([], SECTION).reason.startswith("no_evidence")


def test_near_duplicate_questions_keep_the_first():
    questions = ["How many times does the service retry a write?",
                 "How many times does the service retry a write ?",
                 "Where do batches go after the fifth failure?",
                 "how many times does the service retry a write"]
    assert near_duplicate_of(questions, 90) == [None, 0, None, 0]
    assert near_duplicate_of([], 90) == []


def test_large_inputs_use_lsh_and_report_only_true_duplicates():
    import synth_tasks.quality.dedup as dedup
    from rapidfuzz import fuzz

    base = [f"What does step {i} of the {w} installation configure first?" for i, w in
            enumerate(["alpha", "beta", "gamma", "delta"] * 30)]
    texts = base + [t.upper() + " " for t in base[:10]]
    old = dedup.EXHAUSTIVE_UP_TO
    dedup.EXHAUSTIVE_UP_TO = 0
    try:
        approx = near_duplicate_of(texts, 90)
    finally:
        dedup.EXHAUSTIVE_UP_TO = old
    exact = near_duplicate_of(texts, 90)
    for i, j in enumerate(approx):
        if j is not None:  # every reported pair is a real near-duplicate of a kept text
            assert fuzz.token_sort_ratio(texts[i].lower(), texts[j].lower()) >= 90 and approx[j] is None
    recall = sum(a is not None for a in approx) / sum(e is not None for e in exact)
    assert recall > 0.9


def test_exact_duplicates_fold_case_and_space():
    from synth_tasks.quality.dedup import exact_duplicate_of

    assert exact_duplicate_of(["Hello  world", "hello world", "other", "HELLO WORLD "]) == [None, 0, None, 0]


def test_minhash_finds_near_duplicate_documents():
    from synth_tasks.quality.dedup import minhash_duplicate_of

    doc = ("To compute the variance of a sum of independent random variables, add their variances; "
           "the covariance terms vanish because independent variables are uncorrelated, which is the "
           "key step in the proof of the square root law for sample sums.")
    near = doc.replace("key step", "central step")
    other = ("The exponential distribution is memoryless: given that a lifetime has exceeded t, the "
             "remaining lifetime has the same exponential distribution as the original one.")
    assert minhash_duplicate_of([doc, other, near, doc.upper()], threshold=0.7) == [None, None, 0, 0]
