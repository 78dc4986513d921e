import json

from synth_tasks.text.chunking import chunk_text
from synth_tasks.text.tokens import count_tokens
from tests.conftest import SAMPLE


def _para(i: int, words: int = 60) -> str:
    return " ".join(f"word{i}_{j}" for j in range(words)) + "."


def test_chunks_respect_the_budget_and_cut_on_paragraphs():
    paragraphs = [_para(i) for i in range(12)]
    chunks = chunk_text("\n\n".join(paragraphs), max_tokens=500)
    assert len(chunks) > 1
    assert all(c.n_tokens <= 500 for c in chunks)
    for c in chunks:  # every paragraph lands whole in one chunk
        for p in c.text.split("\n\n"):
            assert p in paragraphs
    assert "\n\n".join(c.text for c in chunks) == "\n\n".join(paragraphs)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_a_paragraph_over_budget_is_cut_by_sentences_then_tokens():
    sentences = [f"Sentence number {i} says something about probability." for i in range(80)]
    no_spaces = "x" * 5000  # one "sentence" far over budget: cut by raw token windows
    chunks = chunk_text(" ".join(sentences) + "\n\n" + no_spaces, max_tokens=100)
    assert all(c.n_tokens <= 100 for c in chunks)
    joined = " ".join(c.text for c in chunks)
    assert all(s in joined for s in sentences)
    assert joined.replace(" ", "").count("x") == 5000


def test_a_tiny_tail_is_merged_into_the_previous_chunk():
    text = "\n\n".join([" ".join(["probability"] * 300), "Short tail."])  # ~300 + 3 tokens
    without = chunk_text(text, max_tokens=302)
    with_merge = chunk_text(text, max_tokens=302, min_tokens=50)
    assert len(without) == 2 and len(with_merge) == 1
    assert with_merge[0].text.endswith("Short tail.")


def test_empty_and_whitespace_text_gives_no_chunks():
    assert chunk_text("", 500) == []
    assert chunk_text("  \n\n \t\n", 500) == []


def test_real_textbook_sections_chunk_to_about_500_tokens():
    for line in SAMPLE.read_text().splitlines():
        text = json.loads(line)["text"]
        chunks = chunk_text(text, 500, min_tokens=125)
        assert chunks and all(c.n_tokens <= 500 + 125 for c in chunks)
        assert sum(c.n_tokens for c in chunks) >= count_tokens(text) * 0.95  # nothing dropped


def test_token_counts_are_cl100k():
    assert count_tokens("hello world") == 2
