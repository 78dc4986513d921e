"""The personas method through the stage runner, without Airflow (``run_method``), on a scripted
OpenAI-compatible endpoint whose answers depend only on the request (personas_replies): the hub
and its dedup, the pools, the filters on constructed outputs, and corpus retrieval."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from synth_tasks.config import ConfigError, EndpointConfig, parse_config
from synth_tasks.inputs import InputError
from synth_tasks.methods.personas import METHOD
from synth_tasks.methods.personas import hub as H
from synth_tasks.methods.personas.checks import grounded_in, has_prefix, restates_persona, split_evidence
from synth_tasks.methods.personas.config import PersonasConfig, Template
from synth_tasks.methods.personas.sources import Document, FolderFetcher, PassageIndex
from synth_tasks.methods.personas.stages import HUB_PENDING, NoNewPersonas, check_output
from synth_tasks.pipeline import run_method
from synth_tasks.storage import RunLayout, Store
from tests.conftest import ROOT, SAMPLE
from tests.synth_tasks.methods.personas_replies import SHARED, reply

SAMPLE_URL = f"file://{SAMPLE}"


def _run(store, partition, cfg, input_url, server, until=None):
    endpoint = EndpointConfig(base_url=server.base_url, model="fault-model", api_key=SecretStr("k"))
    layout = RunLayout(store, "personas", partition)
    results = run_method(METHOD, cfg, layout, input_url, endpoint_for=lambda conn_param: endpoint, until=until,
                         run_info={"run_id": partition, "run_timestamp": "2026-01-01_00-00-00"})
    summary = store.read_json(results["export"]["summary"]) if "export" in results else None
    return layout, results, summary


def _stage_records(layout, stage):
    return [r for url in layout.store.glob(f"{layout.base}/{stage}/*.parquet") for r in layout.store.read_parquet(url)]


def _dropped(layout, stage):
    return [r for url in layout.store.glob(f"{layout.base}/_dropped/{stage}/*.parquet")
            for r in layout.store.read_parquet(url)]


def _final(store, export):
    return [json.loads(line) for k in ("train_jsonl", "validation_jsonl")
            for line in store.read_bytes(export[k]).decode().splitlines()]


@pytest.fixture
def personas_server(fault_server):
    fault_server.responder = reply
    return fault_server


# --------------------------------------------------------------------------------------------
# the hub: Text-to-Persona, Persona-to-Persona, dedup, persistence
# --------------------------------------------------------------------------------------------
def test_personas_are_created_expanded_deduplicated_and_the_hub_grows_only_by_new_ones(store, personas_server,
                                                                                        tmp_path):
    cfg = PersonasConfig(source="none", max_personas=2, templates=["math_problem"])
    layout, results, summary = _run(store, "2026-01-01", cfg, SAMPLE_URL, personas_server)
    assert summary["accounted_for"], summary["problems"]
    stages = summary["stages"]
    # 4 texts x 3 personas; each of the 12 gets 2 relations (depth 1): 36 candidates
    assert stages["text_to_persona"]["produced"] == 12
    assert stages["expand"]["created"] == 24 and stages["expand"]["produced"] == 36
    # the persona every text shares (and its 2 relations) is a duplicate in 3 of 4 texts: 9
    assert stages["dedup"]["filter_reasons"] == {"near_duplicate_persona": 9} and stages["dedup"]["kept"] == 27
    dropped = _dropped(layout, "dedup")
    first_shared = min(p["id"] for p in _stage_records(layout, "text_to_persona") if p["description"] == SHARED)
    shared_dups = [d for d in dropped if d["description"] == SHARED]
    assert len(shared_dups) == 3 and {d["duplicate_of"] for d in shared_dups} == {first_shared}
    assert all(d["reason"].startswith(f"near_duplicate_persona: of {d['duplicate_of']} (minhash") for d in dropped)
    info = summary["info"]["personas"]
    assert info == info | {"hub_before": 0, "candidates": 36, "minhash_duplicates": 9, "embedding_duplicates": 0,
                           "new": 27, "hub_after": 27, "duplicate_rate_minhash": 0.25}

    hub = H.read_hub(store)
    assert len(hub) == 27 and {h["created_partition"] for h in hub} == {"2026-01-01"}
    assert {h["created_date"] for h in hub} == {"2026-01-01"} and all(len(h["embedding"]) == 384 for h in hub)
    child = next(h for h in hub if h["depth"] == 1)
    assert child["parent_id"] == child["lineage"][-2] and child["lineage"][0].startswith("text:")
    assert child["root_persona_id"] == child["lineage"][1] and child["relation"] in ("colleague", "client")
    assert store.glob(f"{H.hub_dir(store)}/*") == [H.hub_part(store, "2026-01-01")]

    # Next day, the same texts plus one new one: only the new text's personas (and relations) join.
    extra = tmp_path / "texts.jsonl"
    new_text = {"id": "new_text", "text": "# Queueing Theory\n\nArrivals."}
    extra.write_text(SAMPLE.read_text() + json.dumps(new_text) + "\n")
    _, _, summary2 = _run(store, "2026-01-02", cfg, f"file://{extra}", personas_server)
    info2 = summary2["info"]["personas"]
    # 5 texts -> 15 personas -> 45 candidates; the new text's shared persona and its relations are dups
    assert info2 == info2 | {"hub_before": 27, "candidates": 45, "minhash_duplicates": 39, "new": 6, "hub_after": 33}
    hub2 = H.read_hub(store)
    assert len(hub2) == 33 and {h["id"].split(":")[1] for h in hub2 if h["created_partition"] == "2026-01-02"} == {
        "new_text"}

    # A re-run of the first day replaces its own part and dedups against the rest exactly as before.
    _, _, again = _run(store, "2026-01-01", cfg, SAMPLE_URL, personas_server)
    assert again["info"]["personas"]["new"] == 27 and len(H.read_hub(store)) == 33


def test_the_hub_pool_takes_personas_created_in_the_date_range(store, personas_server, tmp_path):
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"id": "t1", "text": "# Bridges\n\nLoads."}) + "\n")
    two = tmp_path / "two.jsonl"
    two.write_text(json.dumps({"id": "t2", "text": "# Glaciers\n\nIce."}) + "\n")
    base = dict(source="none", templates=["user_instruction"], expand_depth=0, max_personas=100)
    _run(store, "2026-03-01", PersonasConfig(**base), f"file://{one}", personas_server)
    layout, _, summary = _run(store, "2026-03-02", PersonasConfig(**base, pool="hub", hub_from="2026-03-01",
                                                                     hub_to="2026-03-01"), f"file://{two}",
                              personas_server)
    select = summary["stages"]["select"]
    # t1's 3 personas come from the hub (created); t2's 2 new ones (its third is the shared persona,
    # a duplicate of t1's) are outside the range
    assert select == select | {"input": 5, "created": 3, "kept": 3, "filter_reasons": {"outside_date_range": 2}}
    assert {r["persona_id"].split(":")[1] for r in _final(store, summary["outputs"])} == {"t1"}


def test_a_created_date_range_needs_the_hub_pool():
    with pytest.raises(ConfigError, match="pool=hub"):
        parse_config(PersonasConfig, {"hub_from": "2026-01-01"})
    with pytest.raises(ConfigError, match="web_seed_urls"):
        parse_config(PersonasConfig, {"source": "web"})


# --------------------------------------------------------------------------------------------
# dedup thresholds on constructed near-duplicates and near-misses
# --------------------------------------------------------------------------------------------
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
         "romeo sierra tango uniform victor whiskey xray yankee zulu amber basil cedar dune ember fjord grove heath "
         "iris jade kelp lark moss nettle").split()


def test_minhash_over_words_finds_near_duplicates_and_spares_near_misses():
    base = " ".join(WORDS)  # 40 distinct words
    one_changed = " ".join(WORDS[:-1] + ["otter"])  # Jaccard 39/41 = 0.95
    four_changed = " ".join(WORDS[:-4] + ["otter", "pine", "quartz", "reed"])  # Jaccard 36/44 = 0.82
    reordered = " ".join(reversed(WORDS))  # same words: Jaccard 1 (words, not n-grams)
    found = H.minhash_duplicates([base], ["hub-1"], [one_changed, four_changed, reordered], ["a", "b", "c"], 0.9)
    assert [d and (d.of, d.by) for d in found] == [("hub-1", "minhash"), None, ("hub-1", "minhash")]
    # the threshold is the Param: at 0.8 the near-miss is a duplicate too
    assert H.minhash_duplicates([base], ["hub-1"], [four_changed], ["b"], 0.8)[0].of == "hub-1"
    # within a run, a later persona names the earlier one it duplicates
    assert [d and d.of for d in H.minhash_duplicates([], [], [base, one_changed], ["x", "y"], 0.9)] == [None, "x"]


NURSE = "A pediatric nurse who works night shifts in a children's hospital in Lagos."


def test_embedding_cosine_finds_paraphrases_and_spares_near_misses():
    from synth_tasks.quality.diversity import embed

    candidates = ["A pediatric nurse working night shifts at a children's hospital in Lagos.",  # cosine 0.96
                  "A paediatric nurse on the night shift at a Lagos children's hospital.",  # 0.89
                  "A pediatric nurse who works day shifts in a hospital in Nairobi."]  # 0.84
    found = H.embedding_duplicates(embed([NURSE]), ["hub-nurse"], embed(candidates), ["a", "b", "c"], 0.9)
    assert found[0].of == "hub-nurse" and found[0].by == "embedding" and found[0].score >= 0.95
    assert found[1] is None and found[2] is None
    # the near-miss paraphrase passes MinHash too: only the embedding pass could catch it, at a lower threshold
    assert H.minhash_duplicates([NURSE], ["hub-nurse"], candidates[1:2], ["b"], 0.9) == [None]
    at_085 = H.embedding_duplicates(embed([NURSE]), ["hub-nurse"], embed(candidates), ["a", "b", "c"], 0.85)
    assert [d and d.of for d in at_085] == ["hub-nurse", "hub-nurse", None]
    # within a run (empty hub), the later paraphrase names the earlier persona
    within = H.embedding_duplicates(embed([]), [], embed([NURSE, candidates[0], candidates[2]]), ["x", "y", "z"], 0.9)
    assert [d and d.of for d in within] == [None, "x", None]


# --------------------------------------------------------------------------------------------
# prefix, restatement, grounding and decontamination on constructed outputs
# --------------------------------------------------------------------------------------------
PERSONA = "A beekeeper in rural Portugal who sells honey at weekend markets."
SOURCES = [{"ref": "doc.md#p0", "text": "Colonies collapse when varroa mites exceed three per hundred bees in late "
                                        "summer, so beekeepers treat in August."}]


def _output(template, raw, sources=(), messages=None):
    return {"template": template, "raw": raw, "persona": PERSONA, "sources": list(sources), "messages": messages}


def _why(o, decon=None):
    verdict, body, found = check_output(o, PersonasConfig(), decon)
    return (verdict.reason or "kept").split(":")[0], body, found


def test_outputs_need_their_prefix_and_must_say_more_than_the_persona():
    problem = "Math problem: Each of my 40 hives holds 20,000 bees; if mites grow 4% a week, when do I pass 3 per 100?"
    assert _why(_output("math_problem", problem))[:2] == ("kept", problem.removeprefix("Math problem: "))
    assert _why(_output("math_problem", "**Math problem:** " + problem[14:]))[0] == "kept"
    assert _why(_output("math_problem", problem[14:]))[0] == "missing_prefix"
    assert _why(_output("user_instruction", "Title: Honey"))[0] == "missing_prefix"
    assert _why(_output("user_instruction", f"User prompt: {PERSONA}"))[0] == "restates_persona"
    assert _why(_output("user_instruction", "User prompt: A beekeeper in Portugal selling honey."))[0] == \
        "restates_persona"
    assert _why(_output("user_instruction", "User prompt:   "))[0] == "empty_output"
    # an article keeps its title line
    article = "Title: Varroa in August\nTreat colonies before the winter bees are raised."
    assert _why(_output("knowledge_text", article))[:2] == ("kept", article)
    assert has_prefix("  # Title: x", "Title:").keep and not has_prefix("My title: x", "Title:").keep
    assert restates_persona(PERSONA, PERSONA, 80).reason.startswith("restates_persona")


def test_outputs_with_sources_must_quote_them():
    body = "Math problem: My 40 hives had 2 mites per 100 bees in July; with 30% growth a month, when do I treat?"
    grounded = f'{body}\nEvidence: "varroa mites exceed three per hundred bees"'
    kind, text, found = _why(_output("math_problem", grounded, SOURCES))
    assert kind == "kept" and "Evidence" not in text
    assert found == [{"ref": "doc.md#p0", "quote": "varroa mites exceed three per hundred bees", "score": 100.0}]
    assert _why(_output("math_problem", body, SOURCES))[0] == "no_evidence"
    assert _why(_output("math_problem", f'{body}\nEvidence: "hives are painted blue in spring"', SOURCES))[0] == \
        "ungrounded_evidence"
    # small differences (case, punctuation) are forgiven, as in markdown_qa's grounding
    assert _why(_output("math_problem", f"{body}\nevidence: Varroa mites exceed three per hundred bees!", SOURCES))[0] \
        == "kept"
    # without sources there is nothing to ground in: no evidence needed
    assert _why(_output("math_problem", body))[0] == "kept"
    verdict, found = grounded_in(["treat in August"], SOURCES, 85)
    assert verdict.keep and found[0]["ref"] == "doc.md#p0"
    assert split_evidence('a\n**Evidence:** "x y"\nb') == ("a\n\nb", ["x y"])


def test_dialogues_are_checked_on_the_first_user_turn_and_grounded_in_the_assistants_quotes():
    messages = [{"role": "user", "content": "When should I treat my hives against mites this year?"},
                {"role": "assistant", "content": 'Treat in August.\nEvidence: "so beekeepers treat in August"'}]
    kind, text, found = _why(_output("multi_turn", "User prompt: When should I treat my hives?", SOURCES, messages))
    assert kind == "kept" and found[0]["quote"] == "so beekeepers treat in August"
    assert text.startswith("User: When should I treat") and "Evidence" not in text
    assert _why(_output("multi_turn", "When should I treat?", SOURCES, messages))[0] == "missing_prefix"


def test_math_problems_from_a_benchmark_test_set_are_dropped():
    from synth_tasks.prompts import include_dir
    from synth_tasks.quality.decontamination import Decontaminator

    question = json.loads((include_dir() / "benchmarks" / "gsm8k_test.jsonl").read_text().splitlines()[0])["question"]
    assert _why(_output("math_problem", f"Math problem: {question}"), Decontaminator())[0] == "benchmark_overlap"
    assert _why(_output("user_instruction", f"User prompt: {question}"), Decontaminator())[0] == "kept"


def test_filters_and_output_dedup_in_a_run(store, fault_server):
    """One run where every persona gets the same math problem: the filter keeps them (prefix,
    no sources), dedup_outputs keeps one per template and names it in the others' reasons."""
    def same_problem(body):
        last = body["messages"][-1]["content"]
        if "Create a challenging math problem" in last:
            return "Math problem: A farm has 12 cows and buys 7 more each week; how many after 9 weeks?"
        return reply(body)

    fault_server.responder = same_problem
    cfg = PersonasConfig(source="none", max_personas=3, templates=["math_problem"], expand_depth=0,
                           embedding_dedup=False)
    layout, results, summary = _run(store, "2026-02-01", cfg, SAMPLE_URL, fault_server)
    assert summary["stages"]["filter"]["kept"] == 3
    assert summary["stages"]["dedup_outputs"]["filter_reasons"] == {"near_duplicate_output": 2}
    kept = _final(store, results["export"])
    assert len(kept) == 1 and all(d["reason"] == f"near_duplicate_output: of {kept[0]['id']}"
                                  for d in _dropped(layout, "dedup_outputs"))


