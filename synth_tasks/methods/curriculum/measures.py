"""What makes a text hard, measured offline: readability (Flesch-Kincaid grade, Flesch reading ease),
the share of words outside a vocabulary, the stage whose word list a text's words come from,
sentence and item length, zlib compression ratio (low:
repetitive), the number of arithmetic operations and the cyclomatic complexity of any Python in it
(for arithmetic and code stages).

Syllables are counted here by rule, with no dictionary: textstat >= 0.7.5 downloads the CMU
dictionary through nltk for Flesch-Kincaid and fails offline, and a rule-based counter needs nothing.
It is tested against hand-counted words (tests/synth_tasks/methods/test_curriculum.py)."""

from __future__ import annotations

import ast
import re
import zlib
from dataclasses import asdict, dataclass

_WORD = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)*")
_VOWEL_GROUP = re.compile(r"[aeiouy]+")
_SIBILANT_ES = re.compile(r"(?:[sxzcg]|ch|sh)es$")
_SPOKEN_APART = re.compile(r"(?<![cst])ia|(?<![cstgx])io|(?<!q)ua|ie(?=t|nc|r)|[aeo]ing$|..ea$")
# a silent e inside a compound or before a suffix: something, sometimes, lovely, careful
_SILENT_INNER_E = re.compile(r"[aeiou][bcdfgklmnprstvz]e(?=(?:thing|times?|where|body|one|ful|ly|ment|less|ness)s?$)")
_ARITHMETIC = re.compile(r"\d\s*[-+*/\u00d7\u00f7x]\s*\d|\d\s*(?:plus|minus|times|divided by)\s*\d")


def syllables(word: str) -> int:
    """Syllables of an English word by rule: vowel groups, less a silent final e / -es / -ed, plus
    vowel pairs spoken apart (li-on, gi-ant, go-ing). At least 1."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return 0
    if len(w) <= 3:
        return 1
    w = re.sub(r"y(?=[aeiou])", "j", w)  # y before a vowel is a consonant: yellow, playing
    n = len(_VOWEL_GROUP.findall(w))
    if n > 1:
        if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and w[-2] not in "aeiou":
            n -= 1  # make, there, orange (but apple, little, tree keep theirs)
        elif w.endswith("le") and w[-3] in "aeiou":
            n -= 1  # whale, smile
        elif w.endswith("ed") and w[-3] not in "td" and w[-3] not in "aeiou":
            n -= 1  # jumped, played (but wanted, needed)
        elif w.endswith("es") and w[-3] not in "aeiou" and not _SIBILANT_ES.search(w):
            n -= 1  # makes, times (but boxes, horses, faces, babies)
    n += len(_SPOKEN_APART.findall(w))  # lion, giant, usual, quiet, going, idea
    n -= len(_SILENT_INNER_E.findall(w))
    return max(1, n)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def sentence_count(text: str) -> int:
    """Sentences end at . ! ? followed by a space or the end (a text without one is one sentence)."""
    pieces = re.split(r"[.!?]+[\"'\u201d\u2019)]*(?:\s+|$)", text.strip())
    return max(1, sum(1 for piece in pieces if _WORD.search(piece)))


def flesch_kincaid_grade(n_words: int, n_sentences: int, n_syllables: int) -> float:
    return 0.39 * n_words / n_sentences + 11.8 * n_syllables / n_words - 15.59


def flesch_reading_ease(n_words: int, n_sentences: int, n_syllables: int) -> float:
    return 206.835 - 1.015 * n_words / n_sentences - 84.6 * n_syllables / n_words


def lemma_candidates(word: str) -> list[str]:
    """The word and the forms it may inflect from (cats -> cat, running -> run, happier -> happy),
    so a vocabulary lists base forms only."""
    w = word.lower().replace("\u2019", "'")
    if w.endswith("'s"):
        w = w[:-2]
    forms = [w]
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ier", "y"), ("iest", "y"), ("ily", "y"), ("es", ""),
                         ("s", ""), ("ed", ""), ("ed", "e"), ("d", ""), ("ing", ""), ("ing", "e"), ("er", ""),
                         ("er", "e"), ("est", ""), ("est", "e"), ("ly", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 2:
            stem = w[: -len(suffix)] + repl
            forms.append(stem)
            if suffix in ("ed", "ing", "er", "est") and len(stem) >= 3 and stem[-1] == stem[-2]:
                forms.append(stem[:-1])  # running -> run, bigger -> big
    if "'" in w:
        forms.append(w.split("'", 1)[0])  # don't -> don, it'll -> it (contractions of listed words)
    return forms


def out_of_vocabulary(text_words: list[str], vocabulary: frozenset[str] | set[str]) -> list[str]:
    """The words none of whose forms is in ``vocabulary`` (lower-case base forms)."""
    return [w for w in text_words if not any(f in vocabulary for f in lemma_candidates(w))]


def vocabulary_stage(text_words: list[str], word_stage: dict[str, int]) -> float:
    """The mean stage (1-based) whose own word list first introduces each of the text's listed
    words (words of the common list, or of no list, are left out); 0.0 when none is listed. A story
    written with later stages' words measures higher."""
    stages = []
    for w in text_words:
        stage = next((word_stage[f] for f in lemma_candidates(w) if f in word_stage), None)
        if stage is not None:
            stages.append(stage)
    return sum(stages) / len(stages) if stages else 0.0


