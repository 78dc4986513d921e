"""Near-duplicate detection among short texts (questions, instructions).

Two texts are near-duplicates when their token-sort ratio (0-100, word order ignored) reaches the
threshold. Comparing every pair is quadratic, so for large inputs candidates come from MinHash LSH
(datasketch) over character 4-grams and only those are scored: approximate (a rare true duplicate
can be missed, never a false one reported); small inputs are compared exhaustively."""

from __future__ import annotations

from datasketch import MinHash, MinHashLSH
from rapidfuzz import fuzz, process

EXHAUSTIVE_UP_TO = 2000  # below this, an all-pairs cdist is cheaper than building the LSH index
NUM_PERM = 64


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


def _shingles(text: str) -> set[bytes]:
    # Character 4-grams track the character-level ratio that decides, better than word shingles.
    return {text[i : i + 4].encode() for i in range(max(len(text) - 3, 1))}


def near_duplicate_of(texts: list[str], threshold: float) -> list[int | None]:
    """For each text, the index of an earlier kept text it nearly duplicates, else None. The first
    of a group is kept."""
    normalized = [_normalize(t) for t in texts]
    result: list[int | None] = []
    if len(texts) <= EXHAUSTIVE_UP_TO:
        scores = process.cdist(normalized, normalized, scorer=fuzz.token_sort_ratio, score_cutoff=threshold,
                               workers=1) if texts else []
        for i in range(len(texts)):
            result.append(next((j for j in range(i) if result[j] is None and scores[i][j] >= threshold), None))
        return result
    # Only kept texts enter the index, so a large group of duplicates costs one candidate each.
    lsh = MinHashLSH(threshold=0.4, num_perm=NUM_PERM)
    for i, text in enumerate(normalized):
        mh = MinHash(num_perm=NUM_PERM, seed=1)
        mh.update_batch(list(_shingles(text)))
        candidates = sorted(int(j) for j in lsh.query(mh))
        match = next((j for j in candidates if fuzz.token_sort_ratio(text, normalized[j]) >= threshold), None)
        result.append(match)
        if match is None:
            lsh.insert(str(i), mh)
    return result


def exact_duplicate_of(texts: list[str]) -> list[int | None]:
    """For each text, the index of the first text equal to it after case and whitespace folding."""
    first: dict[str, int] = {}
    result: list[int | None] = []
    for i, text in enumerate(texts):
        key = _normalize(text)
        result.append(first.get(key))
        first.setdefault(key, i)
    return result


def minhash_duplicate_of(texts: list[str], threshold: float = 0.8, num_perm: int = 128,
                         shingle_words: int = 5) -> list[int | None]:
    """Near-duplicate documents (responses, passages): for each text, a kept earlier text whose
    estimated Jaccard similarity over word ``shingle_words``-grams reaches ``threshold``, else None.
    MinHash LSH keeps this near-linear; the MinHash estimate confirms each candidate."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes: dict[int, MinHash] = {}
    result: list[int | None] = []
    for i, text in enumerate(texts):
        words = _normalize(text).split()
        grams = {" ".join(words[k : k + shingle_words]).encode()
                 for k in range(max(len(words) - shingle_words + 1, 1))}
        mh = MinHash(num_perm=num_perm, seed=1)
        mh.update_batch(list(grams))
        match = next((j for j in sorted(int(c) for c in lsh.query(mh)) if hashes[j].jaccard(mh) >= threshold), None)
        result.append(match)
        if match is None:
            lsh.insert(str(i), mh)
            hashes[i] = mh
    return result