# --------------------------------------------------------------------------------------------
# the corpus source
# --------------------------------------------------------------------------------------------
def test_bm25_finds_the_passage_a_query_is_about():
    index = PassageIndex([Document("bees.md", SOURCES[0]["text"] + "\n\nQueens are marked with paint dots."),
                          Document("ships.md", "Ferries cross the fjord twice an hour in summer.")])
    hits = index.gather(["varroa mite treatment", "ferry timetable fjord"], 2)
    assert [h.ref for h in hits] == ["bees.md#p0", "ships.md#p0"]
    assert index.search("the of and", 3) == []  # only stop words


def test_the_corpus_folder_must_lie_inside_the_allowed_roots(tmp_path):
    outside = "file:///etc"
    with pytest.raises(InputError, match="outside the allowed input roots"):
        FolderFetcher(outside, Store("file:///"), (str(tmp_path),)).documents()
    docs = FolderFetcher(f"file://{ROOT}/include/sample_data/markdown_qa/docs", Store("file:///"),
                         (str(ROOT / "include"),)).documents()
    assert len(docs) == 4 and all(d.text for d in docs)


def test_bad_rows_of_a_jsonl_corpus_are_skipped_naming_file_and_row(tmp_path, caplog):
    (tmp_path / "docs.jsonl").write_text('{"id": "a", "text": "Bees."}\n{not json\n\n{"id": "c", "body": "x"}\n')
    with caplog.at_level("WARNING", logger="synth_tasks.methods.personas.sources"):
        docs = FolderFetcher(f"file://{tmp_path}", Store("file:///"), (str(tmp_path),)).documents()
    assert [(d.ref.rsplit("/", 1)[1], d.text) for d in docs] == [("docs.jsonl#a", "Bees.")]
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 2 and "docs.jsonl row 2 skipped: Expecting property name" in skipped[0]
    assert "docs.jsonl row 4 skipped: not an object" in skipped[1]


