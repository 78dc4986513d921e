"""The knowledge-graph method: the tolerant extraction parsers on the malformed answers small models
give, entity resolution on a hand-labelled fixture, reproducible communities, the path-QA rules
each on a constructed graph, local retrieval, and the method through the stage runner (without
Airflow) on a scripted endpoint (JSON and tuple formats) and in no-LLM mode."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from synth_tasks.config import ConfigError, EndpointConfig, parse_config
from synth_tasks.methods.knowledge_graph import METHOD
from synth_tasks.methods.knowledge_graph.config import KnowledgeGraphConfig
from synth_tasks.methods.knowledge_graph.parse import ExtractionParseError, parse_extraction, parse_json, parse_tuples
from synth_tasks.methods.knowledge_graph.resolve import Mention, normalize, pairwise_scores, resolve
from synth_tasks.pipeline import run_method
from synth_tasks.storage import RunLayout
from tests.conftest import ROOT
from tests.synth_tasks.methods.knowledge_graph_replies import reply
from tests.synth_tasks.methods.knowledge_graph_resolution import MENTIONS

TYPES = ("concept", "technology", "organization", "person", "geo", "event")
DOCS = ROOT / "include" / "sample_data" / "markdown_qa" / "docs"


# ---------------------------------------------------------------------------------------------
# the tuple parser
# ---------------------------------------------------------------------------------------------
GOOD_TUPLES = ('("entity"<|>Vec<|>technology<|>A growable list type)##\n'
               '("entity"<|>vector<|>concept<|>A list of values of one type)##\n'
               '("relationship"<|>Vec<|>vector<|>Vec<T> is the vector type<|>8)\n<|COMPLETE|>')


def test_well_formed_tuples_are_read_without_repairs():
    ex = parse_tuples(GOOD_TUPLES, TYPES)
    assert [e["name"] for e in ex.entities] == ["Vec", "vector"]
    assert ex.relations == [{"source": "Vec", "target": "vector", "description": "Vec<T> is the vector type",
                             "strength": 8}]
    assert not ex.repairs


def test_a_missing_record_delimiter_is_repaired():
    text = ('("entity"<|>Vec<|>technology<|>A growable list)("entity"<|>vector<|>concept<|>A list)\n'
            '("relationship"<|>Vec<|>vector<|>implements<|>7)<|COMPLETE|>')
    ex = parse_tuples(text, TYPES)
    assert [e["name"] for e in ex.entities] == ["Vec", "vector"] and len(ex.relations) == 1


def test_garbled_field_delimiters_are_repaired():
    text = '("entity"<|Vec|>technology<|>A growable list)##("relationship"|Vec|vector|implements|7)<|COMPLETE|>'
    ex = parse_tuples(text, TYPES)
    assert ex.entities[0] == {"name": "Vec", "type": "technology", "description": "A growable list"}
    assert ex.relations[0]["strength"] == 7 and ex.relations[0]["target"] == "vector"
    assert ex.repairs["delimiter_repaired"] == 2


def test_extra_prose_around_the_records_is_skipped():
    text = "Sure! Here are the entities I found:\n\n" + GOOD_TUPLES + "\n\nLet me know if you need more."
    ex = parse_tuples(text, TYPES)
    assert len(ex.entities) == 2 and len(ex.relations) == 1 and ex.repairs["prose_skipped"] == 1


def test_a_truncated_last_record_is_kept_when_usable_and_dropped_when_not():
    usable = '("entity"<|>Vec<|>technology<|>A growable list)##("entity"<|>vector<|>concept<|>A list of val'
    ex = parse_tuples(usable, TYPES)
    assert [e["name"] for e in ex.entities] == ["Vec", "vector"] and ex.entities[1]["description"] == "A list of val"
    cut_in_name = '("entity"<|>Vec<|>technology<|>A growable list)##("entity"<|>vec'
    ex = parse_tuples(cut_in_name, TYPES)
    assert [e["name"] for e in ex.entities] == ["Vec"] and ex.repairs["truncated_record_dropped"] == 1
    rel_without_strength = '("entity"<|>Vec<|>technology<|>x)##("relationship"<|>Vec<|>vector<|>implements'
    ex = parse_tuples(rel_without_strength, TYPES)
    assert ex.relations == [{"source": "Vec", "target": "vector", "description": "implements", "strength": 1}]


def test_unknown_types_become_other_and_strengths_are_clamped():
    text = '("entity"<|>Vec<|>data structure<|>x)##("relationship"<|>Vec<|>vector<|>is<|>42)<|COMPLETE|>'
    ex = parse_tuples(text, TYPES)
    assert ex.entities[0]["type"] == "other" and ex.repairs["unknown_type"] == 1
    assert ex.relations[0]["strength"] == 10 and ex.repairs["strength_clamped"] == 1


def test_an_answer_with_nothing_usable_fails_with_its_raw_text():
    for text in ("I am sorry, I cannot extract entities from this text.", '("entity"<|>', ""):
        with pytest.raises(ExtractionParseError) as err:
            parse_extraction(text, TYPES, "tuples")
        assert err.value.raw == text and str(err.value).startswith("unparseable_extraction")


# ---------------------------------------------------------------------------------------------
# the JSON parser
# ---------------------------------------------------------------------------------------------
GOOD_JSON = {"entities": [{"name": "Vec", "type": "technology", "description": "A growable list"},
                          {"name": "vector", "type": "concept", "description": "A list"}],
             "relationships": [{"source": "Vec", "target": "vector", "description": "is a", "strength": 8}]}


def test_json_in_a_fence_or_in_prose_is_read():
    fenced = "```json\n" + json.dumps(GOOD_JSON) + "\n```"
    prose = "Here is the JSON you asked for: " + json.dumps(GOOD_JSON) + " Hope it helps."
    for text in (fenced, prose):
        ex = parse_json(text, TYPES)
        assert len(ex.entities) == 2 and ex.relations[0]["strength"] == 8


def test_truncated_json_is_closed_after_its_last_complete_item():
    text = json.dumps(GOOD_JSON)
    cut = text[: text.index('"is a"') + 3]  # inside the relation: the entities survive
    ex = parse_json(cut, TYPES)
    assert [e["name"] for e in ex.entities] == ["Vec", "vector"] and ex.relations == []
    assert ex.repairs["truncated_json_closed"] == 1
    with pytest.raises(ExtractionParseError) as err:
        parse_json('{"entities": [{"name": "Ve', TYPES)
    assert err.value.raw == '{"entities": [{"name": "Ve'


def test_wrong_shapes_and_infinite_strengths_are_repaired_or_fail_with_the_raw_text():
    ex = parse_json('{"entities": [{"name": "Vec", "type": "concept", "description": "d"}], "relationships": true}', TYPES)
    assert [e["name"] for e in ex.entities] == ["Vec"] and ex.repairs["bad_list_skipped"] == 1
    with pytest.raises(ExtractionParseError) as err:
        parse_json('{"entities": 5}', TYPES)
    assert err.value.raw == '{"entities": 5}'
    text = json.dumps(GOOD_JSON).replace('"strength": 8', '"strength": Infinity')
    assert parse_json(text, TYPES).relations[0]["strength"] == 1
    assert parse_tuples(GOOD_TUPLES.replace("<|>8)", "<|>inf)"), TYPES).relations[0]["strength"] == 1


def test_the_other_format_is_read_when_the_model_mixed_them_up():
    ex = parse_extraction(GOOD_TUPLES, TYPES, "json")
    assert len(ex.entities) == 2 and ex.repairs["other_format"] == 1


# ---------------------------------------------------------------------------------------------
# entity resolution
# ---------------------------------------------------------------------------------------------
def test_normalisation_removes_case_articles_punctuation_plurals_and_owners():
    assert normalize("The Vectors") == normalize("vector") == "vector"
    assert normalize("Rust's ownership", drop_owner=True) == normalize("ownership") == "ownership"
    # a one-word name keeps its case in its key (Send the trait is not send the method); resolution
    # still merges a prose "Ownership" with "ownership" (the test below)
    assert normalize("Ownership") == "Ownership"
    assert normalize("borrow-checker") == normalize("the Borrow Checker")


def test_rusts_ownership_ownership_and_Ownership_are_one_entity():
    mentions = [Mention("Rust's ownership", "concept", "d1", "c1"), Mention("ownership", "concept", "d2", "c2"),
                Mention("Ownership", "concept", "d3", "c3"), Mention("borrowing", "concept", "d4", "c3")]
    entities, _, rules = resolve(mentions)
    (own,) = [e for e in entities if e.title.lower() == "ownership"]
    assert sorted(own.aliases + [own.title]) == ["Ownership", "Rust's ownership", "ownership"]
    assert own.text_unit_ids == ["c1", "c2", "c3"] and own.descriptions == ["d1", "d2", "d3"]
    assert len(entities) == 2 and rules["possessive"] == 1


def test_resolution_precision_and_recall_on_the_hand_labelled_fixture():
    mentions = [Mention(n, t, "", f"c{i}") for i, (n, t, _) in enumerate(MENTIONS)]
    entities, key_to_id, _ = resolve(mentions, threshold=90)
    predicted = {f"{n}|{t}": key_to_id[normalize(n)] for n, t, _ in MENTIONS}
    gold = {f"{n}|{t}": g for n, t, g in MENTIONS}
    precision, recall = pairwise_scores(predicted, gold)
    print(f"\nentity resolution on {len(MENTIONS)} mentions: precision {precision:.3f}, recall {recall:.3f}")
    assert precision == 1.0 and recall >= 0.95
    assert len(entities) >= len(set(gold.values())) - 1
    # distinct entities with similar names stay apart
    for a, b in (("String", "string slice"), ("Vec", "VecDeque"), ("borrowing", "borrow checker"),
                 ("Mozilla", "Mozilla Research"), ("Option enum", "Option<T>"), ("HashMap", "HashSet")):
        assert key_to_id[normalize(a)] != key_to_id[normalize(b)], (a, b)


def test_resolution_does_not_depend_on_the_order_of_the_mentions():
    mentions = [Mention(n, t, "", f"c{i}") for i, (n, t, _) in enumerate(MENTIONS)]
    first, _, _ = resolve(mentions)
    second, _, _ = resolve(list(reversed(mentions)))
    assert [(e.id, e.title, e.aliases) for e in first] == [(e.id, e.title, e.aliases) for e in second]


# ---------------------------------------------------------------------------------------------
# communities
# ---------------------------------------------------------------------------------------------
def _toy_graph(n_clusters: int = 4, size: int = 6):
    from synth_tasks.methods.knowledge_graph.graph import to_networkx

    ents, rels = [], []
    for c in range(n_clusters):
        for i in range(size):
            ents.append({"id": f"n{c}_{i}", "title": f"N{c}_{i}", "type": "concept", "description": "",
                         "aliases": [], "text_unit_ids": [f"chunk{c}_{i % 3}"]})
        for i in range(size):
            for j in range(i + 1, size):
                if (i + j) % 2 or j == i + 1:
                    rels.append({"id": f"r{c}_{i}_{j}", "source_id": f"n{c}_{i}", "target_id": f"n{c}_{j}",
                                 "description": "", "weight": 1.0 + (i * j) % 3,
                                 "text_unit_ids": [f"chunk{c}_{i % 3}", f"chunk{c}_{j % 3}"]})
        rels.append({"id": f"bridge{c}", "source_id": f"n{c}_0", "target_id": f"n{(c + 1) % n_clusters}_1",
                     "description": "", "weight": 0.5, "text_unit_ids": [f"chunk{c}_0"]})
    return to_networkx(ents, rels)


def test_communities_are_identical_across_two_runs_with_the_same_seed():
    from synth_tasks.methods.knowledge_graph.graph import communities

    g = _toy_graph()
    first = communities(g, max_cluster_size=4, seed=7)
    second = communities(_toy_graph(), max_cluster_size=4, seed=7)
    assert first == second and len(first) >= 4
    assert {c["level"] for c in first} >= {0, 1}  # clusters over 4 entities were split again
    assert all(set(c["entity_ids"]) >= {e for k in c["children"] for x in first if x["community"] == k
                                         for e in x["entity_ids"]} for c in first)


# ---------------------------------------------------------------------------------------------
# paths and the path-QA rules
# ---------------------------------------------------------------------------------------------
def _chain():
    """A - B - C - D, each edge from its own chunk, and X - A - Y with X - Y a shortcut."""
    from synth_tasks.methods.knowledge_graph.graph import to_networkx

    names = {"a": "Ferris", "b": "ownership", "c": "borrow checker", "d": "compiler", "x": "heap", "y": "stack"}
    edges = [("a", "b", "c1"), ("b", "c", "c2"), ("c", "d", "c3"), ("x", "a", "c4"), ("a", "y", "c5"),
             ("x", "y", "c6")]
    ents = [{"id": k, "title": v, "type": "concept", "description": "", "aliases": ["the heap"] if k == "x" else [],
             "text_unit_ids": sorted({c for s, t, c in edges if k in (s, t)})} for k, v in names.items()]
    rels = [{"id": f"{s}{t}", "source_id": s, "target_id": t, "description": f"{names[s]} relates to {names[t]}",
             "weight": 1.0, "text_unit_ids": [c]} for s, t, c in edges]
    return to_networkx(ents, rels)


def _job(g, path, chunks, last_chunk_text, evidence=None):
    """A planned path job on graph ``g``: each hop's type the first its relation reads, its evidence
    the relation's description unless given."""
    from synth_tasks.methods.knowledge_graph.paths import names_of, typed_edges

    typed = typed_edges(g)
    return {"path": path, "path_names": [names_of(g, n) for n in path], "hop_chunk_ids": chunks,
            "last_chunk_text": last_chunk_text,
            "hop_types": [sorted(typed[(a, b)])[0] for a, b in zip(path, path[1:])],
            "hop_evidence": evidence or [g.edges[a, b]["description"] for a, b in zip(path, path[1:])]}


