"""data_selection through the stage runner, without Airflow: proportional quotas, few-shot
neighbours, conversation threads and seq2seq pairs, the embedding cache, deduplication,
decontamination, another DAG's output as a source, and the tokenized export read back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synth_tasks.methods import data_selection as ds
from synth_tasks.methods.data_selection.conversations import seq2seq_pair, tree_threads, trim_thread
from synth_tasks.methods.data_selection.selection import (EmbeddingCache, cluster, nearest_examples,
                                                          proportional_quotas, proportional_sample)
from synth_tasks.methods.data_selection.tokenized import load_tokenizer, read_split
from synth_tasks.pipeline import run_method
from synth_tasks.prompts import include_dir
from synth_tasks.storage import RunLayout

SAMPLES = include_dir() / "sample_data" / "data_selection"
MIX = include_dir() / "configs" / "data_selection_mix.yaml"


def _records(layout, export, *keys):
    return [json.loads(line) for k in keys for line in layout.store.read_bytes(export[k]).decode().splitlines()]


# -- proportional sampling ------------------------------------------------------------------------
@pytest.mark.parametrize("sizes, target, expected", [
    ({0: 50, 1: 30, 2: 15, 3: 5}, 20, {0: 10, 1: 6, 2: 3, 3: 1}),   # exact: size * 20 / 100
    ({0: 7, 1: 2, 2: 1}, 5, {0: 3, 1: 1, 2: 1}),                      # 3.5 -> 3, 1, 0.5 -> at least one
    ({0: 10, 1: 10, 2: 10}, 10, {0: 4, 1: 3, 2: 3}),                  # floors 3+3+3, the free slot to cluster 0
    ({0: 100, 1: 1, 2: 1, 3: 1}, 4, {0: 1, 1: 1, 2: 1, 3: 1}),        # at least one each, the largest gives back
    ({0: 5, 1: 3, 2: 1}, 2, {0: 1, 1: 1, 2: 0}),                      # more clusters than target: the largest
    ({0: 3, 1: 2}, 10, {0: 3, 1: 2}),                                 # target above the total: everything
])
def test_quotas_follow_size_times_target_over_total(sizes, target, expected):
    assert proportional_quotas(sizes, target) == expected


def test_the_sample_takes_each_clusters_quota_best_scored_first():
    labels = [0] * 50 + [1] * 30 + [2] * 15 + [3] * 5
    scores = [float(i) for i in range(100)]
    chosen = proportional_sample(labels, 20, seed=1, scores=scores)
    per_cluster = {c: sum(1 for i in chosen if labels[i] == c) for c in range(4)}
    assert per_cluster == {0: 10, 1: 6, 2: 3, 3: 1}
    assert [i for i in chosen if labels[i] == 0] == list(range(40, 50))  # the ten best of cluster 0
    assert [i for i in chosen if labels[i] == 3] == [99]


def test_community_detection_is_refused_above_its_limit():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cfg = ds.DataSelectionConfig(clustering="community", community_max_items=10, n_clusters=3)
    labels, how = cluster(emb, cfg)
    assert how["mode"] == "kmeans" and "refused for 30 items > community_max_items 10" in how["note"]
    assert len(set(labels.tolist())) == 3
    # under the limit it runs: three tight groups of near-identical vectors become three communities
    centres = np.eye(8, dtype=np.float32)[:3]
    tight = np.repeat(centres, 6, axis=0) + rng.normal(scale=0.01, size=(18, 8)).astype(np.float32)
    tight /= np.linalg.norm(tight, axis=1, keepdims=True)
    labels, how = cluster(tight, ds.DataSelectionConfig(clustering="community", community_min_size=5))
    assert how["mode"] == "community"
    assert sorted(np.bincount(labels).tolist()) == [6, 6, 6]
    assert all(len(set(labels[k * 6:(k + 1) * 6].tolist())) == 1 for k in range(3))


# -- few-shot -------------------------------------------------------------------------------------
def test_fewshot_neighbours_are_never_the_item_nor_outside_the_allowed_pool():
    emb = np.array([[1, 0], [1, 0], [0.9, 0.1], [0, 1], [0.8, 0.2]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    allowed = np.array([True, True, True, True, False])  # item 4 is on the validation side
    got = nearest_examples(emb, [0, 1, 4], allowed, k=2)
    assert got == {0: [1, 2], 1: [0, 2], 4: [2, 0]}  # item 1 equals item 0, yet never its own example
    assert all(q not in ex and 4 not in ex for q, ex in got.items())


# -- conversations --------------------------------------------------------------------------------
def _trees():
    return [json.loads(line) for line in (SAMPLES / "oasst_trees_sample.jsonl").read_text().splitlines()]


def test_threads_and_seq2seq_pairs_of_the_tree_fixture():
    eggs = _trees()[0]
    threads = tree_threads(eggs)
    # best rank first; the deleted reply and the negatively reviewed one cut their threads
    assert [[m["message_id"] for m in t] for t in threads] == [
        ["eggs-p1", "eggs-a2", "eggs-p2", "eggs-a3"],
        ["eggs-p1", "eggs-a2", "eggs-p2"],
        ["eggs-p1", "eggs-a1", "eggs-p3"],
        ["eggs-p1"],
    ]
    pairs, reasons = [], []
    for t in threads:
        messages, reason, trimmed = trim_thread(t, 2)
        if reason:
            reasons.append(reason)
        else:
            pairs.append((seq2seq_pair(messages), trimmed))
    assert pairs == [
        ({"Input": "<Role user>How long should I boil an egg for a firm yolk?<Role bot>Put the egg in boiling water "
                   "for 10 minutes, then cool it in cold water.<Role user>And for a soft yolk?<Role bot>",
          "Output": "About 6 minutes gives a soft, runny yolk."}, False),
        ({"Input": "<Role user>How long should I boil an egg for a firm yolk?<Role bot>",
          "Output": "Put the egg in boiling water for 10 minutes, then cool it in cold water."}, True),
        ({"Input": "<Role user>How long should I boil an egg for a firm yolk?<Role bot>",
          "Output": "About 9 to 12 minutes in boiling water."}, True),
    ]
    assert reasons == ["too_short: no assistant reply in 1 message(s)"]
    # two exchanges required: only the four-message thread stays
    assert [trim_thread(t, 4)[1] for t in threads] == [
        None, "too_short: 2 message(s) up to the last assistant reply < min_messages 4",
        "too_short: 2 message(s) up to the last assistant reply < min_messages 4",
        "too_short: no assistant reply in 1 message(s)"]


def test_chat_template_rendering_uses_the_models_own_template():
    from synth_tasks.methods.data_selection.tokenized import gguf_chat_template

    messages = [{"role": "user", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}]
    pair = seq2seq_pair(messages, "chat_template", gguf_chat_template())
    assert pair["Input"].endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert pair["Output"] == "Hello!"


# -- embedding cache ------------------------------------------------------------------------------
def test_embeddings_are_cached_by_text_hash_in_the_staging_store(store):
    calls = []

    def fake_embed(texts):
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    first = EmbeddingCache(store).embed(["a", "bb", "a"], fake_embed)
    again = EmbeddingCache(store)
    second = again.embed(["bb", "ccc", "a"], fake_embed)
    assert [sorted(c) for c in calls] == [["a", "bb"], ["ccc"]]  # each text once, across cache objects
    assert again.computed == 1
    assert first.tolist() == [[1, 1], [2, 1], [1, 1]] and second.tolist() == [[2, 1], [3, 1], [1, 1]]
    assert store.glob(store.join("_cache", "embeddings", "all-MiniLM-L6-v2", "*.parquet"))


# -- the whole method -----------------------------------------------------------------------------
def test_shipped_mix_end_to_end_with_a_tokenized_export_that_round_trips(store):
    layout = RunLayout(store, "data_selection", "shipped")
    cfg = ds.DataSelectionConfig(tokenizer="cl100k", max_tokens=700)
    results = run_method(ds.METHOD, cfg, layout, f"file://{MIX}", run_info={"run_id": "t", "run_timestamp": "x"})
    export = results["export"]
    summary = store.read_json(export["summary"])
    assert summary["accounted_for"], summary["problems"]
    stages = summary["stages"]
    assert stages["prepare"]["input"] == 204 and stages["prepare"]["filter_reasons"] == {"language": 1}
    assert stages["seq2seq"]["filter_reasons"] == {"too_short": 2}
    assert stages["select"]["kept"] == 44  # math target 40 + all 4 chat pairs
    sel = summary["info"]["selection"]
    assert sel["math"]["selected"] == 40 and sum(sel["math"]["sampled_per_cluster"].values()) == 40
    assert sel["math"]["diversity_before"]["n"] == sel["math"]["items"]

    records = _records(layout, export, "train_jsonl", "validation_jsonl")
    assert len(records) == stages["tokenize"]["kept"] == 44 - stages["tokenize"]["filtered"]
    assert all(r["n_tokens"] <= 700 for r in records)
    validation_ids = {r["id"] for r in _records(layout, export, "validation_jsonl")}
    for r in records:
        assert r["licence"] and r["domain"] in ("math", "chat") and r["cluster"] is not None
        if r["domain"] == "math":
            assert len(r["fewshot_ids"]) == 3 and r["id"] not in r["fewshot_ids"]
            assert not validation_ids & set(r["fewshot_ids"])
            assert r["Input"].count(r["question"]) == 1 and r["answer"] not in r["Input"]
            assert r["Input"].endswith(f"Question: {r['question']}\nAnswer:")
        else:
            assert r["Input"].startswith("<Role user>") and r["Input"].endswith("<Role bot>")

    tok = load_tokenizer("cl100k")
    folder = export["tokenized_manifest"].rsplit("/", 1)[0]
    manifest = json.loads(store.read_bytes(export["tokenized_manifest"]))
    assert manifest["tokenizer"]["name"].startswith("cl100k_base") and manifest["dtype"] == "uint32"
    for split in ("train", "validation"):
        rows = _records(layout, export, f"{split}_jsonl")
        tokens, offsets, prompt_lengths = read_split(store, folder, split)
        assert len(offsets) == len(rows) + 1 and offsets[-1] == len(tokens) and len(prompt_lengths) == len(rows)
        assert manifest["counts"][split]["samples"] == len(rows)
        for i, r in enumerate(rows):
            sample = tokens[offsets[i]:offsets[i + 1]]
            assert len(sample) == r["n_tokens"] and prompt_lengths[i] == r["n_prompt_tokens"]
            assert tok.decode(sample[:prompt_lengths[i]]) == r["Input"]
            assert tok.decode(sample[prompt_lengths[i]:-1]) == r["Output"] and sample[-1] == tok.eos_id
    assert sum(manifest["counts"]["train"]["per_domain"].values()) == manifest["counts"]["train"]["samples"]


def test_duplicates_contamination_filters_and_another_dags_output(store, tmp_path):
    train = [json.loads(line) for line in (SAMPLES / "gsm8k_train_sample.jsonl").read_text().splitlines()[:12]]
    test_item = json.loads((include_dir() / "benchmarks" / "gsm8k_test.jsonl").read_text().splitlines()[0])
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train[:8] + [test_item]))
    # domain b repeats a's first item (exact), a's second with other spacing and case (exact after
    # folding), and has one too short for its filter
    b = [train[0], {"question": train[1]["question"].upper(), "answer": train[1]["answer"]},
         {"question": "Short?", "answer": "1"}, *train[8:12]]
    # then a blank line (counted, not a record) and a line that is no JSON: line 9 of the file
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in b) + "\nnot json\n")
    # a published instruct run as a source: its final/train.jsonl (chat messages)
    inst = RunLayout(store, "instruct", "2026-01-01")
    store.write_json(inst.summary, {"accounted_for": True})
    store.write_jsonl(f"{inst.final_dir}/train.jsonl", [
        {"id": "i1", "overall": 3.5, "messages": [{"role": "user", "content": "Name three primary colours."},
                                                  {"role": "assistant", "content": "Red, yellow and blue."}]},
        {"id": "i2", "overall": 1.0, "messages": [{"role": "user", "content": "What is the capital of France?"},
                                                  {"role": "assistant", "content": "Paris."}]}])
    (tmp_path / "mix.yaml").write_text(f"""