def test_personas_gather_corpus_passages_and_outputs_quote_them(store, personas_server):
    cfg = PersonasConfig(max_personas=2, expand_depth=0, turns=2)
    layout, results, summary = _run(store, "2026-01-05", cfg, SAMPLE_URL, personas_server)
    assert summary["accounted_for"], summary["problems"]
    jobs = _stage_records(layout, "gather")
    assert len(jobs) == 8 and all(j["sources"] and j["queries"] == ["comments in code", "if let control flow"]
                                  for j in jobs)
    records = _final(store, results["export"])
    assert sorted(r["template"] for r in records) == sorted([str(t) for t in Template] * 2)
    for r in records:
        assert {"persona_id", "persona", "template", "sources", "output", "lineage", "root_persona_id"} <= set(r)
        assert r["sources"] and all(s["ref"].endswith(tuple(f"#p{k}" for k in range(50))) and s["quote"]
                                    for s in r["sources"])
        assert r["lineage"][-1] == r["persona_id"] and r["model"] == "fault-model"
    dialogue = next(r for r in records if r["template"] == "multi_turn")
    assert [m["role"] for m in dialogue["messages"]] == ["user", "assistant"] * 2
    assert dialogue["messages"][2]["content"].startswith("And then what")


# --------------------------------------------------------------------------------------------
# trending topics
# --------------------------------------------------------------------------------------------
def test_trending_terms_are_those_that_rose_against_earlier_days():
    from synth_tasks.methods.personas.sources import term_shares, trending_terms

    day = lambda *texts: term_shares([Document(str(i), t) for i, t in enumerate(texts)])  # noqa: E731
    earlier = [day("honey harvest prices", "honey bees swarm", "mites honey"),
               day("honey bees winter", "hives honey", "queen bees")]
    today = day("ferry strike honey", "ferry strike harbour", "ferry delays bees")
    top = trending_terms(today, earlier, 3)
    assert [t["term"] for t in top] == ["ferry", "strike"]  # a term counts from two documents on
    # unseen before: its rise counts from a floor of half the smallest share today (2/3 / 2)
    assert top[0] == {"term": "ferry", "rise": 3.0, "share": 1.0, "share_before": 0.0}
    # no history, or a day like the ones before: nothing rose, so nothing trends (issue #25: a flat
    # day returned the alphabetically first terms)
    assert trending_terms(today, [], 3) == []
    flat = day("abbreviation ability able", "abbreviation ability able")
    assert trending_terms(flat, [flat, flat], 3) == []