def _check(job, question, g=None):
    from synth_tasks.methods.knowledge_graph.paths import check_path_qa, typed_edges

    return check_path_qa(job, question, g, typed_edges(g) if g is not None else None)


GOOD_QUESTION = "Which part of Rust enforces the rules that Ferris follows?"
LAST_CHUNK = "Ownership rules are checked by the borrow checker."


def test_a_question_that_follows_every_hop_is_kept():
    g = _chain()
    job = _job(g, ["a", "b", "c"], ["c1", "c2"], LAST_CHUNK)
    assert job["hop_types"] == ["relates to", "relates to"]
    assert _check(job, GOOD_QUESTION, g).keep


@pytest.mark.parametrize("question, reason", [
    ("Which part of Rust enforces the rules?", "start_missing"),
    ("Which part of Rust enforces ownership for Ferris?", "bridge_in_question"),
    ("Does the borrow checker check what Ferris follows?", "answer_in_question"),
    ("Which tool of Ferris enforces these rules at compile time in every Rust program?", "evidence_in_question"),
])
def test_each_path_rule_rejects_with_its_reason(question, reason):
    g = _chain()
    evidence = ["Ferris relates to ownership.",
                "The borrow checker enforces these rules at compile time in every Rust program."]
    job = _job(g, ["a", "b", "c"], ["c1", "c2"], LAST_CHUNK, evidence)
    verdict = _check(job, question, g)
    assert not verdict.keep and verdict.reason.startswith(reason + ": "), verdict.reason