domains:
  a:
    target: 5
    template: math
    sources:
      - {{name: train, path: a.jsonl, licence: MIT}}
  b:
    target: 2
    template: qa
    fewshot_k: 1
    sources:
      - {{name: more, path: b.jsonl, filter: {{min_chars: 10}}, licence: MIT}}
  instructions:
    target: 1
    sources:
      - {{name: inst, dag: instruct, id: id, score: overall, licence: "made by the instruct DAG"}}
""")
    layout = RunLayout(store, "data_selection", "mixed")
    cfg = ds.DataSelectionConfig(tokenizer="cl100k")
    results = run_method(ds.METHOD, cfg, layout, f"file://{tmp_path}/mix.yaml")
    summary = store.read_json(results["export"]["summary"])
    assert summary["accounted_for"], summary["problems"]
    ledger = {r["record_id"]: r for url in store.glob(f"{layout.base}/_ledger/*/*.parquet")
              for r in store.read_parquet(url) if r["outcome"] != "kept"}
    reasons = {rid: r["reason"] for rid, r in ledger.items() if r["outcome"] == "filtered"}
    assert reasons["b/more/b.jsonl#3"] == "source_filter: question has 6 characters < min_chars 10"
    assert reasons["a/train/a.jsonl#9"].startswith("benchmark_overlap: 13-gram shared with gsm8k_test")
    assert reasons["b/more/b.jsonl#1"] == "exact_duplicate: of a/train/a.jsonl#1"
    assert reasons["b/more/b.jsonl#2"] == "exact_duplicate: of a/train/a.jsonl#2"
    # a bad row fails alone, naming its file and its line
    assert ledger["b/more/b.jsonl#9"]["outcome"] == "failed"
    assert ledger["b/more/b.jsonl#9"]["error"].startswith(f"bad_row: file://{tmp_path}/b.jsonl row 9: invalid JSON")
    # the better-scored instruction is the one sampled (target 1)
    assert reasons["instructions/inst/i2"].startswith("not_sampled:")
    records = _records(layout, results["export"], "train_jsonl", "validation_jsonl")
    by_domain = {d: [r for r in records if r["domain"] == d] for d in ("a", "b", "instructions")}
    assert [r["id"] for r in by_domain["instructions"]] == ["instructions/inst/i1"]
    assert by_domain["instructions"][0]["Input"] == "Name three primary colours."
    assert len(by_domain["a"]) == 5 and len(by_domain["b"]) == 2
    assert all(len(r["fewshot_ids"]) == 1 and r["fewshot_ids"][0].startswith("b/") for r in by_domain["b"])


def test_a_mix_file_with_a_bad_field_fails_naming_it(store, tmp_path):
    from synth_tasks.inputs import InputError

    (tmp_path / "mix.yaml").write_text("domains:\n  a:\n    target: 0\n    sources: [{name: x, path: a.jsonl}]\n")
    with pytest.raises(InputError, match="target.*greater than or equal to 1|licence"):
        run_method(ds.METHOD, ds.DataSelectionConfig(), RunLayout(store, "data_selection", "bad"),
                   f"file://{tmp_path}/mix.yaml")


# -- issue #25: sources that cannot be used fail the run, naming them ------------------------------
def _gsm8k_sample(n: int) -> list[dict]:
    return [json.loads(line) for line in (SAMPLES / "gsm8k_train_sample.jsonl").read_text().splitlines()[:n]]


@pytest.mark.parametrize("second, why", [
    ("{name: extra, path: gsm8k_trian.jsonl, licence: MIT}", r"source math/extra \(path 'gsm8k_trian.jsonl'.*no input files match"),
    ("{name: extra, path: empty.jsonl, licence: MIT}", r"source math/extra \(path 'empty.jsonl'.*no rows in its 1 file"),
    ("{name: extra, path: broken.parquet, licence: MIT}", r"source math/extra \(path 'broken.parquet'.*not Parquet"),
])
def test_a_source_that_cannot_be_used_fails_the_run_before_any_work(store, tmp_path, second, why):
    """A misspelt second source ended the run rc 0 with one `failed` ledger row (issue #25)."""
    from synth_tasks.inputs import InputError

    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _gsm8k_sample(6)))
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "mix.yaml").write_text(f"domains:\n  math:\n    target: 3\n    sources:\n"
                                       f"      - {{name: gsm8k, path: a.jsonl, licence: MIT}}\n      - {second}\n")
    layout = RunLayout(store, "data_selection", "bad-source")
    with pytest.raises(InputError, match=why):
        run_method(ds.METHOD, ds.DataSelectionConfig(tokenizer="cl100k"), layout, f"file://{tmp_path}/mix.yaml")
    assert not store.glob(f"{layout.base}/prepare/*") and not store.exists(layout.summary)