def test_a_run_shows_its_trending_topics_and_agents_are_told_them(store, personas_server, tmp_path):
    for ds, texts in {"2026-04-01": ["Honey bees swarm in May.", "Honey prices rose.", "Bees and mites."],
                      "2026-04-02": ["Ferry strike today.", "Ferry strike at the harbour.", "Honey bees."]}.items():
        folder = tmp_path / "news" / ds
        folder.mkdir(parents=True)
        for k, text in enumerate(texts):
            (folder / f"{k}.txt").write_text(text)
    cfg = dict(sources_path=f"{tmp_path}/news/{{ds}}", max_personas=1, expand_depth=0, templates=["user_instruction"],
               embedding_dedup=False, prefer_trending=True)
    _run(store, "2026-04-01", PersonasConfig(**cfg), SAMPLE_URL, personas_server)
    personas_server.requests.clear()
    other_texts = tmp_path / "other.jsonl"  # new texts, so the second day has new personas to send out
    other_texts.write_text(json.dumps({"id": "harbour", "text": "# Harbours\n\nShips."}) + "\n")
    _, _, summary = _run(store, "2026-04-02", PersonasConfig(**cfg), f"file://{other_texts}", personas_server)
    top = summary["info"]["trending_topics"]
    assert [t["term"] for t in top[:2]] == ["ferry", "strike"] and top[0]["share_before"] == 0.0
    asked = [r["messages"][-1]["content"] for r in personas_server.requests if "search queries" in
             r["messages"][-1]["content"]]
    assert len(asked) == 1 and "Topics trending in today's material: ferry, strike" in asked[0]