def test_a_question_is_composed_from_one_hop_pieces():
    """The quality model asked for a whole chain wrote one-hop questions about the last fact (11 of
    18 did not name the start). Each clue replaces the entity it describes, from the last hop back:
    the start stays named, the bridges and the answer do not."""
    from synth_tasks.methods.knowledge_graph.paths import compose_question, path_steps

    names = [["s"], ["String", "String type"], ["heap"]]
    question, problem = compose_question(names, ["The type that the variable s is an instance of."],
                                         "Where are the contents of a `String` stored?")
    assert problem is None
    assert question == "Where are the contents of the type that the variable s is an instance of stored?"
    names = [["Mozart"], ["The Magic Flute"], ["Vienna"], ["Austria"]]
    question, problem = compose_question(names, ["the opera that Mozart composed",
                                                 "the city where The Magic Flute premiered"],
                                         "Which country has Vienna as its capital")
    assert (question, problem) == ("Which country has the city where the opera that Mozart composed premiered as "
                                   "its capital?", None)
    assert path_steps(["Mozart", "The Magic Flute", "Vienna"], ["c1", "c2"], ["the opera that Mozart composed"],
                      "In which city did The Magic Flute premiere?") == [
        "[c1] The opera that Mozart composed is The Magic Flute.",
        "[c2] In which city did The Magic Flute premiere? Vienna."]


@pytest.mark.parametrize("clues, question, reason", [
    (["the opera that Mozart composed"], "Where did it premiere?",
     "piece_missing_name: the question does not name 'The Magic Flute'"),
    (["the opera he composed"], "Where did The Magic Flute premiere?",
     "piece_missing_name: clue 1 does not name 'Mozart'"),
    ([], "Where did The Magic Flute premiere?", "piece_count: 0 clues for a 2-hop path (1 wanted)"),
    (["the opera that Mozart composed", "an opera"], "Where did The Magic Flute premiere?",
     "piece_count: 2 clues for a 2-hop path (1 wanted)"),
])
def test_a_piece_that_does_not_name_its_entity_cannot_be_composed(clues, question, reason):
    from synth_tasks.methods.knowledge_graph.paths import compose_question

    assert compose_question([["Mozart"], ["The Magic Flute"], ["Vienna"]], clues, question) == (None, reason)