# -- issue #25: `dag:` sources stay inside the staging root and skip empty runs --------------------
def _publish(store, dag_id: str, partition: str, rows: list[dict], mtime: float) -> RunLayout:
    import os

    run = RunLayout(store, dag_id, partition)
    store.write_json(run.summary, {"accounted_for": True})
    store.write_jsonl(f"{run.final_dir}/train.jsonl", rows) if rows else \
        store.write_bytes(f"{run.final_dir}/train.jsonl", b"")
    os.utime(run.summary.removeprefix("file://"), (mtime, mtime))  # which run is newest, whatever the clock's grain
    return run


def _instruction(i: int) -> dict:
    topics = ["primary colours", "capital of France", "boiling point of water", "largest planet"]
    return {"id": f"i{i}", "messages": [{"role": "user", "content": f"Tell me about the {topics[i]}."},
                                        {"role": "assistant", "content": f"A short answer about the {topics[i]}."}]}


def _dag_mix(tmp_path, dag: str) -> str:
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _gsm8k_sample(4)))
    (tmp_path / "mix.yaml").write_text(f"""
domains:
  math:
    target: 2
    sources: [{{name: gsm8k, path: a.jsonl, licence: MIT}}]
  instructions:
    target: 2
    sources: [{{name: inst, dag: "{dag}", id: id, licence: "made by a DAG"}}]
""")
    return f"file://{tmp_path}/mix.yaml"