def test_responses_are_judged_by_the_shared_helpsteer2_judge_and_low_scores_filtered(store, personas_server):
    from tests.synth_tasks.methods.personas_replies import ANSWER

    cfg = PersonasConfig(source="none", max_personas=2, expand_depth=0, respond=True, min_judge_score=2.0,
                           templates=["math_problem", "user_instruction", "knowledge_text"], embedding_dedup=False)
    layout, results, summary = _run(store, "2026-05-01", cfg, SAMPLE_URL, personas_server)
    respond = summary["stages"]["respond"]
    # the fake judge scores math problems 3.4 and user prompts 1.6 (weights 0.3/0.3/0.2/0.1/0.1)
    assert respond == respond | {"input": 6, "kept": 4, "filter_reasons": {"low_judge_score": 2}}
    records = {r["template"]: r for r in _final(store, results["export"])}
    math = records["math_problem"]
    assert math["response"] == ANSWER and math["judge_scores"]["overall"] == 3.4
    assert records["knowledge_text"]["response"] is None and "user_instruction" not in records
    assert all(d["reason"] == "low_judge_score: 1.6 < 2.0" for d in _dropped(layout, "respond"))
    # off (the default): no response, no judge, no request
    n = len(personas_server.requests)
    _run(store, "2026-05-01", cfg.model_copy(update={"respond": False}), SAMPLE_URL, personas_server)
    assert not any("HelpSteer2" in r["messages"][-1]["content"] for r in personas_server.requests[n:])