def test_the_answer_must_be_a_real_name():
    """The issue's answers: "and", "1, 2, 3" and a clause fragment are no entity, even where an
    extractor made them one."""
    from synth_tasks.methods.knowledge_graph.paths import entity_name_problem

    assert entity_name_problem("and") == "is a function word, not a name"
    assert entity_name_problem("1, 2, 3") == "has no word"
    assert entity_name_problem("but instead the new future produced by") == "is a phrase fragment, not a name"
    for name in ("borrow checker", "Rust's ownership", "Vec<T>", "let...else", "i32", "The Rust Book", "Ferris"):
        assert entity_name_problem(name) is None, name


def test_the_answer_must_occur_in_the_last_hops_chunk():
    g = _chain()
    job = _job(g, ["a", "b", "c"], ["c1", "c2"], "Ownership has three rules.")
    verdict = _check(job, GOOD_QUESTION, g)
    assert verdict.reason == "answer_not_in_chunk: 'borrow checker' does not occur in the last hop's chunk c2"


def _typed_graph(edges: list[tuple[str, str, str]]):
    """A graph whose entity ids are their titles; edges (a, b, description), each from its own chunk."""
    from synth_tasks.methods.knowledge_graph.graph import to_networkx

    names = sorted({x for a, b, _ in edges for x in (a, b)})
    ents = [{"id": n, "title": n, "type": "concept", "description": "", "aliases": [],
             "text_unit_ids": [f"k{i}" for i, e in enumerate(edges) if n in e[:2]]} for n in names]
    rels = [{"id": f"r{i}", "source_id": a, "target_id": b, "description": d, "weight": 1.0, "text_unit_ids": [f"k{i}"]}
            for i, (a, b, d) in enumerate(edges)]
    return to_networkx(ents, rels)


def test_relation_types_are_the_predicates_of_the_descriptions():
    from synth_tasks.methods.knowledge_graph.paths import GENERIC_RELATION, relation_labels, state_hop

    assert relation_labels("Ownership is enforced by the borrow checker.", ["ownership"], ["borrow checker"]) == (
        {"is enforced by"}, {"is enforced by (reversed)"})
    # read against the sentence's order; plurals and inline code count as the name
    assert relation_labels("`Vec<T>` values are stored on the heaps.", ["heap"], ["Vec<T>"]) == (
        {"values are stored on (reversed)"}, {"values are stored on"})
    # only a connective, or no sentence naming both: the generic type
    assert relation_labels("Vec and HashMap are collections.", ["Vec"], ["HashMap"]) == ({GENERIC_RELATION},) * 2
    assert relation_labels("They are related.", ["Vec"], ["HashMap"]) == ({GENERIC_RELATION},) * 2
    assert state_hop("borrow checker", "is enforced by (reversed)", "ownership") == \
        '"ownership" is enforced by "borrow checker"'


def test_a_path_with_two_reachable_answers_is_not_unique():
    """Ferris owns a box and a vector, and both point to something: "what does what Ferris owns point
    to?" has two answers. A relation of another type makes it one."""
    from synth_tasks.methods.knowledge_graph.paths import reachable, typed_edges

    edges = [("Ferris", "box", "Ferris owns the box."), ("box", "heap", "The box points to the heap."),
             ("Ferris", "vector", "Ferris owns the vector."), ("vector", "buffer", "The vector points to the buffer.")]
    g = _typed_graph(edges)
    typed = typed_edges(g)
    assert reachable(g, typed, "Ferris", ["owns", "points to"]) == {"heap", "buffer"}
    job = _job(g, ["Ferris", "box", "heap"], ["k0", "k1"], "The box points to the heap.")
    question = "What does the thing Ferris owns point to?"
    verdict = _check(job, question, g)
    assert verdict.reason == ("not_unique: 2 entities are reachable from 'Ferris' along owns / points to: "
                              "'buffer', 'heap'")
    edges[2] = ("Ferris", "vector", "Ferris borrows the vector.")
    g = _typed_graph(edges)
    assert _check(_job(g, ["Ferris", "box", "heap"], ["k0", "k1"], "The box points to the heap."), question, g).keep
    # the generic type follows every relation: a vague hop is unique only where the graph is thin
    assert reachable(g, typed_edges(g), "Ferris", ["related to", "points to"]) == {"heap", "buffer"}


def test_the_bridge_check_matches_entity_names_never_chunk_ids():
    """The issue: 9 of 10 bridge_in_question rejections came from a chunk id (ch15-04-rc.md) that
    contains a bridge's name (Rc)."""
    g = _typed_graph([("Ferris", "Rc", "Ferris uses Rc."), ("Rc", "heap", "Rc allocates on the heap.")])
    chunks = ["ch15-04-rc.md#3", "ch15-04-rc.md#4"]
    job = _job(g, ["Ferris", "Rc", "heap"], chunks, "Rc allocates on the heap.")
    question = "Where does the pointer type Ferris uses allocate (see ch15-04-rc.md#3, ch15-04-rc.md)?"
    assert _check(job, question, g).keep
    question = "Where does the Rc that Ferris uses allocate?"
    assert _check(job, question, g).reason == "bridge_in_question: names 'rc', the bridge entity 'Rc'"


def test_a_path_with_a_shortcut_edge_is_not_multi_hop():
    from synth_tasks.methods.knowledge_graph.paths import shortcut

    g = _chain()
    assert shortcut(g, ["x", "a", "y"]) == ("x", "y") and shortcut(g, ["a", "b", "c", "d"]) is None
    job = _job(g, ["x", "a", "y"], ["c4", "c5"], "The stack is fast.")
    question = "What is near the heap?"
    assert _check(job, question, g).reason.startswith("shortcut_edge: 'heap' and 'stack'")
    # an alias of a bridge counts as naming it (y - x - a: x, "heap", is the bridge, alias "the heap")
    job = _job(g, ["y", "x", "a"], ["c6", "c4"], "Ferris owns it.")
    question = "What owns what the heap stores for the stack?"
    assert _check(job, question).reason == "bridge_in_question: names 'the heap', the bridge entity 'heap'"
    # and so does its plural
    question = "What owns what heaps store for the stack?"
    assert _check(job, question).reason == "bridge_in_question: names 'heap', the bridge entity 'heap'"
    question = "Who owns what is stored for the stack?"
    assert _check(job, question).keep