def test_a_dag_source_is_a_dag_id_not_a_path(store, tmp_path):
    """`dag: ../secret/fakedag` published another folder's train.jsonl (issue #25)."""
    from synth_tasks.inputs import InputError

    # beside the staging root: {tmp_path}/stage/../secret/fakedag
    _publish(type(store)(f"file://{tmp_path}/secret"), "fakedag", "p1", [_instruction(0)], 1_000_000)
    layout = RunLayout(store, "data_selection", "escape")
    with pytest.raises(InputError, match=r"dag '\.\./secret/fakedag' is not a DAG id"):
        run_method(ds.METHOD, ds.DataSelectionConfig(tokenizer="cl100k"), layout, _dag_mix(tmp_path, "../secret/fakedag"))
    assert not store.exists(layout.summary)


def test_a_dag_source_linked_out_of_the_staging_root_is_refused(store, tmp_path):
    """The same escape through a symlink: the resolved path must lie inside the staging root."""
    import os

    from synth_tasks.inputs import InputError

    secret = tmp_path / "secret"
    _publish(type(store)(f"file://{secret}"), "fakedag", "p1", [_instruction(0)], 1_000_000)
    os.makedirs(store.root.removeprefix("file://"), exist_ok=True)
    os.symlink(secret / "fakedag", f"{store.root.removeprefix('file://')}/fakedag")
    layout = RunLayout(store, "data_selection", "linked")
    with pytest.raises(InputError, match=r"source instructions/inst \(dag 'fakedag'.*reads only what DAGs publish under the "
                                         r"staging root .*is outside"):
        run_method(ds.METHOD, ds.DataSelectionConfig(tokenizer="cl100k"), layout, _dag_mix(tmp_path, "fakedag"))
    assert not store.exists(layout.summary)