PLACEHOLDERS = ["...", "This is a [name] who has been studying [field]."]


def test_placeholder_personas_are_filtered_and_never_reach_the_hub_or_the_data(store, fault_server):
    # What the 135M model answered for two texts ("Fabio", "Mike", "...") and the template it fills
    # in when it has nothing to say, beside a persona the quality model wrote (both recorded).
    real = ("A software developer who is new to Rust programming and is currently working on a project that "
            "requires storing and retrieving data using hash maps.")

    def placeholder_personas(body):
        if "Who is likely to read" in body["messages"][-1]["content"]:
            return json.dumps({"personas": [{"description": "Fabio"}, *({"description": d} for d in PLACEHOLDERS),
                                            {"description": real}]})
        return reply(body)

    fault_server.responder = placeholder_personas
    cfg = PersonasConfig(source="none", expand_depth=0, personas_per_text=4, max_personas=1,
                         templates=["math_problem"], embedding_dedup=False)
    layout, results, summary = _run(store, "2026-01-01", cfg, SAMPLE_URL, fault_server)
    assert summary["accounted_for"], summary["problems"]
    reasons = sorted(d["reason"] for d in _dropped(layout, "dedup") if d["reason"].startswith("placeholder"))
    assert reasons == ["placeholder: 0 words < 5"] * 4 + ["placeholder: 1 words < 5"] * 4 + [
        "placeholder: unfilled slot '[name]'"] * 4
    assert {h["description"] for h in H.read_hub(store)} == {real}
    final = _final(store, results["export"])
    assert final and {r["persona"] for r in final} == {real}