def test_paths_never_walk_through_an_entity_that_is_no_name():
    from synth_tasks.methods.knowledge_graph.paths import sample_paths, typed_edges

    g = _typed_graph([("Ferris", "and", "Ferris and friends."), ("and", "heap", "x and heap."),
                      ("Ferris", "box", "Ferris owns the box."), ("box", "heap", "The box points to the heap.")])
    paths = sample_paths(g, 2, 5, seed=0, chunk_doc={}, typed=typed_edges(g), require_unique=True, excluded={"and"})
    assert paths and all("and" not in p["path"] for p in paths)
    (p,) = paths
    assert p["path"] == ["Ferris", "box", "heap"] and p["labels"] == ["owns", "points to"]
    assert p["reachable"] == ["heap"] and p["good"] and p["chunks"] == ["k2", "k3"]


def test_a_path_whose_hops_one_chunk_holds_is_not_sampled():
    """A - B from {c1, c2}, B - C from {c2, c3}: c1 and c3 are distinct, but c2 alone answers it."""
    from synth_tasks.methods.knowledge_graph.graph import to_networkx
    from synth_tasks.methods.knowledge_graph.paths import sample_paths

    ents = [{"id": k, "title": k, "type": "concept", "description": "", "aliases": [], "text_unit_ids": ["c2"]}
            for k in "abc"]
    rels = [{"id": "ab", "source_id": "a", "target_id": "b", "description": "", "weight": 1.0, "text_unit_ids": ["c1", "c2"]},
            {"id": "bc", "source_id": "b", "target_id": "c", "description": "", "weight": 1.0, "text_unit_ids": ["c2", "c3"]}]
    g = to_networkx(ents, rels)
    assert sample_paths(g, 2, 5, seed=0, chunk_doc={}) == []
    rels[1]["text_unit_ids"] = ["c3"]
    assert [p["path"] for p in sample_paths(to_networkx(ents, rels), 2, 5, seed=0, chunk_doc={})] == [["a", "b", "c"]]


def test_personalized_pagerank_converges_on_tiny_graphs():
    import networkx as nx

    from synth_tasks.methods.knowledge_graph.retrieval import personalized_pagerank

    # 100 iterations (networkx's default) raised PowerIterationFailedConvergence on both
    for g, seed, other in ((nx.path_graph(3), 0, 2), (nx.star_graph(3), 1, 2)):
        nx.set_edge_attributes(g, 1.0, "weight")
        scores = personalized_pagerank(g, [seed])
        assert abs(sum(scores.values()) - 1) < 1e-6 and scores[seed] > scores[other]


def test_sampled_paths_take_their_hops_from_different_chunks_and_report_shortcuts():
    from synth_tasks.methods.knowledge_graph.paths import sample_paths

    g = _chain()
    docs = {"c1": "d1", "c2": "d2", "c3": "d1", "c4": "d3", "c5": "d3", "c6": "d3"}
    paths = sample_paths(g, 2, 10, seed=0, chunk_doc=docs)
    assert paths and all(len(set(p["chunks"])) == 2 and len(p["path"]) == 3 for p in paths)
    assert any(p["shortcut"] is not None for p in paths) and paths[0]["shortcut"] is None
    assert paths == sample_paths(g, 2, 10, seed=0, chunk_doc=docs)
    assert all(len(p["path"]) == 4 for p in sample_paths(g, 3, 10, seed=0, chunk_doc=docs))


def test_local_retrieval_ranks_the_chunks_near_the_seed_entities_first():
    from synth_tasks.methods.knowledge_graph.retrieval import local_chunks, mentions, name_index

    g = _chain()
    seeds = mentions("How does Ferris relate to the heap?", name_index(g))
    assert seeds == ["x", "a"]  # "the heap" is an alias of heap; longest forms first
    top = [c for c, _ in local_chunks(g, ["d"], 2)]
    assert top == ["c3", "c2"]


# ---------------------------------------------------------------------------------------------
# the method through the stage runner
# ---------------------------------------------------------------------------------------------
def test_config_checks():
    base = {"input_path": "x"}
    with pytest.raises(ConfigError, match="chunk_overlap"):
        parse_config(KnowledgeGraphConfig, base | {"chunk_tokens": 200, "chunk_overlap": 150})
    with pytest.raises(ConfigError, match="path_hops"):
        parse_config(KnowledgeGraphConfig, base | {"path_hops": [4]})
    with pytest.raises(ConfigError, match="gleaning_rounds"):
        parse_config(KnowledgeGraphConfig, base | {"gleaning_rounds": -1})


def test_gleaning_defaults_to_one_round_except_on_the_embedded_model():
    from synth_tasks.llm.embedded import SMOLLM2
    from synth_tasks.methods.knowledge_graph.stages import gleaning_rounds

    cfg = parse_config(KnowledgeGraphConfig, {"input_path": "x"})
    real = EndpointConfig(base_url="http://vllm:8000/v1", model="Qwen/Qwen2.5-7B-Instruct")
    embedded = EndpointConfig(base_url="http://127.0.0.1:1/v1", model=SMOLLM2.alias)
    assert (gleaning_rounds(cfg, real), gleaning_rounds(cfg, embedded)) == (1, 0)
    cfg = parse_config(KnowledgeGraphConfig, {"input_path": "x", "gleaning_rounds": 2})
    assert (gleaning_rounds(cfg, real), gleaning_rounds(cfg, embedded)) == (2, 2)


