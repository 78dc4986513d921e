"""A hand-labelled entity-resolution fixture: entity mentions as a small model extracts them from
chunks of the Rust book, each with the entity it really is (gold cluster). Written by hand: the
surface forms vary in case, articles, plurals, possessives, spacing and typos; distinct entities
with similar names (String / string slice, Vec / VecDeque, HashMap / HashSet, borrowing / borrow
checker) must stay apart. Where the book uses two names for one thing (HashMap, hash map), they are
one entity."""

MENTIONS = [
    # (name, type, gold entity)
    ("Rust's ownership", "concept", "ownership"),
    ("ownership", "concept", "ownership"),
    ("Ownership", "concept", "ownership"),
    ("the ownership", "concept", "ownership"),
    ("ownership", "technology", "ownership"),  # typed differently in another chunk
    ("borrow checker", "technology", "borrow checker"),
    ("Borrow Checker", "technology", "borrow checker"),
    ("the borrow checker", "technology", "borrow checker"),
    ("borrow-checker", "technology", "borrow checker"),
    ("borrowing", "concept", "borrowing"),
    ("Borrowing", "concept", "borrowing"),
    ("String", "technology", "String"),
    ("Strings", "technology", "String"),
    ("string slice", "concept", "string slice"),
    ("string slices", "concept", "string slice"),
    ("Vec", "technology", "Vec"),
    ("VecDeque", "technology", "VecDeque"),
    ("vector", "concept", "vector"),
    ("vectors", "concept", "vector"),
    ("Vectors", "concept", "vector"),
    ("hash map", "concept", "hash map"),
    ("hashmap", "concept", "hash map"),
    ("hash maps", "concept", "hash map"),
    ("HashMap", "technology", "hash map"),  # the type the book names the concept by: one entity
    ("HashSet", "technology", "HashSet"),
    ("Cargo", "technology", "Cargo"),
    ("cargo", "technology", "Cargo"),
    ("Cargo's build system", "technology", "build system"),
    ("build system", "technology", "build system"),
    ("crate", "concept", "crate"),
    ("crates", "concept", "crate"),
    ("Crates.io", "organization", "crates.io"),
    ("crates.io", "organization", "crates.io"),
    ("enum", "concept", "enum"),
    ("enums", "concept", "enum"),
    ("Option enum", "technology", "Option enum"),
    ("the Option enum", "technology", "Option enum"),
    ("Option<T>", "technology", "Option<T>"),
    ("Result", "technology", "Result"),
    ("if let", "concept", "if let"),
    ("If let", "concept", "if let"),
    ("match expression", "concept", "match expression"),
    ("match expressions", "concept", "match expression"),
    ("pattern matching", "concept", "pattern matching"),
    ("patern matching", "concept", "pattern matching"),  # a typo
    ("Mozilla", "organization", "Mozilla"),
    ("Mozilla Research", "organization", "Mozilla Research"),
    ("Rust", "technology", "Rust"),
    ("Rust compiler", "technology", "Rust compiler"),
    ("the Rust compiler", "technology", "Rust compiler"),
    ("heap", "concept", "heap"),
    ("the heap", "concept", "heap"),
    ("stack", "concept", "stack"),
    ("the stack", "concept", "stack"),
]


# ---------------------------------------------------------------------------------------------
# no-LLM extraction and resolution scored against a gold list of a whole technical text
# (tests/fixtures/knowledge_graph/*.md with *.gold.json; used by test_knowledge_graph_entities.py
# and bench/bench_knowledge_graph_entities.py)
# ---------------------------------------------------------------------------------------------
import json  # noqa: E402
from pathlib import Path  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "knowledge_graph"
TYPES = ("concept", "technology", "organization", "person", "geo", "event")


def load_fixture(name: str) -> tuple[str, dict]:
    """The text of fixture ``name`` (``rust_concurrency``) and its gold list."""
    return (FIXTURES / f"{name}.md").read_text(), json.loads((FIXTURES / f"{name}.gold.json").read_text())


def extract_and_resolve(text: str, chunk_tokens: int = 600, overlap: int = 100):
    """What no-LLM mode builds from ``text``: its chunks (as the prepare stage cuts them), each
    extracted by co-occurrence, all mentions resolved. Returns (extractions, resolved entities)."""
    from synth_tasks.methods.knowledge_graph.cooccurrence import extract
    from synth_tasks.methods.knowledge_graph.resolve import Mention, resolve
    from synth_tasks.methods.knowledge_graph.stages import chunk_document

    extractions = [extract(chunk, TYPES) for chunk, _ in chunk_document(text, chunk_tokens, overlap)]
    mentions = [Mention(e["name"], e["type"], e["description"], f"c{i:02d}")
                for i, ex in enumerate(extractions) for e in ex.entities]
    entities, _, _ = resolve(mentions)
    return extractions, entities


def score_entities(entities, gold: dict) -> dict:
    """Entity precision (resolved entities with a gold surface form among their title and aliases),
    recall (gold entities some resolved entity names), resolution pairwise precision and recall over
    the gold forms extracted, and the gold pairs that must stay apart but were merged."""
    from synth_tasks.methods.knowledge_graph.resolve import pairwise_scores

    gold_of = {form: g["name"] for g in gold["entities"] for form in g["forms"]}
    entity_of = {form: e.id for e in entities for form in [e.title, *e.aliases]}
    wrong = [e.title for e in entities if not any(f in gold_of for f in [e.title, *e.aliases])]
    found = {gold_of[f] for f in entity_of if f in gold_of}
    predicted = {f: entity_of[f] for f in sorted(entity_of) if f in gold_of}
    res_p, res_r = pairwise_scores(predicted, {f: gold_of[f] for f in predicted})
    merged_apart = [(a, b) for a, b in gold["must_not_merge"] if a in entity_of and b in entity_of
                    and entity_of[a] == entity_of[b]]
    return {"entities": len(entities), "precision": round(1 - len(wrong) / len(entities), 3) if entities else 0.0,
            "recall": round(len(found) / len(gold["entities"]), 3),
            "resolution_precision": round(res_p, 3), "resolution_recall": round(res_r, 3),
            "not_in_gold": sorted(wrong), "missed": sorted({g["name"] for g in gold["entities"]} - found),
            "not_entities_extracted": sorted(set(gold["not_entities"]) & set(entity_of)),
            "must_not_merge_violated": merged_apart}


def score_resolution_rules(gold: dict) -> dict:
    """Resolution alone: every gold surface form as a mention (a code form quoted as code in its
    description, as the extractor's sentence quotes it), pairwise precision and recall against the
    gold entities, and the must-not-merge pairs merged."""
    from synth_tasks.methods.knowledge_graph.resolve import Mention, pairwise_scores, resolve

    mentions, gold_of = [], {}
    for i, g in enumerate(gold["entities"]):
        for form in g["forms"]:
            gold_of[form] = g["name"]
            mentions.append(Mention(form, "technology" if g["code"] else "concept",
                                    f"`{form}` in a sentence" if g["code"] else f"{form} in a sentence", f"g{i:02d}"))
    entities, _, _ = resolve(mentions)
    entity_of = {form: e.id for e in entities for form in [e.title, *e.aliases]}
    precision, recall = pairwise_scores(entity_of, gold_of)
    merged_apart = [(a, b) for a, b in gold["must_not_merge"] if entity_of[a] == entity_of[b]]
    return {"forms": len(gold_of), "precision": round(precision, 3), "recall": round(recall, 3),
            "must_not_merge_violated": merged_apart}