def _hub_persona(pid: str, description: str, day: str) -> dict:
    return {"id": pid, "description": description, "domain": "", "expertise": "", "relation": None,
            "origin_text_id": "t", "parent_id": None, "root_persona_id": pid, "depth": 0, "lineage": [pid],
            "created_partition": day, "created_date": day, "embedding": None}


def test_placeholders_in_an_earlier_hub_part_are_not_drawn_by_the_hub_pool(store, personas_server):
    # a part written before dedup filtered placeholders: both of the examples beside a real persona
    real = "A lighthouse keeper on a windy island who logs every passing ship and its cargo."
    old = [_hub_persona(f"old:p{k}", d, "2025-12-31") for k, d in enumerate([*PLACEHOLDERS, real])]
    store.write_parquet(H.hub_part(store, "2025-12-31"), old)
    cfg = PersonasConfig(source="none", expand_depth=0, max_personas=100, templates=["math_problem"],
                         embedding_dedup=False, pool="hub", hub_from="2025-12-31", hub_to="2025-12-31")
    layout, results, summary = _run(store, "2026-01-01", cfg, SAMPLE_URL, personas_server)
    select = summary["stages"]["select"]
    assert select == select | {"created": 3, "kept": 1}
    assert sorted(d["reason"] for d in _dropped(layout, "select") if d["id"].startswith("old:")) == [
        "placeholder: 0 words < 5", "placeholder: unfilled slot '[name]'"]
    assert {r["persona"] for r in _final(store, results["export"])} == {real}


# --------------------------------------------------------------------------------------------
# only a published run adds to the hub; a bad part is named; a run with nothing new says so
# --------------------------------------------------------------------------------------------
SMALL = dict(source="none", expand_depth=0, max_personas=2, templates=["math_problem"], embedding_dedup=False)


def test_a_run_that_fails_after_dedup_leaves_the_hub_as_it_was(store, personas_server, tmp_path):
    # As in the issue: two runs fail at gather (their corpus folder is missing) after dedup has run...
    broken = PersonasConfig(**SMALL | {"source": "corpus", "sources_path": str(tmp_path / "missing")})
    for partition in ("run-failed-1", "run-failed-2"):
        with pytest.raises(InputError):
            _run(store, partition, broken, SAMPLE_URL, personas_server)
        assert store.glob(f"{H.hub_dir(store)}/*") == [] and H.read_hub(store) == []
        # dedup found its 9 new personas: they wait in the partition for an export that never came
        layout = RunLayout(store, "personas", partition)
        assert len(store.read_parquet(H.pending_part(layout.stage_dir(HUB_PENDING)))) == 9
    # ... and the corrected run finds its personas new, writes with them and adds them to the hub.
    layout, results, summary = _run(store, "run-fixed", PersonasConfig(**SMALL), SAMPLE_URL, personas_server)
    assert summary["info"]["personas"] == summary["info"]["personas"] | {"hub_before": 0, "new": 9, "hub_after": 9}
    assert _final(store, results["export"])
    assert summary["info"]["hub_part"] == H.hub_part(store, "run-fixed")
    assert store.glob(f"{H.hub_dir(store)}/*") == [H.hub_part(store, "run-fixed")]
    assert {h["created_partition"] for h in H.read_hub(store)} == {"run-fixed"} and len(H.read_hub(store)) == 9