def test_chunks_overlap_by_the_configured_tokens():
    from synth_tasks.methods.knowledge_graph.stages import chunk_document
    from synth_tasks.text.tokens import count_tokens

    text = "\n\n".join(f"Paragraph {i} says that vectors store values of one type next to each other." * 3
                       for i in range(30))
    chunks = chunk_document(text, 200, 40)
    assert len(chunks) > 3 and all(n <= 200 + 5 for _, n in chunks)
    assert chunks[1][0].split("\n\n", 1)[0].strip() in chunks[0][0]
    assert all(count_tokens(c.split("\n\n", 1)[0]) <= 41 for c, _ in chunks[1:])


def _run(tmp_path, cfg_values, server=None, input_url=None):
    from synth_tasks.storage import Store

    structured = cfg_values.pop("_structured", "json_schema")
    cfg = parse_config(KnowledgeGraphConfig, {"input_path": "unused", "train_ratio": 1.0} | cfg_values)
    endpoint = EndpointConfig(base_url=server.base_url, model="fault-model", api_key=SecretStr("k"),
                              structured_output=structured) if server else None
    layout = RunLayout(Store(f"file://{tmp_path}/stage"), "knowledge_graph", "p1")
    results = run_method(METHOD, cfg, layout, input_url or f"file://{DOCS}",
                         endpoint_for=(lambda _: endpoint) if server else None,
                         run_info={"run_id": "p1", "run_timestamp": "2026-01-01_00-00-00"})
    summary = layout.store.read_json(results["export"]["summary"])
    final = [json.loads(line) for k in ("train_jsonl", "validation_jsonl")
             for line in layout.store.read_bytes(summary["outputs"][k]).decode().splitlines()]
    return layout, summary, final


def _splits(layout, summary) -> tuple[list[dict], list[dict]]:
    return tuple([json.loads(line) for line in layout.store.read_bytes(summary["outputs"][k]).decode().splitlines()]
                 for k in ("train_jsonl", "validation_jsonl"))


def _ledger(layout, stage):
    return [r for url in layout.store.glob(f"{layout.base}/_ledger/{stage}/*.parquet") for r in layout.store.read_parquet(url)]


def test_the_llm_path_end_to_end_on_a_scripted_endpoint(tmp_path, fault_server):
    fault_server.responder = reply
    layout, summary, final = _run(tmp_path, {"chunk_tokens": 300, "chunk_overlap": 50, "paths_per_length": 4,
                                             "max_reports": 4, "train_ratio": 0.5}, fault_server)
    assert summary["accounted_for"], summary["problems"]
    stages = summary["stages"]
    extract = stages["extract"]
    assert extract["input"] == stages["prepare"]["produced"] >= 8
    # a chunk the scripted extraction finds no entity in fails its schema (minItems 1): failed with its raw text
    assert extract["kept"] >= 0.8 * extract["input"] and set(extract["error_kinds"]) <= {"unparseable_extraction"}
    graph = summary["info"]["graph"]
    assert graph["entities"] > 20 and graph["relationships"] > 10 and graph["communities"] >= 2
    assert summary["info"]["extraction_format"] == "json"
    requests = [r["messages"][0]["content"] for r in fault_server.requests]
    assert any(p.startswith("Read the text below") for p in requests)
    assert stages["report"]["kept"] >= 1 and stages["report"]["counts"]["unknown_ref"] >= 1
    kinds = {r["kind"] for r in final}
    assert kinds == {"multi_hop", "global"}, stages["check"]
    for r in final:
        assert r["question"] and r["answer"] and r["model"] == "fault-model" and r["source_document"]
        assert len(r["local_context"]) <= 5 and 1 <= len(r["global_context"]) <= 4
        if r["kind"] == "multi_hop":
            assert len(r["path"]) == r["hops"] + 1 == len(r["chunk_ids"]) + 1 == len(r["reasoning_steps"]) + 1
            assert all(s.startswith(f"[{c}] ") for s, c in zip(r["reasoning_steps"], r["chunk_ids"]))
            assert len(set(r["chunk_ids"])) == r["hops"]
            # the question asks along the path's relation types, whose only end is the answer
            assert len(r["relation_types"]) == len(r["evidence"]) == r["hops"] and r["end_candidates"] == 1
            assert r["answer"] == r["path_titles"][-1] and r["text"].startswith(r["question"])
        else:
            assert r["supporting_entity_ids"]
    # every chunk lies on one side of the split (the issue: validation questions shared hop chunks
    # with training ones)
    train, validation = _splits(layout, summary)
    assert train and validation
    assert not {c for r in train for c in r["chunk_ids"]} & {c for r in validation for c in r["chunk_ids"]}
    assert not {r["split_group"] for r in train} & {r["split_group"] for r in validation}
    # every rejection has a "kind: detail" reason
    for stage in ("plan", "check"):
        for row in _ledger(layout, stage):
            assert row["outcome"] != "filtered" or ": " in row["reason"]
    # the graph files are in final/graph/ with GraphRAG's columns
    base = f"{layout.base}/final/graph"
    ents = layout.store.read_parquet(f"{base}/entities.parquet")
    assert {"id", "human_readable_id", "title", "type", "description", "text_unit_ids", "frequency", "degree",
            "aliases"} <= set(ents[0])
    rels = layout.store.read_parquet(f"{base}/relationships.parquet")
    assert {"id", "source", "target", "description", "weight", "combined_degree", "text_unit_ids"} <= set(rels[0])
    comms = layout.store.read_parquet(f"{base}/communities.parquet")
    assert {"community", "level", "parent", "children", "entity_ids", "relationship_ids", "size"} <= set(comms[0])
    reports = layout.store.read_parquet(f"{base}/community_reports.parquet")
    assert {"community", "title", "summary", "full_content", "rank", "findings", "full_content_json"} <= set(reports[0])
    assert layout.store.read_bytes(f"{base}/graph.graphml").startswith(b"<?xml")