def test_a_dag_source_skips_empty_runs_and_names_the_run_it_read(store, tmp_path):
    """The newest accounted run was empty and its domain vanished silently (issue #25)."""
    from synth_tasks.inputs import InputError

    older = _publish(store, "instruct", "2026-01-01", [_instruction(0), _instruction(1)], 1_000_000)
    newest = _publish(store, "instruct", "2026-01-02", [], 2_000_000)
    layout = RunLayout(store, "data_selection", "dag-empty")
    results = run_method(ds.METHOD, ds.DataSelectionConfig(tokenizer="cl100k"), layout, _dag_mix(tmp_path, "instruct"))
    summary = store.read_json(results["export"]["summary"])
    assert summary["accounted_for"], summary["problems"]
    records = _records(layout, results["export"], "train_jsonl", "validation_jsonl")
    assert sorted(r["id"] for r in records if r["domain"] == "instructions") == ["instructions/inst/i0",
                                                                                  "instructions/inst/i1"]
    assert summary["info"]["sources"]["instructions/inst"] == {
        "files": 1, "rows": 2, "dag_run": older.base, "skipped_runs": [f"{newest.base}: empty (0 records)"]}
    # no run with records at all: the run fails, naming the runs it passed over
    _publish(store, "instruct", "2026-01-01", [], 1_000_000)
    with pytest.raises(InputError, match=r"DAG 'instruct': no accounted-for run has train records: .*2026-01-02: empty"
                                         r".*2026-01-01: empty"):
        run_method(ds.METHOD, ds.DataSelectionConfig(tokenizer="cl100k"), RunLayout(store, "data_selection", "none"),
                   _dag_mix(tmp_path, "instruct"))


