"""Diversity on real embeddings from the shipped all-MiniLM-L6-v2 model."""

import pytest

from synth_tasks.quality import diversity

MATH = ["Solve the quadratic equation x^2 - 5x + 6 = 0.", "What is the derivative of sin(x) times x?",
        "Prove that the square root of two is irrational.", "Compute the integral of 1/x from 1 to e.",
        "Find the eigenvalues of a 2x2 rotation matrix.", "Simplify the algebraic expression (a+b)^2 - (a-b)^2."]
COOKING = ["How long should I knead bread dough by hand?", "What is the best way to caramelize onions?",
           "How do I keep a roast chicken juicy in the oven?", "Which spices go into a classic garam masala?",
           "How long do you boil an egg for a runny yolk?", "What flour makes the chewiest pizza crust?"]
CODE = ["How do I reverse a linked list in Python?", "Explain what a mutex protects in multithreaded code.",
        "Why does my JavaScript promise never resolve?", "How do I write a SQL query that joins two tables?",
        "What does the git rebase command do?", "How do I fix a segmentation fault in a C program?"]
TOPIC = [0] * 6 + [1] * 6 + [2] * 6


@pytest.fixture(scope="module")
def embedded():
    texts = MATH + COOKING + CODE
    return texts, diversity.embed(texts)


def test_embeddings_are_unit_vectors(embedded):
    texts, emb = embedded
    assert emb.shape == (len(texts), 384)
    assert abs(float((emb ** 2).sum(axis=1).mean()) - 1.0) < 1e-4


def test_embeddings_carry_topic_and_clusters_follow_it(embedded):
    import numpy as np

    texts, emb = embedded
    topic = np.array(TOPIC)
    sims = emb @ emb.T
    same = topic[:, None] == topic[None, :]
    off_diagonal = ~np.eye(len(texts), dtype=bool)
    assert sims[same & off_diagonal].mean() > sims[~same].mean() + 0.05  # measured: 0.118 vs 0.026
    labels = diversity.kmeans_labels(emb, k=3, seed=0)
    purity = sum(np.bincount(topic[labels == c]).max() for c in set(labels)) / len(texts)
    assert purity >= 0.7, list(labels)


def test_balanced_sampling_covers_every_cluster_of_a_skewed_pool(embedded):
    texts, emb = embedded
    labels = diversity.kmeans_labels(emb, k=3, seed=0)
    pool = list(range(6)) + [6, 7, 12, 13]  # all math, two cooking, two code questions
    picked = diversity.cluster_balanced_sample(labels[pool], target=6, seed=0)
    sample = [pool[i] for i in picked]
    assert len(sample) == 6 and set(labels[sample]) == set(labels[pool])
    first_six = pool[:6]  # the math questions alone
    assert diversity.topic_entropy(labels[sample])["bits"] >= diversity.topic_entropy(labels[first_six])["bits"]
    assert diversity.mean_pairwise_cosine_distance(emb[sample]) > diversity.mean_pairwise_cosine_distance(emb[first_six])


def test_scores_pick_the_best_of_each_cluster():
    labels = [0, 0, 0, 1, 1]
    scores = [1.0, 3.5, 2.0, 0.5, 4.0]
    assert diversity.cluster_balanced_sample(labels, target=2, scores=scores) == [1, 4]


def test_metrics_on_known_inputs():
    assert diversity.distinct_n(["a b a b", "a b"], 2) == pytest.approx(2 / 4)
    assert diversity.topic_entropy([0, 0, 1, 1]) == {"bits": 1.0, "normalized": 1.0, "clusters": 2}
    same = diversity.embed(["identical text"] * 3)
    assert diversity.mean_pairwise_cosine_distance(same) == pytest.approx(0.0, abs=1e-4)
