"""The knowledge-graph method's no-LLM entity extraction and its entity resolution on technical
text: each defect a user found on 33 chapters of the Rust book (junk entities, generics mangled
by the HTML-tag pattern, HTML comments leaking terms, code identifiers merged or split wrongly,
bare co-occurrence relations) is a test, and entity precision on a hand-labelled fixture of
original text (tests/fixtures/knowledge_graph/) must stay at or above 0.9."""

from __future__ import annotations

import pytest

from synth_tasks.methods.knowledge_graph.cooccurrence import extract
from synth_tasks.methods.knowledge_graph.resolve import KeyIndex, Mention, normalize, resolve
from tests.synth_tasks.methods.knowledge_graph_resolution import (TYPES, extract_and_resolve, load_fixture,
                                                                  score_entities, score_resolution_rules)


def _names(text: str) -> set[str]:
    return {e["name"] for e in extract(text, TYPES).entities}


def _code(*names: str) -> list[Mention]:
    """Mentions as the no-LLM extractor makes them: each quoted as code in its sentence."""
    return [Mention(n, "technology", f"The `{n}` item is used here.", f"c{i}") for i, n in enumerate(names)]


def _same_entity(mentions: list[Mention], a: str, b: str) -> bool:
    _, key_to_id, _ = resolve(mentions)
    return key_to_id[normalize(a)] == key_to_id[normalize(b)]


# ---------------------------------------------------------------------------------------------
# extraction
# ---------------------------------------------------------------------------------------------
def test_a_generic_code_span_survives_whole_and_resolves_with_its_type():
    text = ("Single-threaded code often stores a `Rc<RefCell<i32>>` in a struct. "
            "The `Rc<T>` type counts references, and a plain `Rc` is cheap to clone.")
    names = _names(text)
    assert "Rc<RefCell<i32>>" in names and not any(">" in n and "<" not in n for n in names)
    assert _same_entity(_code("Rc<RefCell<i32>>", "Rc<T>", "Rc"), "Rc<RefCell<i32>>", "Rc")


def test_html_comments_across_lines_leak_no_terms():
    text = ("The `Arc<T>` type shares ownership between threads in Rust code.\n\n<!--\nTODO: check the MSRV\n"
            "before publishing, and ask Tokio maintainers.\n-->\n\nThe `Mutex<T>` type guards data in Rust code.")
    names = _names(text)
    assert {"Arc<T>", "Mutex<T>", "Rust"} <= names and not names & {"TODO", "MSRV", "Tokio"}
    # a comment the chunker cut open at either end
    assert not _names("Release with Cargo once the MSRV is known.\n-->\n\nWe build with Cargo and Rust here.") \
        & {"MSRV"}
    assert "FIXME" not in _names("We build with Cargo and Rust here. <!-- the FIXME from Tokio in Cargo is")


@pytest.mark.parametrize("junk, text", [
    ("Creating", "Creating a thread takes one call to the `thread::spawn` function in Rust."),
    ("Four", "Four threads print their lines in an order that changes in Rust programs."),
    ("Series", "Series of messages from one producer keep their order in Rust channels."),
    ("Using", "- Using an atomic integer in Rust is cheaper than a lock."),
    ("Using purple as the background color", "The theme uses `Using purple as the background color` in Rust."),
    ("Some(4)", "When a function returns `Some(4)` from a lookup in Rust, nothing is shared."),
    ("input", "The closure would only borrow the `input` variable that Rust code declared."),
    ("vec![1, 2, 3]", "Writing `vec![1, 2, 3]` is shorter than three calls in Rust."),
    ("Message Passing", "See [Using Message Passing to Transfer Data](ch16-02.html) in the Rust book."),
])
def test_sentence_openers_numbers_list_items_expressions_and_locals_are_not_entities(junk, text):
    names = _names(text)
    assert junk not in names and "Rust" in names  # the sentence still yields its real entity


def test_a_lower_case_name_is_an_entity_only_when_the_text_says_what_it_is():
    names = _names("The `send` method moves a value into the channel, while the `input` variable stays put. "
                   "Calling `join()` waits, and the `move` keyword transfers ownership of `data`.")
    assert {"send", "join()", "move"} <= names and not names & {"input", "data"}


def test_a_capitalised_word_needs_one_use_inside_running_text():
    # "Linux" only opens a sentence here; "Cargo" is used inside one
    names = _names("Linux schedules threads. Both tools run through Cargo with one command. Cargo builds it.")
    assert "Cargo" in names and "Linux" not in names and "Both" not in names


# ---------------------------------------------------------------------------------------------
# resolution
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b", [("thread::spawn", "std::thread::spawn"), ("mpsc::channel", "std::sync::mpsc::channel"),
                                  ("mpsc::channel", "std::mpsc::channel"), ("Rc<T>", "Rc"), ("Box<T>", "Box"),
                                  ("Arc", "std::sync::Arc"), ("asyncio.run()", "asyncio.run")])
def test_generic_parameters_and_path_prefixes_do_not_separate_code_names(a, b):
    assert _same_entity(_code(a, b), a, b), (a, b)


@pytest.mark.parametrize("a, b", [("&mut T", "*mut T"), ("Self", "self"), ("&self", "self"), ("&Self", "self"),
                                  ("&Self", "&self"), ("Send", "send"), ("Drop", "drop"), ("pin!", "Pin"),
                                  ("vec!", "Vec"), ("Counter", "COUNTER"), ("Mutex<T>", "MutexGuard<T>"),
                                  ("thread::spawn", "thread::scope"), ("asyncio.sleep", "time.sleep")])
