"""Whether a story is about its stage's theme, measured: the story and every stage are embedded
with the project's sentence embedder (all-MiniLM-L6-v2, loaded from its package, never downloaded),
and the story belongs to the stage it is closest to (cosine similarity). A stage is its theme
sentence (the stages file's ``theme``, what the stage's prompt asks for; the title without one),
or, where the stages file gives example stories a reader filed under it, the direction halfway
between the sentence and the centre of its examples. A story is on theme when that closest stage is
the one it was written for.

Why examples: a sentence embedding places a story by what it is about (apples, coins, a cake), while
a stage is what happens in it (sorting, counting, understanding another's mind). On a held-out
sample of 65 of the quality model's stories (seed 3; docs/methods/curriculum.md) the sentences
alone agreed with a reader on 50, with the seed-2 examples on 56."""

from __future__ import annotations

from functools import lru_cache


def closest_stages(texts: list[str], titles: list[str],
                   examples: tuple[tuple[str, ...], ...] | list[list[str]] = ()) -> list[tuple[int, list[float]]]:
    """For each text, (index of the closest stage, its cosine similarity to every stage). A stage is
    its theme sentence (``titles[i]``) or, where it has example stories (``examples[i]``), the
    direction halfway between the sentence and the centre of its examples."""
    from synth_tasks.quality.diversity import embed  # sentence-transformers, unit vectors: not at DAG parse time

    if not texts:
        return []
    similarity = embed(texts) @ stage_vectors(tuple(titles), tuple(tuple(e) for e in examples)).T
    return [(int(row.argmax()), [round(float(x), 4) for x in row]) for row in similarity]


@lru_cache(maxsize=4)
def stage_vectors(titles: tuple[str, ...], examples: tuple[tuple[str, ...], ...]):
    """One unit vector a stage (see ``closest_stages``). Cached: embedding the examples (58 stories
    in the shipped file, about 2 s on 2 cores) is paid once a process, as the model's load is."""
    import numpy as np

    from synth_tasks.quality.diversity import embed

    stages = embed(list(titles))
    for i, stories in enumerate(examples):
        if stories:
            centre = embed(list(stories)).mean(axis=0)
            halfway = centre / np.linalg.norm(centre) + stages[i]
            stages[i] = halfway / np.linalg.norm(halfway)
    stages.flags.writeable = False
    return stages
