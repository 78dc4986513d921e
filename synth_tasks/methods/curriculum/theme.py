"""Whether a story is about its stage's theme, measured: the story and every stage's theme (a
sentence in the stages file, what the stage's prompt asks for; the title without one) are embedded
with the project's sentence embedder (all-MiniLM-L6-v2, loaded from its package, never downloaded),
and the story belongs to the stage whose theme it is closest to (cosine similarity). A story is on
theme when that closest stage is the one it was written for.

Checked on 20 stories (8 by the quality model for stages 1, 3 and 5; the 6 of the test replies; 6
written for the unit test, one per stage): with the titles alone 13 of the first 14 landed in
their stage, and the unit test's sorting story went to spatial physics; with the themes written
from the prompts, 19 of 20. The one miss, a reasoning story about counting stars and why some
shine brighter, lands in basic perception (light), where a reader might put it too."""

from __future__ import annotations


def closest_stages(texts: list[str], titles: list[str]) -> list[tuple[int, list[float]]]:
    """For each text, (index of the closest title, its cosine similarity to every title)."""
    from synth_tasks.quality.diversity import embed  # sentence-transformers: not at DAG parse time

    if not texts:
        return []
    similarity = embed(texts) @ embed(titles).T
    return [(int(row.argmax()), [round(float(x), 4) for x in row]) for row in similarity]