def test_case_sigils_and_macros_keep_code_names_apart(a, b):
    assert not _same_entity(_code(a, b), a, b), (a, b)


def test_a_path_suffix_that_two_paths_end_in_merges_with_neither():
    mentions = _code("drop", "std::mem::drop", "Drop::drop")
    assert not _same_entity(mentions, "drop", "std::mem::drop")
    assert not _same_entity(mentions, "std::mem::drop", "Drop::drop")
    assert _same_entity(_code("drop", "std::mem::drop"), "drop", "std::mem::drop")


def test_prose_names_still_merge_across_case_and_with_a_code_spelling():
    mentions = [Mention("Ownership", "concept", "Ownership is a set of rules.", "c1"),
                Mention("ownership", "concept", "Rust uses ownership.", "c2"),
                Mention("Cargo", "technology", "Cargo is the build tool.", "c3"),
                Mention("cargo", "technology", "Run the `cargo` command.", "c4")]
    assert _same_entity(mentions, "Ownership", "ownership") and _same_entity(mentions, "Cargo", "cargo")


def test_short_and_code_names_never_merge_by_similarity():
    mentions = _code("Rc", "Arc", "HashMap", "HashMapp") + [
        Mention(n, "concept", "", "c9") for n in ("API", "APX", "hash map", "hashmap")]
    assert not _same_entity(mentions, "Rc", "Arc") and not _same_entity(mentions, "HashMap", "HashMapp")
    assert not _same_entity(mentions, "API", "APX")
    assert _same_entity(mentions, "hash map", "hashmap")  # prose of four letters or more still does


def test_a_relation_end_cased_differently_from_its_entity_is_still_found():
    entities, key_to_id, _ = resolve([Mention("ownership", "concept", "", "c1"),
                                      Mention("Send", "technology", "The `Send` trait.", "c1"),
                                      Mention("send", "technology", "The `send` method.", "c1")])
    assert isinstance(key_to_id, KeyIndex) and key_to_id.get(normalize("Ownership")) == key_to_id["ownership"]
    assert key_to_id.get("SEND") is None  # two entities differ only in case: ambiguous


# ---------------------------------------------------------------------------------------------
# relations
# ---------------------------------------------------------------------------------------------
def test_a_relation_needs_a_clause_with_a_verb_between_two_names():
    ex = extract("A `Receiver<T>` also implements `Iterator` in every Rust program. "
                 "The function returns a `Sender<T>` and a `Receiver<T>` to the caller.", TYPES)
    assert [(r["source"], r["target"], r["description"]) for r in ex.relations] == [
        ("Receiver<T>", "Iterator", "`Receiver<T>` also implements `Iterator`")]


@pytest.mark.parametrize("sentence", [
    # a subject pronoun starts another clause
    "We chose `&self` here for the same reason we used `&Rectangle` in the function.",
    # two verb groups, each opened by an auxiliary: two clauses
    "That `Guess::new` might panic should be discussed in its public `Iterator` docs.",
    # the first name is governed by a preposition: it is not the subject
    "Taking a reference to a `String` makes our `Iterator` more general.",
    # the second name is a possessor: the object is what it owns
    "The `Result` enum uses Rust’s type system to signal failure.",
])
def test_no_relation_where_the_words_between_are_not_one_clause_about_both(sentence):
    """Each is a sentence of the Rust book (names changed where the original's were not entities)
    that the bare verb rule related: they were 4 of the 5 wrong relations in 20 read by hand."""
    assert extract(sentence, TYPES).relations == []


def test_a_relation_with_one_verb_group_and_an_infinitive_is_kept():
    ex = extract("The `main` function has to return a `Result` here, as Rust will call the `drop` method.", TYPES)
    assert [(r["source"], r["target"]) for r in ex.relations] == [("Rust", "drop"), ("main", "Result")]


def test_every_pair_is_plain_co_occurrence():
    ex = extract("The function returns a `Sender<T>` and a `Receiver<T>` to the caller in Rust.", TYPES,
                 every_pair=True)
    assert len(ex.relations) == 3


# ---------------------------------------------------------------------------------------------
# the fixtures: real extraction output scored against the gold lists
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["rust_concurrency", "python_asyncio"])
def test_entity_precision_on_the_hand_labelled_fixtures(fixture):
    text, gold = load_fixture(fixture)
    _, entities = extract_and_resolve(text)
    score = score_entities(entities, gold)
    print(f"\n{fixture}: {score['entities']} entities, precision {score['precision']}, recall {score['recall']}, "
          f"resolution {score['resolution_precision']}/{score['resolution_recall']}")
    assert score["precision"] >= 0.9, score["not_in_gold"]
    assert score["recall"] >= 0.8, score["missed"]
    assert not score["not_entities_extracted"] and not score["must_not_merge_violated"]
    assert score["resolution_precision"] == 1.0 and score["resolution_recall"] >= 0.95


@pytest.mark.parametrize("fixture", ["rust_concurrency", "python_asyncio"])
def test_resolution_rules_on_every_gold_surface_form(fixture):
    score = score_resolution_rules(load_fixture(fixture)[1])
    assert score["precision"] == 1.0 and score["recall"] >= 0.95 and not score["must_not_merge_violated"], score
