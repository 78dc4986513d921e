"""The stage functions of data_selection (declared in ``METHOD``, ``__init__.py``)."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from synth_tasks.methods.data_selection.config import DataSelectionConfig
from synth_tasks.methods.data_selection.conversations import seq2seq_pair, tree_threads, trim_thread
from synth_tasks.prompts import load_prompt, render
from synth_tasks.quality.decontamination import Decontaminator
from synth_tasks.split import validation_bucket

if TYPE_CHECKING:  # the stage runner and the export import pyarrow: not at DAG parse time
    from synth_tasks.export import ExportContext
    from synth_tasks.stage import StageRun

log = logging.getLogger(__name__)

# What the export keeps of a record in the text mix (token ids go to the binary files only).
TEXT_FIELDS = ("id", "domain", "source", "licence", "kind", "Input", "Output", "question", "answer", "cluster",
               "fewshot_ids", "score", "group", "trimmed", "n_prompt_tokens", "n_tokens", "origin")


# Seconds of work per record of the mapped stages, for the shard plan (``Stage.cost``), from
# bench/bench_data_selection.py (the 7,473 GSM8K training items, 2 cores at load 6.7, the worst
# measured): seq2seq 0.08 ms a record, screen 0.9 ms against one benchmark (its n-gram index built
# once a task included), render 0.06 ms, tokenize 1.6 ms (the tokenizer loaded once a task
# included); at load 1.0, 0.015, 0.15, 0.06 and 1.7 ms. Each is declared at about twice the worst.
# Undeclared they counted 10 ms each, so a 30-second task held 1.5 seconds of work or less and the
# 7,473 items ran as 4 seq2seq and 4 screen tasks, each paying Airflow's start for little.
SEQ2SEQ_SECONDS = 0.0002
SCREEN_SECONDS_PER_BENCHMARK = 0.002
RENDER_SECONDS = 0.0002
TOKENIZE_SECONDS = 0.003


def screen_cost(cfg: DataSelectionConfig) -> float:
    return SCREEN_SECONDS_PER_BENCHMARK * len(cfg.benchmarks)


# -- prepare ------------------------------------------------------------------------------------
def prepare(run: StageRun[DataSelectionConfig], files: list[str]) -> None:
    """Read the mix file(s) and every source it lists: one record per question-answer row, and per
    conversation tree its root-to-leaf threads. Rows the source's filter refuses (and trees in other
    languages) are filtered; a bad row fails alone, naming its file and line. A mix file or a source
    that cannot be used fails the run before any record is made, naming it: every source is read
    first (a misspelt path, an unreadable or empty file, a ``dag:`` outside the staging root or
    without a run that has records). ``info.sources``: files and rows per source, and which run of
    a DAG was read."""
    from synth_tasks.inputs import InputError
    from synth_tasks.methods.data_selection.mix import read_source

    cfg = run.cfg
    mixes = _read_mixes(run, files)
    sources = []
    problems: list[str] = []
    for mix_url, mix in mixes:
        for domain_name, domain in mix.domains.items():
            for source in domain.sources:
                try:
                    data = read_source(source, mix_url, run.env, run.store)
                except InputError as exc:
                    where = f"path {source.path!r}" if source.path is not None else f"dag {source.dag!r}"
                    problems.append(f"source {domain_name}/{source.name} ({where}, in {mix_url}): {exc}")
                    continue
                sources.append((domain_name, domain, source, data))
    if problems:
        raise InputError(f"{len(problems)} source(s) cannot be used, so the run stops before any record is made: "
                         + "; ".join(problems))
    for domain_name, domain, source, data in sources:
        if data.dag_run is not None:
            log.info("source %s/%s: DAG %r, run %s%s", domain_name, source.name, source.dag, data.dag_run,
                     f" (newer runs passed over: {data.skipped_runs})" if data.skipped_runs else "")
        for url, rows in data.files:
            _read_source_rows(run, cfg, domain_name, domain, source, url, rows)
    run.info["sources"] = {f"{d}/{source.name}": data.describe() for d, _, source, data in sources}


def _read_mixes(run: StageRun[DataSelectionConfig], files: list[str]) -> list[tuple[str, object]]:
    """(URL, parsed mix) of every mix file; InputError naming the file when one is not UTF-8, not a
    valid mix, or defines a domain another mix file already did."""
    from synth_tasks.inputs import InputError
    from synth_tasks.methods.data_selection.mix import parse_mix

    mixes = []
    seen_domains: dict[str, str] = {}
    for mix_url in files:
        raw = run.input_store.read_bytes(mix_url)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{mix_url}: not UTF-8 (byte {exc.start})") from None
        mix = parse_mix(text, mix_url)
        clash = sorted(set(mix.domains) & set(seen_domains))
        if clash:
            raise InputError(f"{mix_url}: domains {clash} are already defined in {seen_domains[clash[0]]}")
        seen_domains |= {d: mix_url for d in mix.domains}
        mixes.append((mix_url, mix))
    return mixes


def _read_source_rows(run: StageRun[DataSelectionConfig], cfg: DataSelectionConfig, domain_name, domain, source,
                      url: str, rows) -> None:
    from synth_tasks.methods.data_selection.mix import field_value, filter_reason

    name = url.rsplit("/", 1)[-1]
    base = {"domain": domain_name, "source": source.name, "licence": source.licence, "origin": url,
            "target": domain.target, "template": domain.template,
            "fewshot_k": domain.fewshot_k if domain.fewshot_k is not None else cfg.fewshot_k,
            # every field from the start: a shard's Parquet takes its columns from its rows
            "Input": None, "Output": None, "trimmed": False, "cluster": None, "fewshot_ids": None, "fewshot_json": None}
    used: set[str] = set()
    for n, row in rows:
        raw_id = None if isinstance(row, Exception) or source.id is None else field_value(row, source.id)
        rid = f"{domain_name}/{source.name}/" + (str(raw_id) if raw_id not in (None, "") else f"{name}#{n}")
        if rid in used:
            run.failed(f"{domain_name}/{source.name}/{name}#{n}", f"duplicate_id: {url} row {n}: id {raw_id!r}")
            continue
        used.add(rid)
        if isinstance(row, Exception):
            run.failed(rid, f"bad_row: {url} row {n}: {row}")
            continue
        score = field_value(row, source.score) if source.score else None
        if score is not None and not isinstance(score, (int, float)):
            run.failed(rid, f"bad_row: {url} row {n}: score {source.score!r} is {score!r}, not a number")
            continue
        record = base | {"id": rid, "group": rid, "score": None if score is None else float(score)}
        if source.format == "oasst_trees":
            prompt = row.get("prompt")
            if not isinstance(prompt, dict) or "message_id" not in prompt:
                run.failed(rid, f"bad_row: {url} row {n}: no 'prompt' message node")
                continue
            lang = prompt.get("lang")
            reason = filter_reason(source, row, prompt.get("text") or "")
            if reason is None and cfg.languages and lang not in cfg.languages:
                reason = f"language: {lang!r} not in {list(cfg.languages)}"
            if reason:
                run.filtered(rid, reason, tree_id=row.get("message_tree_id"))
                continue
            threads = tree_threads(row)
            if not threads:
                run.filtered(rid, "no_thread: the root message is deleted or negatively reviewed")
                continue
            run.kept(rid, *(record | {"id": f"{rid}/t{k}", "kind": "conversation", "question": None, "answer": None,
                                      "thread_json": json.dumps(t, ensure_ascii=False)} for k, t in enumerate(threads)))
            continue
        question, answer = field_value(row, source.question), field_value(row, source.answer)
        missing = [f for f, v in ((source.question, question), (source.answer, answer))
                   if not isinstance(v, str) or not v.strip()]
        if missing:
            run.failed(rid, f"bad_row: {url} row {n}: no text in {missing}")
            continue
        reason = filter_reason(source, row, question)
        if reason:
            run.filtered(rid, reason, question=question)
            continue
        run.kept(rid, record | {"kind": "qa", "question": question.strip(), "answer": answer.strip(), "thread_json": None})


# -- seq2seq ------------------------------------------------------------------------------------
def seq2seq(run: StageRun[DataSelectionConfig], records: list[dict]) -> None:
    """Conversation threads become seq2seq pairs: Input = the conversation before the last assistant
    reply, rendered with role markers (or the chat template), Output = that reply. A trailing user
    turn is trimmed; threads then too short are filtered. Question-answer records pass through."""
    cfg = run.cfg
    template = None
    if cfg.conversation_format == "chat_template" and any(r["kind"] == "conversation" for r in records):
        from synth_tasks.methods.data_selection.tokenized import gguf_chat_template

        template = gguf_chat_template()
    for r in records:
        if r["kind"] != "conversation":
            run.kept(r["id"], r)
            continue
        messages, reason, trimmed = trim_thread(json.loads(r["thread_json"]), cfg.min_messages)
        if reason:
            run.filtered(r["id"], reason, thread=r["thread_json"])
            continue
        pair = seq2seq_pair(messages, cfg.conversation_format, template)
        run.kept(r["id"], r | {"question": "\n".join(m["text"] for m in messages[:-1]), "answer": pair["Output"],
                               "Input": pair["Input"], "trimmed": trimmed,
                               "thread_json": json.dumps(messages, ensure_ascii=False)})


# -- screen -------------------------------------------------------------------------------------
def screen(run: StageRun[DataSelectionConfig], records: list[dict]) -> None:
    """Decontamination: items sharing a 13-word sequence with a benchmark test set (question or
    answer) are filtered, naming the benchmark and the n-gram."""
    check = Decontaminator(tuple(run.cfg.benchmarks)) if run.cfg.benchmarks else None
    for r in records:
        verdict = check(r["question"] + "\n" + r["answer"]) if check else None
        if verdict is not None and not verdict.keep:
            run.filtered(r["id"], verdict.reason, question=r["question"])
        else:
            run.kept(r["id"], r)


# -- select -------------------------------------------------------------------------------------
def select(run: StageRun[DataSelectionConfig], records: list[dict]) -> None:
    """Across all domains: exact and near-duplicate items removed (the better-scored copy stays).
    Then per domain: question embeddings (cached), clusters, and for every item its nearest
    neighbours in the domain's pool as few-shot examples (never itself, never a validation item),
    which makes its training pair and so its token count known: pairs over ``max_tokens`` are
    filtered here (``too_long``), before sampling, so the sample only sees items that fit. Then a
    sample of each cluster in proportion to its size up to the domain's target (best-scored
    first). A domain whose eligible pool is smaller than its target is named in
    ``info.under_target`` with why. Per-domain clusters, sizes, sampled counts and diversity go to
    the summary."""
    from synth_tasks.methods.data_selection.selection import EmbeddingCache, cluster, nearest_examples, \
        proportional_sample
    from synth_tasks.methods.data_selection.tokenized import load_tokenizer, template_specials
    from synth_tasks.quality import diversity
    from synth_tasks.quality.dedup import exact_duplicate_of, near_duplicate_of

    import numpy as np

    cfg = run.cfg
    records = sorted(records, key=lambda r: (-(r["score"] if r["score"] is not None else float("-inf")), r["id"]))
    texts = [r["question"] + "\n" + r["answer"] for r in records]
    started = time.monotonic()
    exact = exact_duplicate_of(texts)
    near = near_duplicate_of(texts, cfg.near_duplicate_threshold)
    unique: list[dict] = []
    for r, ex, nd in zip(records, exact, near):
        if ex is not None:
            run.filtered(r["id"], f"exact_duplicate: of {records[ex]['id']}", question=r["question"])
        elif nd is not None:
            run.filtered(r["id"], f"near_duplicate: of {records[nd]['id']}", question=r["question"])
        else:
            unique.append(r)
    run.info["dedup"] = {"input": len(records), "unique": len(unique), "seconds": round(time.monotonic() - started, 3)}

    cache = EmbeddingCache(run.store)
    tok = load_tokenizer(cfg.tokenizer, template_specials(cfg.conversation_format))
    report: dict = {}
    under_target: list[str] = []
    for domain in sorted({r["domain"] for r in unique}):
        items = sorted((r for r in unique if r["domain"] == domain), key=lambda r: r["id"])
        questions = [r["question"] for r in items]
        t0, fresh0 = time.monotonic(), cache.computed
        embeddings = cache.embed(questions)
        embed_s = time.monotonic() - t0
        labels, how = cluster(embeddings, cfg)
        target = items[0]["target"]
        k = items[0]["fewshot_k"] if items[0]["template"] else 0
        train_side = np.array([validation_bucket(str(r["group"]), cfg.seed) < cfg.train_ratio for r in items], bool)
        # every item's examples, not only the sampled ones': its prompt, and so its length, before sampling
        t0 = time.monotonic()
        examples = nearest_examples(embeddings, list(range(len(items))), train_side, k)
        shots = {i: [{"id": items[j]["id"], "question": items[j]["question"], "answer": items[j]["answer"]}
                     for j in examples[i]] for i in range(len(items))}
        n_tokens = [sum(map(len, encode_pair(tok, cfg, r, training_prompt(r, shots[i])))) for i, r in enumerate(items)]
        length_s = time.monotonic() - t0
        eligible = [i for i, n in enumerate(n_tokens) if n <= cfg.max_tokens]
        scores = [items[i]["score"] for i in eligible]
        chosen = [eligible[j] for j in proportional_sample([labels[i] for i in eligible], target, cfg.seed,
                                                           scores if any(s is not None for s in scores) else None)]
        chosen_set = set(chosen)
        sizes: dict[int, int] = {}
        for label in labels:
            sizes[int(label)] = sizes.get(int(label), 0) + 1
        sampled: dict[int, int] = {}
        for i, r in enumerate(items):
            c = int(labels[i])
            if n_tokens[i] > cfg.max_tokens:
                run.filtered(r["id"], f"too_long: {n_tokens[i]} tokens > max_tokens {cfg.max_tokens} ({tok.kind})",
                             question=r["question"])
            elif i in chosen_set:
                sampled[c] = sampled.get(c, 0) + 1
                run.kept(r["id"], r | {"cluster": c, "fewshot_ids": [s["id"] for s in shots[i]],
                                       "fewshot_json": json.dumps(shots[i], ensure_ascii=False)})
            else:
                run.filtered(r["id"], f"not_sampled: cluster {c} ({sizes[c]} items) is over its share of the "
                             f"domain's target {target}", question=r["question"])
        too_long = len(items) - len(eligible)
        report[domain] = {
            "items": len(items), "target": target, "too_long": too_long, "eligible": len(eligible),
            "selected": len(chosen), "clustering": how,
            "embedding": {"seconds": round(embed_s, 3), "computed": cache.computed - fresh0,
                          "from_cache": len(items) - (cache.computed - fresh0)},
            "length_check": {"seconds": round(length_s, 3), "tokenizer": tok.kind, "max_tokens": cfg.max_tokens},
            "clusters": len(sizes), "cluster_sizes": {str(c): s for c, s in sorted(sizes.items())},
            "sampled_per_cluster": {str(c): sampled.get(c, 0) for c in sorted(sizes)},
            "fewshot_k": k,
            "diversity_before": diversity.diversity_report(questions, embeddings, labels),
            "diversity_selected": diversity.diversity_report([questions[i] for i in chosen], embeddings[chosen],
                                                             [labels[i] for i in chosen]),
        }
        if len(chosen) < target:
            why = (f"under_target: {domain} {len(chosen):,} of {target:,}: pool exhausted ({len(items):,} items after "
                   f"deduplication, {too_long:,} of them over max_tokens {cfg.max_tokens})")
            report[domain]["under_target"] = why
            under_target.append(why)
            log.warning(why)
        log.info("select %s: %d items, %d over max_tokens, %d clusters (%s), %d selected", domain, len(items),
                 too_long, len(sizes), how["mode"], len(chosen))
    run.info["selection"] = report
    run.info["under_target"] = under_target


# -- render -------------------------------------------------------------------------------------
def render_prompt(template: str | None, question: str, shots: list[dict]) -> str:
    """The domain's prompt (include/prompts/data_selection/{template}.txt) with its few-shot
    examples ({template}_example.txt each); without a template, the question itself."""
    if template is None:
        return question
    example = load_prompt(f"data_selection/{template}_example")
    shown = "\n\n".join(render(example, question=s["question"], answer=s["answer"]) for s in shots)
    return render(load_prompt(f"data_selection/{template}"), examples=shown, question=question)


def training_prompt(record: dict, shots: list[dict]) -> str:
    """The Input of a record's training pair: a conversation's rendered history, or the domain's
    few-shot prompt with ``shots``."""
    if record["kind"] == "conversation":
        return record["Input"]
    return render_prompt(record["template"], record["question"], shots)


def render_prompts(run: StageRun[DataSelectionConfig], records: list[dict]) -> None:
    """Every selected item as its training pair: Input = the domain's few-shot prompt (conversations:
    the rendered conversation), Output = the answer."""
    for r in records:
        run.kept(r["id"], r | {"Input": training_prompt(r, json.loads(r["fewshot_json"] or "[]")), "Output": r["answer"]})


# -- tokenize -----------------------------------------------------------------------------------
def encode_pair(tok, cfg: DataSelectionConfig, record: dict, prompt: str) -> tuple[list[int], list[int]]:
    """(prompt ids, output ids + EOS) of a record whose Input is ``prompt``. A conversation rendered
    with the chat template has the template's special tokens (``<|im_start|>``...) encoded as
    their one id each, not as text; everything else is text."""
    chat_template = record["kind"] == "conversation" and cfg.conversation_format == "chat_template"
    return tok.encode(prompt, specials=chat_template), tok.encode(record["answer"]) + [tok.eos_id]


def tokenize(run: StageRun[DataSelectionConfig], records: list[dict]) -> None:
    """Token ids with the chosen tokenizer (prompt, then output + EOS). Selection already dropped
    the pairs over max_tokens; one over it here (it cannot be, with the same tokenizer) is
    filtered with its count all the same."""
    from synth_tasks.methods.data_selection.tokenized import load_tokenizer, template_specials

    cfg = run.cfg
    tok = load_tokenizer(cfg.tokenizer, template_specials(cfg.conversation_format))
    for r in records:
        prompt_ids, output_ids = encode_pair(tok, cfg, r, r["Input"])
        n = len(prompt_ids) + len(output_ids)
        if n > cfg.max_tokens:
            run.filtered(r["id"], f"too_long: {n} tokens > max_tokens {cfg.max_tokens} ({tok.kind})",
                         question=r["question"])
            continue
        run.kept(r["id"], r | {"prompt_ids": prompt_ids, "output_ids": output_ids, "n_prompt_tokens": len(prompt_ids),
                               "n_tokens": n})


# -- export -------------------------------------------------------------------------------------
def text_records(records: list[dict]) -> list[dict]:
    """The text mix: domain, source, licence, cluster, few-shot ids, Input/Output (no token ids)."""
    return [{k: r.get(k) for k in TEXT_FIELDS} for r in records]


def tokenized_files(ctx: ExportContext, train: list[dict], validation: list[dict]) -> dict[str, str]:
    """The tokenized training files beside the text mix, in the same sample order, and their manifest."""
    from synth_tasks.methods.data_selection.tokenized import LAYOUT, load_tokenizer, template_specials, write_split

    tok = load_tokenizer(ctx.cfg.tokenizer, template_specials(ctx.cfg.conversation_format))
    ids = {r["id"]: r for r in ctx.records}
    outputs: dict[str, str] = {}
    counts: dict = {}
    for split, rows in (("train", train), ("validation", validation)):
        samples = [(list(ids[r["id"]]["prompt_ids"]), list(ids[r["id"]]["output_ids"])) for r in rows]
        outputs |= write_split(ctx.store, ctx.final_dir, split, samples, tok)
        per_domain: dict[str, int] = {}
        for r in rows:
            per_domain[r["domain"]] = per_domain.get(r["domain"], 0) + 1
        counts[split] = {"samples": len(rows), "tokens": sum(len(p) + len(o) for p, o in samples),
                         "prompt_tokens": sum(len(p) for p, _ in samples), "per_domain": dict(sorted(per_domain.items()))}
    licences = sorted({(r["domain"], r["source"], r["licence"]) for r in ctx.records})
    manifest = {"tokenizer": tok.identity(), "dtype": tok.dtype, "layout": LAYOUT, "eos_appended": True,
                "max_tokens": ctx.cfg.max_tokens, "sample_order": "sample i is line i of {split}.jsonl",
                "counts": counts, "sources": [{"domain": d, "source": s, "licence": l} for d, s, l in licences]}
    outputs["tokenized_manifest"] = ctx.store.write_bytes(f"{ctx.final_dir}/tokenized_manifest.json",
                                                          (json.dumps(manifest, indent=2) + "\n").encode())
    ctx.info["tokenized"] = {"tokenizer": tok.identity(), "counts": counts}
    return outputs