def test_the_tuple_format_when_the_endpoint_takes_the_schema_only_in_the_prompt(tmp_path, fault_server):
    fault_server.responder = reply
    layout, summary, final = _run(tmp_path, {"chunk_tokens": 400, "chunk_overlap": 50, "max_chunks": 4,
                                             "paths_per_length": 2, "max_reports": 2, "gleaning_rounds": 1,
                                             "_structured": "prompt"}, fault_server)
    assert summary["accounted_for"], summary["problems"]
    assert summary["info"]["extraction_format"] == "tuples"
    extract = summary["stages"]["extract"]
    assert extract["kept"] + extract["failed"] + extract["filtered"] == 4 and extract["kept"] >= 3
    assert extract["counts"]["repair_prose_skipped"] >= 3  # "Here are the records:" before each answer
    gleaned = [r for r in fault_server.requests if r["messages"][-1]["content"].startswith("MANY entities")]
    assert len(gleaned) == 4
    assert summary["info"]["graph"]["entities"] > 5


def test_an_unparseable_extraction_fails_its_chunk_with_the_raw_answer(tmp_path, fault_server):
    fault_server.responder = lambda body: ("I cannot do that." if body["messages"][0]["content"].startswith("-Goal-")
                                           else reply(body))
    layout, summary, _ = _run(tmp_path, {"chunk_tokens": 400, "chunk_overlap": 0, "max_chunks": 2,
                                         "extraction_format": "tuples"}, fault_server)
    assert summary["accounted_for"]
    rows = _ledger(layout, "extract")
    assert [r["outcome"] for r in rows] == ["failed", "failed"]
    assert all(r["error"].startswith("unparseable_extraction: ") and r["raw_response"] == "I cannot do that."
               for r in rows)


def test_no_llm_mode_is_deterministic_and_publishes_graph_walks_not_questions(tmp_path):
    values = {"no_llm": True, "chunk_tokens": 300, "chunk_overlap": 50, "paths_per_length": 5, "max_reports": 5,
              "train_ratio": 0.5}
    layout, summary, final = _run(tmp_path / "a", dict(values))
    assert summary["accounted_for"] and final
    assert summary["models"] == []
    assert {r["kind"] for r in final} == {"graph_walk", "global"}
    for r in final:
        if r["kind"] == "graph_walk":  # a path is a retrieval record, never a template question
            assert r["question"] is None and r["answer"] is None and r["messages"] == [] and r["reasoning_steps"] == []
            assert len(r["relation_types"]) == len(r["chunk_ids"]) == len(r["evidence"]) == r["hops"]
            assert all(f"[{c}] " in r["text"] for c in r["chunk_ids"]) and r["path_titles"][0] in r["text"]
            assert r["local_context"] and r["split_group"].startswith("chunks-")
    assert summary["outputs"]["card"]  # the card measures the text field every record has
    _, _, again = _run(tmp_path / "b", dict(values))
    assert [r["text"] for r in final] == [r["text"] for r in again]
    a = layout.store.read_parquet(f"{layout.base}/final/graph/communities.parquet")
    b = layout.store.read_parquet(f"file://{tmp_path}/b/stage/knowledge_graph/p1/final/graph/communities.parquet")
    assert a == b


def test_split_groups_join_records_that_share_a_chunk():
    from synth_tasks.methods.knowledge_graph.stages import with_split_groups

    records = [{"id": "p1", "chunk_ids": ["d2#1", "d1#4"], "split_group": None},
               {"id": "p2", "chunk_ids": ["d3#0", "d2#1"], "split_group": None},
               {"id": "p3", "chunk_ids": ["d4#2", "d3#0"], "split_group": None},
               {"id": "p4", "chunk_ids": ["d5#0", "d6#0"], "split_group": None},
               {"id": "g1", "chunk_ids": [], "split_group": "community-3"}]
    groups = {r["id"]: r["split_group"] for r in with_split_groups(records)}
    assert groups == {"p1": "chunks-d1#4", "p2": "chunks-d1#4", "p3": "chunks-d1#4", "p4": "chunks-d5#0",
                      "g1": "community-3"}
    assert groups == {r["id"]: r["split_group"] for r in with_split_groups(list(reversed(records)))}


# GraphRAG's documented output tables (docs/index/outputs.md and graphrag/data_model/schemas.py of
# GraphRAG 3.1): columns in order, with the types the docs give. Transcribed here rather than taken
# from the method, so that the files are checked against the docs.
GRAPHRAG_DOCUMENTED = {
    "entities": "id str, human_readable_id int, title str, type str, description str, text_unit_ids str[], "
                "frequency int, degree int",
    "relationships": "id str, human_readable_id int, source str, target str, description str, weight float, "
                     "combined_degree int, text_unit_ids str[]",
    "communities": "id str, human_readable_id int, community int, level int, parent int, children int[], title str, "
                   "entity_ids str[], relationship_ids str[], text_unit_ids str[], period str, size int",
    "community_reports": "id str, human_readable_id int, community int, level int, parent int, children int[], "
                         "title str, summary str, full_content str, rank float, rating_explanation str, "
                         "findings dict[], full_content_json str, period str, size int",
    "text_units": "id str, human_readable_id int, text str, n_tokens int, document_id str, entity_ids str[], "
                  "relationship_ids str[], covariate_ids str[]",
}


def _graphrag_type(doc_type: str):
    import pyarrow as pa

    finding = pa.struct([("summary", pa.string()), ("explanation", pa.string())])
    return {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "str[]": pa.list_(pa.string()),
            "int[]": pa.list_(pa.int64()), "dict[]": pa.list_(finding)}[doc_type]


def _assert_graphrag_tables(store, folder: str) -> dict[str, list[dict]]:
    """Every table in ``folder`` starts with GraphRAG's documented columns and types; returns the rows."""
    import io

    import pyarrow.parquet as pq

    from synth_tasks.methods.knowledge_graph.graph import graphrag_schema

    rows = {}
    for table, spec in GRAPHRAG_DOCUMENTED.items():
        want = [(name, _graphrag_type(t)) for name, t in (col.split() for col in spec.split(", "))]
        schema = pq.read_schema(io.BytesIO(store.read_bytes(f"{folder}/{table}.parquet")))
        assert [(f.name, f.type) for f in schema][:len(want)] == want, (table, schema)
        assert [(f.name, f.type) for f in graphrag_schema(table)] == want, table  # the method's one place
        rows[table] = store.read_parquet(f"{folder}/{table}.parquet")
    return rows