def test_a_corrupt_hub_part_fails_the_run_naming_the_file(store, personas_server):
    _run(store, "2026-01-01", PersonasConfig(**SMALL), SAMPLE_URL, personas_server)
    part = H.hub_part(store, "2026-01-01")
    whole = store.read_bytes(part)
    store.write_bytes(part, whole[: len(whole) // 2])  # cut off, as by an interrupted copy
    with pytest.raises(Exception) as unreadable:  # not a bare ArrowInvalid that names no file
        _run(store, "2026-01-02", PersonasConfig(**SMALL), SAMPLE_URL, personas_server, until="dedup")
    assert f"hub part {part} is unreadable (ArrowInvalid: " in str(unreadable.value)
    assert isinstance(unreadable.value, H.HubError)
    # readable, but not a hub part: named too, with the columns it lacks
    store.write_parquet(part, [{"text": "not a persona"}])
    with pytest.raises(H.HubError, match=f"hub part {part} lacks the columns"):
        H.read_hub(store)


def test_a_run_whose_personas_are_all_in_the_hub_fails_saying_so(store, personas_server):
    _run(store, "run-a", PersonasConfig(**SMALL), SAMPLE_URL, personas_server)
    assert len(H.read_hub(store)) == 9
    # the same texts again in another run: all 12 personas are the hub's; with pool=run nothing to write with
    with pytest.raises(NoNewPersonas, match=r"none of this run's 12 personas is new \(0 placeholders, 12 "
                                            r"duplicates: 12 of partition run-a\).*pool=hub"):
        _run(store, "run-b", PersonasConfig(**SMALL), SAMPLE_URL, personas_server)
    assert len(H.read_hub(store)) == 9
    # with pool=hub the run writes with the hub's personas, adding none
    hub_pool = PersonasConfig(**SMALL | {"pool": "hub"})
    _, results, summary = _run(store, "run-c", hub_pool, SAMPLE_URL, personas_server)
    assert summary["info"]["personas"]["new"] == 0 and _final(store, results["export"])
    assert len(H.read_hub(store)) == 9


def test_the_quality_models_evidence_lines_and_headings_are_read_as_meant():
    from synth_tasks.methods.personas.checks import with_title_prefix

    # recorded from the quality model: a quoted span followed by commentary
    line = 'Evidence: "The formula P(X = k) = C(n, k) p^k (1-p)^(n-k)" is provided in the given text as a reference.'
    assert split_evidence(f"Math problem: x\n{line}") == ("Math problem: x", ["The formula P(X = k) = C(n, k) p^k (1-p)^(n-k)"])
    assert split_evidence("a\nEvidence: the retry limit is five") == ("a", ["the retry limit is five"])
    for marked in ("[1] ### Evidence: the retry limit is five", "- Evidence: the retry limit is five",
                   "### **Evidence:** the retry limit is five"):
        assert split_evidence(f"a\n{marked}") == ("a", ["the retry limit is five"]), marked
    article = "### Understanding Hash Maps in Rust\n\nIn the realm of software development, ..."
    assert with_title_prefix(article).startswith("Title: Understanding Hash Maps in Rust\n\nIn the realm")
    assert has_prefix(with_title_prefix(article), "Title:").keep
    assert with_title_prefix("Title: x\n# Part 1") == "Title: x\n# Part 1"


# --------------------------------------------------------------------------------------------
# the shard plan's costs
# --------------------------------------------------------------------------------------------
def test_the_declared_requests_are_the_requests_a_run_makes(store, personas_server):
    """What the shard plan counts per record (``expand_requests``, ``generate_requests``) against
    the requests each stage made in a run: two expansion levels and a dialogue of three turns."""
    from synth_tasks.methods.personas.stages import expand_requests, generate_requests

    cfg = PersonasConfig(source="none", expand_depth=2, relations_per_persona=2, max_personas=2, turns=3,
                         templates=["math_problem", "multi_turn"])
    assert (expand_requests(cfg), generate_requests(cfg)) == (3 * (1 + 2), 1 + 2 * 3)
    _, _, summary = _run(store, "costs", cfg, SAMPLE_URL, personas_server)
    stages = summary["stages"]
    assert stages["expand"]["usage"]["requests"] == expand_requests(cfg) * stages["text_to_persona"]["input"]
    assert stages["generate"]["usage"]["requests"] == generate_requests(cfg) * stages["gather"]["input"]
    assert stages["gather"]["usage"].get("requests", 0) == 0  # no source: no queries asked
    # respond with and without `respond`: test_shard_plan's test of the LLM stages switched off