# -- issue #25: too_long is decided before sampling, so the target is met --------------------------
def test_items_over_max_tokens_never_leave_a_domain_under_its_target(store, tmp_path):
    """173 items were dropped as too_long after sampling and never replaced (issue #25). Here the
    four best-scored items are too long: the sample takes the next ones instead."""
    rows = _gsm8k_sample(14)  # 84 to 362 tokens each (cl100k, question + answer + EOS)
    for i, r in enumerate(rows):
        r["score"] = float(100 - i)
        if i in (0, 1, 2, 3, 11):  # the best four of domain big, the best of small: over 400 tokens
            r["answer"] = " ".join([r["answer"]] * 15)
    (tmp_path / "big.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:11]))
    (tmp_path / "small.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[11:]))
    (tmp_path / "mix.yaml").write_text("""
domains:
  big:
    target: 6
    sources: [{name: s, path: big.jsonl, score: score, licence: MIT}]
  small:
    target: 5
    sources: [{name: s, path: small.jsonl, score: score, licence: MIT}]
""")
    layout = RunLayout(store, "data_selection", "too-long")
    cfg = ds.DataSelectionConfig(tokenizer="cl100k", max_tokens=400, n_clusters=1)
    results = run_method(ds.METHOD, cfg, layout, f"file://{tmp_path}/mix.yaml")
    summary = store.read_json(results["export"]["summary"])
    assert summary["accounted_for"], summary["problems"]
    stages = summary["stages"]
    assert stages["select"]["filter_reasons"]["too_long"] == 5  # the long four of big, the long one of small
    assert stages["tokenize"]["filter_reasons"] == {}
    records = _records(layout, results["export"], "train_jsonl", "validation_jsonl")
    assert all(r["n_tokens"] <= 400 for r in records)
    # one cluster, best-scored first: the six best of those that fit
    assert sorted((r["score"] for r in records if r["domain"] == "big"), reverse=True) == [96, 95, 94, 93, 92, 91]
    sel = summary["info"]["selection"]
    assert (sel["big"]["too_long"], sel["big"]["eligible"], sel["big"]["selected"]) == (4, 7, 6)
    # the small domain cannot reach its target: it says so, and why
    assert len([r for r in records if r["domain"] == "small"]) == 2
    assert summary["info"]["under_target"] == [
        "under_target: small 2 of 5: pool exhausted (3 items after deduplication, 1 of them over max_tokens 400)"]


# -- issue #25: the chat template's special tokens are tokens, not text -----------------------------
@pytest.mark.parametrize("kind", ["embedded", "cl100k"])
def test_the_chat_templates_special_tokens_encode_as_one_id_each(kind):
    from synth_tasks.methods.data_selection.tokenized import template_specials

    specials = template_specials("chat_template")
    assert specials == ("<|im_end|>", "<|im_start|>")
    tok = load_tokenizer(kind, specials)
    text = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(text, specials=True)
    start, end = tok.special_tokens["<|im_start|>"], tok.special_tokens["<|im_end|>"]
    assert ids[0] == start and ids.count(start) == 2 and ids.count(end) == 1
    assert tok.decode(ids) == text and tok.identity()["special_tokens"] == {"<|im_end|>": end, "<|im_start|>": start}
    if kind == "embedded":
        assert (start, end) == (1, 2)  # the GGUF's own control tokens
    else:
        assert min(start, end) >= 100277 and tok.vocab_size == 100279  # above cl100k_base's vocabulary
    assert len(tok.encode("<|im_start|>")) > 1  # text that is not the template's stays text


def test_a_chat_template_mix_writes_special_token_ids_and_records_them(store, tmp_path):
    """`<|im_start|>` was encoded as 7 text tokens (issue #25)."""
    (tmp_path / "mix.yaml").write_text(f"""
domains:
  chat:
    target: 10
    sources:
      - {{name: oasst, path: {SAMPLES}/oasst_trees_sample.jsonl, format: oasst_trees, licence: CC0}}
""")
    layout = RunLayout(store, "data_selection", "chat-template")
    cfg = ds.DataSelectionConfig(tokenizer="cl100k", conversation_format="chat_template")
    results = run_method(ds.METHOD, cfg, layout, f"file://{tmp_path}/mix.yaml")
    export = results["export"]
    manifest = json.loads(store.read_bytes(export["tokenized_manifest"]))
    start = manifest["tokenizer"]["special_tokens"]["<|im_start|>"]
    tok = load_tokenizer("cl100k", ("<|im_end|>", "<|im_start|>"))
    folder = export["tokenized_manifest"].rsplit("/", 1)[0]
    rows = _records(layout, export, "train_jsonl")
    tokens, offsets, prompt_lengths = read_split(store, folder, "train")
    assert rows
    for i, r in enumerate(rows):
        prompt = tokens[offsets[i]:offsets[i] + prompt_lengths[i]]
        assert prompt[0] == start and list(prompt).count(start) == r["Input"].count("<|im_start|>")
        assert tok.decode(prompt) == r["Input"]


def test_the_mapped_stages_declare_their_measured_costs_so_a_gsm8k_sized_mix_is_one_task_a_stage():
    """At the 10 ms a record an undeclared text stage counts, the 7,473 GSM8K items were cut into 4
    screen tasks of about 1.5 s of real work each; with the measured costs, one task carries them."""
    from synth_tasks.method import DEFAULT_TEXT_SECONDS
    from synth_tasks.stage import plan_shards

    cfg = ds.DataSelectionConfig(input_path="x")
    mapped = [s for s in ds.METHOD.stages if s.mapped]
    assert [s.name for s in mapped] == ["seq2seq", "screen", "render", "tokenize"]
    assert all(s.cost is not None and 0 < s.seconds_per_record(cfg) < DEFAULT_TEXT_SECONDS for s in mapped)
    for unmapped, n in (("prepare", 7473), ("select", 2000)):
        work = sum(s.seconds_per_record(cfg) for s in ds.METHOD.mapped_after(ds.METHOD.stage(unmapped)))
        assert plan_shards(n, work, cfg.task_target_seconds, None, 1024) == [n]
    assert len(plan_shards(7473, 2 * DEFAULT_TEXT_SECONDS, cfg.task_target_seconds, None, 1024)) == 4
    # no benchmark to screen against: screen costs nothing, seq2seq still counts
    assert ds.METHOD.stage("screen").seconds_per_record(ds.DataSelectionConfig(input_path="x", benchmarks=[])) == 0