def compression_ratio(text: str) -> float:
    """zlib-compressed size over raw size: repetitive text compresses well (a low ratio)."""
    raw = text.encode("utf-8")
    return len(zlib.compress(raw, 9)) / len(raw) if raw else 0.0


def arithmetic_operations(text: str) -> int:
    return len(_ARITHMETIC.findall(text))


_FENCED = re.compile(r"```[a-zA-Z0-9_+-]*\n(.*?)```", re.DOTALL)


def code_complexity(text: str) -> int:
    """McCabe cyclomatic complexity of the Python in ``text`` (its fenced blocks, else the whole
    text if it parses), counted on the ast as radon does: 1 + one per branch point (if, loop,
    except, with, assert, conditional expression, comprehension condition, boolean operator
    operand). 0 when there is no Python."""
    blocks = _FENCED.findall(text) or [text]
    total = 0
    for block in blocks:
        try:
            tree = ast.parse(block)
        except (SyntaxError, ValueError):
            continue
        if not any(isinstance(n, (ast.stmt)) and not isinstance(n, ast.Expr) for n in ast.walk(tree)):
            continue  # prose that happens to parse as one expression is not code
        branches = 0
        for node in ast.walk(tree):
            if isinstance(node, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.With,
                                 ast.AsyncWith, ast.Assert, ast.IfExp)):
                branches += 1
            elif isinstance(node, ast.comprehension):
                branches += 1 + len(node.ifs)
            elif isinstance(node, ast.BoolOp):
                branches += len(node.values) - 1
        total += 1 + branches
    return total


@dataclass(frozen=True)
class Measures:
    fk_grade: float
    reading_ease: float
    oov_share: float
    vocabulary_stage: float
    words_per_sentence: float
    n_words: int
    n_sentences: int
    syllables_per_word: float
    compression_ratio: float
    n_operations: int
    code_complexity: int

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


# Which measures grow with difficulty; reading ease falls as texts get harder.
HARDER_IS_HIGHER = {"fk_grade": True, "reading_ease": False, "oov_share": True, "vocabulary_stage": True,
                    "words_per_sentence": True,
                    "n_words": True, "n_sentences": True, "syllables_per_word": True, "compression_ratio": True,
                    "n_operations": True, "code_complexity": True}


def measure(text: str, vocabulary: frozenset[str] | set[str], word_stage: dict[str, int] | None = None) -> Measures:
    """Every measure of ``text``; ``vocabulary`` for the OOV share, ``word_stage`` (word -> the
    1-based stage that introduces it) for the vocabulary stage (0.0 without)."""
    ws = words(text)
    n_words = len(ws)
    n_sentences = sentence_count(text)
    if n_words == 0:
        return Measures(0.0, 0.0, 0.0, 0.0, 0.0, 0, n_sentences, 0.0, compression_ratio(text), arithmetic_operations(text),
                        code_complexity(text))
    n_syllables = sum(syllables(w) for w in ws)
    return Measures(
        fk_grade=flesch_kincaid_grade(n_words, n_sentences, n_syllables),
        reading_ease=flesch_reading_ease(n_words, n_sentences, n_syllables),
        oov_share=len(out_of_vocabulary(ws, vocabulary)) / n_words,
        vocabulary_stage=vocabulary_stage(ws, word_stage or {}),
        words_per_sentence=n_words / n_sentences,
        n_words=n_words,
        n_sentences=n_sentences,
        syllables_per_word=n_syllables / n_words,
        compression_ratio=compression_ratio(text),
        n_operations=arithmetic_operations(text),
        code_complexity=code_complexity(text),
    )