def test_the_graph_files_have_graphrags_documented_schema(tmp_path):
    import re

    layout, summary, _ = _run(tmp_path, {"no_llm": True, "chunk_tokens": 300, "chunk_overlap": 50, "max_reports": 5})
    rows = _assert_graphrag_tables(layout.store, f"{layout.base}/final/graph")
    assert all(rows[t] for t in GRAPHRAG_DOCUMENTED)
    for table in ("communities", "community_reports"):
        for r in rows[table]:
            assert r["human_readable_id"] == r["community"]  # GraphRAG: the community number
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["period"])  # the ingest date, ISO 8601
    for r in rows["community_reports"]:
        assert r["findings"] and all(set(f) == {"summary", "explanation"} and f["summary"] for f in r["findings"])
        assert json.loads(r["full_content_json"])["findings"][0]["relationship_ids"]  # the grounding stays
    for u in rows["text_units"]:
        assert u["covariate_ids"] == [] and u["document_ids"] == [u["document_id"]]
    # a dated partition (a scheduled run's data interval) is the period
    from synth_tasks.methods.knowledge_graph.graph import ingest_period

    assert ingest_period("2026-03-04") == "2026-03-04" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", ingest_period("run-x"))


def test_empty_graph_tables_keep_their_columns(tmp_path):
    """The issue: a run with no relation wrote relationships, communities and community_reports with
    no columns at all."""
    from synth_tasks.storage import Store

    store = Store(f"file://{tmp_path}/in")
    store.write_bytes(f"file://{tmp_path}/in/one.md", b"We like Rust a lot here.\n\nThey use Cargo every day.\n")
    layout, summary, final = _run(tmp_path, {"no_llm": True}, input_url=f"file://{tmp_path}/in")
    assert summary["accounted_for"] and final == []
    rows = _assert_graphrag_tables(layout.store, f"{layout.base}/final/graph")
    assert rows["relationships"] == rows["communities"] == rows["community_reports"] == []
    assert rows["text_units"]


def test_the_papers_extraction_is_read_one_paper_per_document(tmp_path):
    from synth_tasks.storage import Store

    blocks = [{"paper_id": "p1", "block_id": "b0", "kind": "title", "level": None, "section_path": ["Front matter"],
               "text": "Graph Retrieval"},
              {"paper_id": "p1", "block_id": "b1", "kind": "heading", "level": 1, "section_path": ["Intro"],
               "text": "Introduction"},
              {"paper_id": "p1", "block_id": "b2", "kind": "paragraph", "level": None, "section_path": ["Intro"],
               "text": "We combine Leiden communities with PageRank. Leiden improves on Louvain."},
              {"paper_id": "p1", "block_id": "b3", "kind": "reference", "level": None, "section_path": ["References"],
               "text": "[1] Traag et al. From Louvain to Leiden."}]
    store = Store(f"file://{tmp_path}/in")
    store.write_parquet(f"file://{tmp_path}/in/publish/p1/papers.parquet", blocks)
    store.write_bytes(f"file://{tmp_path}/in/publish/p1/paper.md", b"# Graph Retrieval\n\nThe same paper.")
    layout, summary, _ = _run(tmp_path, {"no_llm": True}, input_url=f"file://{tmp_path}/in/publish")
    chunks = layout.store.read_parquet(f"{layout.base}/prepare/part-00000.parquet")
    assert [c["document"] for c in chunks] == ["p1"]
    assert "# Introduction" in chunks[0]["text"] and "Traag" not in chunks[0]["text"]
    assert summary["stages"]["prepare"]["counts"]["papers"] == 1
    assert summary["stages"]["prepare"]["filter_reasons"] == {"duplicate_document": 1}  # its paper.md


def test_global_retrieval_ranks_the_report_about_the_question_first():
    from synth_tasks.methods.knowledge_graph.retrieval import global_reports

    reports = [{"community": 1, "title": "Vectors and their methods", "summary": "Vec stores values.",
                "findings": json.dumps([{"summary": "push adds an element"}]), "rank": 5.0},
               {"community": 2, "title": "Ownership and borrowing", "summary": "References borrow values.",
                "findings": json.dumps([{"summary": "the borrow checker enforces the rules"}]), "rank": 9.0}]
    top = global_reports(reports, "What does the borrow checker enforce about references?", 1)
    assert [r["community"] for r in top] == [2]
    assert [r["community"] for r in global_reports(reports, "How do I push onto a Vec?", 1)] == [1]


def test_entities_not_in_their_chunk_are_dropped_with_their_relations():
    """SmolLM2-135M answered the prompt's own example (Cargo, Rust, crate) for a chunk about vectors."""
    from synth_tasks.methods.knowledge_graph.parse import ground_in_chunk

    chunk = "Vectors allow you to store more than one value. `Vec<T>` is provided by the standard library."
    ex = parse_json(json.dumps({
        "entities": [{"name": "Vec<T>", "type": "technology", "description": "x"},
                     {"name": "vectors", "type": "concept", "description": "y"},
                     {"name": "Cargo", "type": "technology", "description": "copied from the example"}],
        "relationships": [{"source": "Vec<T>", "target": "vectors", "description": "is", "strength": 5},
                          {"source": "Cargo", "target": "vectors", "description": "invented", "strength": 9}]}), TYPES)
    ground_in_chunk(ex, chunk, 90)
    assert [e["name"] for e in ex.entities] == ["Vec<T>", "vectors"] and len(ex.relations) == 1
    assert ex.repairs["entity_not_in_chunk"] == 1 and ex.repairs["relation_end_not_in_chunk"] == 1


def test_raw_line_breaks_inside_json_strings_are_accepted():
    text = '{"entities": [{"name": "Vec", "type": "technology", "description": "A list\n of values"}], "relationships": []}'
    assert parse_json(text, TYPES).entities[0]["description"] == "A list of values"
