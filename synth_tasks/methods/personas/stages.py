"""The personas method's stage functions (declared in ``synth_tasks.methods.personas.METHOD``).
Heavy imports (sentence-transformers, bm25s, trafilatura) happen inside them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, create_model

from synth_tasks.config import ConfigError
from synth_tasks.method import llm_seconds
from synth_tasks.methods.personas.checks import (PREFIXES, grounded_in, has_prefix, restates_persona, split_evidence,
                                                 strip_prefix, with_title_prefix)
from synth_tasks.methods.personas.config import PersonasConfig, PoolFrom, Source, Template
from synth_tasks.methods.personas.sources import (FolderFetcher, PassageIndex, WebFetcher, term_shares,
                                                  trending_terms)
from synth_tasks.prompts import load_prompt, render
from synth_tasks.quality.decontamination import Decontaminator
from synth_tasks.quality.filters import NoPlaceholders
from synth_tasks.quality.judge import JUDGE_MAX_TOKENS, LLMJudge

if TYPE_CHECKING:  # the stage runner imports pyarrow: not at DAG parse time
    from synth_tasks.export import ExportContext
    from synth_tasks.stage import StageRun


class PersonaOut(BaseModel):
    # maxLength reaches constrained decoders: a 135M model cannot ramble past it and cut the JSON.
    description: str = Field(min_length=1, max_length=400)
    domain: str = Field("", max_length=80)
    expertise: str = Field("", max_length=40)


class RelatedPersonaOut(PersonaOut):
    relation: str = Field("", max_length=60)


@lru_cache(maxsize=None)
def persona_list(n: int, related: bool = False) -> type[BaseModel]:
    """The answer asked for: at least ``n`` personas (minItems reaches a constrained decoder's grammar;
    the quality model, shown a one-item example, otherwise wrote one persona when asked for three)."""
    item = RelatedPersonaOut if related else PersonaOut
    return create_model("RelatedPersonaList" if related else "PersonaList",
                        personas=(list[item], Field(min_length=n, max_length=max(n, 20))))


class Queries(BaseModel):
    topics: list[str] = Field(default_factory=list, max_length=10)
    queries: list[str] = Field(min_length=1, max_length=10)


def _prompt(name: str, **values: str) -> list[dict]:
    return [{"role": "user", "content": render(load_prompt(f"personas/{name}"), **values)}]


def _persona_record(pid: str, out: PersonaOut, **fields) -> dict:
    return {"id": pid, "description": " ".join(out.description.split()), "domain": out.domain.strip(),
            "expertise": out.expertise.strip(), "relation": getattr(out, "relation", "").strip() or None} | fields


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def prepare(run: StageRun[PersonasConfig], files: list[str]) -> None:
    """Read the input texts (JSONL/Parquet, `text_column`); bad files and rows fail alone, empty
    texts are filtered."""
    cfg = run.cfg
    for rec in run.read_inputs(files, cfg.text_column, cfg.id_column):
        if not rec.text.strip():
            run.filtered(rec.id, "empty_text: no text to draw personas from")
        else:
            run.kept(rec.id, {"id": rec.id, "text": rec.text, "source": rec.source})


# --------------------------------------------------------------------------------------------
# Text-to-Persona
# --------------------------------------------------------------------------------------------
def text_to_persona(run: StageRun[PersonasConfig], texts: list[dict]) -> None:
    """Text-to-Persona: who is likely to read, write, like or dislike each text (structured:
    description, domain, expertise); `personas_per_text` per text."""
    cfg = run.cfg
    n = cfg.personas_per_text

    def ask(t: dict):
        return run.llm.chat(_prompt("text_to_persona", text=t["text"][: cfg.text_max_chars], n=str(n)),
                            cfg.sampling(f"{t['id']}:t2p"), response_model=persona_list(n))

    for t, result in run.llm_calls(texts, ask):
        outs = [p for p in result.parsed.personas if p.description.strip()][:n]
        if not outs:
            run.filtered(t["id"], "no_personas: the answer named no persona", raw=result.text)
            continue
        run.kept(t["id"], *(_persona_record(
            f"{run.layout.partition}:{t['id']}:p{k}", p, origin_text_id=t["id"], parent_id=None, depth=0,
            root_persona_id=f"{run.layout.partition}:{t['id']}:p{k}",
            lineage=[f"text:{t['id']}", f"{run.layout.partition}:{t['id']}:p{k}"], model=result.model)
            for k, p in enumerate(outs)))


# --------------------------------------------------------------------------------------------
# Persona-to-Persona
# --------------------------------------------------------------------------------------------
def expand(run: StageRun[PersonasConfig], personas: list[dict]) -> None:
    """Persona-to-Persona: each persona's close relations, then theirs, to `expand_depth`
    iterations. A persona stays whatever becomes of its expansion; a failed expansion call is
    audited in _dropped/ and counted (expand_errors)."""
    from synth_tasks.llm.client import LLMError

    cfg = run.cfg
    n = cfg.relations_per_persona

    async def tree(root: dict) -> dict:
        out, errors, tokens, cached = [], [], 0, True
        frontier = [root]
        for depth in range(1, cfg.expand_depth + 1):
            async def one(parent):
                try:
                    return parent, await run.llm.chat(_prompt("persona_to_persona", persona=parent["description"],
                                                              n=str(n)),
                                                      cfg.sampling(f"{parent['id']}:p2p"),
                                                      response_model=persona_list(n, related=True))
                except LLMError as exc:
                    errors.append({"parent": parent["id"], "error": str(exc), "raw": exc.raw})
                    return parent, None

            frontier_next = []
            for parent, result in await asyncio.gather(*(one(p) for p in frontier)):
                if result is None:
                    continue
                tokens += 0 if result.cached else result.completion_tokens
                cached = cached and result.cached
                for k, rel in enumerate([p for p in result.parsed.personas if p.description.strip()][:n]):
                    pid = f"{parent['id']}.r{k}"
                    child = _persona_record(pid, rel, origin_text_id=root["origin_text_id"], parent_id=parent["id"],
                                            depth=depth, root_persona_id=root["root_persona_id"],
                                            lineage=[*parent["lineage"], pid], model=result.model)
                    frontier_next.append(child)
                    out.append(child)
            frontier = frontier_next
        return {"children": out, "errors": errors, "cached": cached, "completion_tokens": tokens}

    for root, grown in run.llm_calls(personas, tree):
        for err in grown["errors"]:
            run.audit(root["id"], reason=f"expand_failed: {err['error']}", parent=err["parent"], raw=err["raw"])
        run.counts["expand_errors"] += len(grown["errors"])
        for child in grown["children"]:
            run.created(child["id"])
            run.kept(child["id"], child)
        run.kept(root["id"], root)
        run.counts["relations"] += len(grown["children"])


# --------------------------------------------------------------------------------------------
# dedup against the hub, and this run's pending hub part
# --------------------------------------------------------------------------------------------
# The artifact folder (``Stage(artifacts=...)``) where dedup leaves this run's new personas until
# the export adds them to the hub (here, not in hub.py: the declaration must not import numpy).
HUB_PENDING = "hub_pending"


class NoNewPersonas(ConfigError):
    """With pool=run, none of the run's personas is new: the run would publish an empty dataset.
    A ConfigError, so the task fails at once: a retry gives the same answer, and the fix is in the
    Params (pool=hub) or the input (texts the hub has not seen)."""


def dedup_personas(run: StageRun[PersonasConfig], personas: list[dict]) -> None:
    """Drop placeholder personas (template slots, no words), then those that nearly duplicate one in
    the hub or an earlier one of this run: MinHash
    over words (Jaccard >= `minhash_threshold`), then MiniLM cosine (>= `embedding_threshold`);
    each names the persona it duplicates. The new ones are this run's pending hub part, which the
    export adds to the hub once the run publishes. With pool=run, a run left with no new persona
    fails (NoNewPersonas), saying why, instead of publishing nothing."""
    from synth_tasks.methods.personas.hub import (created_date, embedding_duplicates, minhash_duplicates, read_hub,
                                                  write_pending_part)

    cfg, store, partition = run.cfg, run.store, run.layout.partition
    received = len(personas)
    # The hub holds published runs' personas only; this partition's own part (an earlier run of it)
    # is left out, as the pending part replaces it.
    hub = read_hub(store, except_partition=partition)
    # A template ("This is a [name] who has been studying [field]", "...") is no persona: it never
    # reaches the hub.
    real = NoPlaceholders()
    candidates = []
    for p in sorted(personas, key=lambda p: p["id"]):
        verdict = real(p["description"])
        if verdict.keep:
            candidates.append(p)
        else:
            run.filtered(p["id"], verdict.reason, description=p["description"])
    run.info["placeholder_personas"] = len(personas) - len(candidates)
    personas = candidates
    first = minhash_duplicates([h["description"] for h in hub], [h["id"] for h in hub],
                               [p["description"] for p in personas], [p["id"] for p in personas],
                               cfg.minhash_threshold)
    survivors, duplicates = [], []
    for p, dup in zip(personas, first):
        if dup is None:
            survivors.append(p)
        else:
            duplicates.append(dup)
            run.filtered(p["id"], f"near_duplicate_persona: of {dup.of} (minhash Jaccard >= {cfg.minhash_threshold})",
                         description=p["description"], duplicate_of=dup.of, by=dup.by)
    vectors = [None] * len(survivors)
    second: list = [None] * len(survivors)
    if cfg.embedding_dedup and survivors:
        import numpy as np

        from synth_tasks.quality.diversity import embed

        missing = [h for h in hub if h.get("embedding") is None]
        if missing:  # parts written with embedding_dedup off: embed them now
            for h, v in zip(missing, embed([h["description"] for h in missing])):
                h["embedding"] = v.tolist()
        vecs = embed([p["description"] for p in survivors])
        hub_vecs = np.array([h["embedding"] for h in hub], dtype=np.float32).reshape(len(hub), vecs.shape[1])
        second = embedding_duplicates(hub_vecs, [h["id"] for h in hub], vecs, [p["id"] for p in survivors],
                                      cfg.embedding_threshold)
        vectors = [v.tolist() for v in vecs]
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    new = []
    for p, dup, vec in zip(survivors, second, vectors):
        if dup is not None:
            duplicates.append(dup)
            run.filtered(p["id"], f"near_duplicate_persona: of {dup.of} (embedding cosine {dup.score} >= "
                         f"{cfg.embedding_threshold})", description=p["description"], duplicate_of=dup.of, by=dup.by)
            continue
        record = p | {"created_partition": partition, "created_date": created_date(partition, today)}
        new.append(record | {"embedding": vec})
        run.kept(p["id"], record)
    n_in, n_minhash = len(personas), len(personas) - len(survivors)
    n_embed = len(survivors) - len(new)
    if received and not new and cfg.pool == PoolFrom.RUN:
        raise NoNewPersonas(_nothing_new(received, received - n_in, duplicates, hub))
    # Pending until the export: a run that fails before it leaves the hub as it was.
    write_pending_part(store, run.artifact(HUB_PENDING), new)
    run.info["personas"] = {
        "hub_before": len(hub), "candidates": n_in, "minhash_duplicates": n_minhash,
        "embedding_duplicates": n_embed, "new": len(new), "hub_after": len(hub) + len(new),
        "duplicate_rate_minhash": round(n_minhash / n_in, 4) if n_in else 0.0,
        "duplicate_rate_embedding": round(n_embed / len(survivors), 4) if survivors else 0.0}


def _nothing_new(received: int, placeholders: int, duplicates: list, hub: list[dict]) -> str:
    """Why no persona of the run is new: placeholders, and duplicates by the hub partition (or this
    run) holding the persona each duplicates."""
    partition_of = {h["id"]: h["created_partition"] for h in hub}
    by_partition = Counter(partition_of.get(d.of, "this run") for d in duplicates)
    where = ", ".join(f"{n} of partition {part}" for part, n in by_partition.most_common())
    return (f"dedup: none of this run's {received} personas is new ({placeholders} placeholders, "
            f"{len(duplicates)} duplicates{': ' + where if where else ''}): with pool=run there is nothing "
            f"to write with. Give texts the hub has not seen, or write with the hub's personas (pool=hub).")


# --------------------------------------------------------------------------------------------
# select the personas to write with
# --------------------------------------------------------------------------------------------
_PERSONA_FIELDS = ("id", "description", "domain", "expertise", "relation", "origin_text_id", "parent_id",
                   "root_persona_id", "depth", "lineage", "created_partition", "created_date")


def select(run: StageRun[PersonasConfig], personas: list[dict]) -> None:
    """The pool to write with: this run's new personas (pool=run) or the hub's created in
    [hub_from, hub_to] (pool=hub; earlier runs' personas enter here as created records); at most
    `max_personas` of it, drawn with the run's seed. The rest are filtered with their reason."""
    from synth_tasks.methods.personas.hub import in_range, read_hub

    cfg = run.cfg
    pool = {p["id"]: p for p in personas}
    if cfg.pool == PoolFrom.HUB:
        # this partition's own part (an earlier run of it) is left out: this run's personas replace it
        for h in read_hub(run.store, except_partition=run.layout.partition):
            if h["id"] not in pool:
                run.created(h["id"])
                pool[h["id"]] = {k: h.get(k) for k in _PERSONA_FIELDS}
    real = NoPlaceholders()  # hub parts written before dedup filtered placeholders may hold some
    candidates = []
    for pid in sorted(pool):
        p = pool[pid]
        placeholder = real(p["description"])
        if cfg.pool == PoolFrom.HUB and not in_range(p, cfg.hub_from, cfg.hub_to):
            run.filtered(pid, f"outside_date_range: created {p['created_date']} not in "
                         f"[{cfg.hub_from or '...'}, {cfg.hub_to or '...'}]")
        elif not placeholder.keep:
            run.filtered(pid, placeholder.reason, description=p["description"])
        else:
            candidates.append(p)
    random.Random(cfg.seed).shuffle(candidates)
    for k, p in enumerate(candidates):
        if k < cfg.max_personas:
            run.kept(p["id"], {f: p.get(f) for f in _PERSONA_FIELDS})
        else:
            run.filtered(p["id"], f"not_sampled: {len(candidates)} personas in the pool, "
                                  f"max_personas={cfg.max_personas}")
    if cfg.source == Source.WEB:
        crawl_web(run)


# --------------------------------------------------------------------------------------------
# after the run is published: its new personas join the hub
# --------------------------------------------------------------------------------------------
def publish_hub_part(ctx: ExportContext) -> None:
    """The export's ``after_publish``: dedup's pending part becomes this partition's hub part, once
    the run's final/ is published, so only a published run adds to the hub. The hub part's URL is
    in the summary (``info.hub_part``)."""
    from synth_tasks.methods.personas.hub import publish_pending_part

    ctx.info["hub_part"] = publish_pending_part(ctx.store, ctx.artifact(HUB_PENDING), ctx.layout.partition)


# --------------------------------------------------------------------------------------------
# gather: persona agents write queries and retrieve sources
# --------------------------------------------------------------------------------------------
def source_index(run: StageRun[PersonasConfig]):
    """The passage index of the configured source (built once per task)."""
    cfg = run.cfg
    if cfg.source == Source.CORPUS:
        # {ds} is the day the run's personas are dated (a manual run: the day it runs), not the
        # data interval's day the environment would fill in.
        url = run.env.resolve_input(cfg.sources_path.replace("{ds}", _run_day(run)))
        fetcher = FolderFetcher(url, run.env.input_store(url), run.env.allowed_input_roots)
    else:  # the select task crawled: every gather shard reads the same pages from the day cache
        fetcher = web_fetcher(run, offline=True)
    docs = fetcher.documents()
    run.counts["source_documents"] = len(docs)
    if isinstance(fetcher, WebFetcher):
        run.counts.update(fetcher.counts(docs))
        run.info["web_skipped"] = dict(sorted(fetcher.skipped.items()))
        fetcher.require_documents(docs)
    return PassageIndex(docs), trends(run, docs)


def web_fetcher(run: StageRun[PersonasConfig], offline: bool) -> WebFetcher:
    """The run's web source, its hosts checked against $SYNTH_WEB_HOSTS; ``offline``: the day cache only."""
    cfg = run.cfg
    fetcher = WebFetcher(cfg.web_seed_urls, run.store, _run_day(run), cfg.web_allowed_domains, cfg.web_max_pages,
                         cfg.web_max_bytes, cfg.web_rate_limit_s, cfg.web_timeout_s, offline=offline)
    check_web_hosts(fetcher.allowed)
    return fetcher


def crawl_web(run: StageRun[PersonasConfig]) -> None:
    """source=web: the run's one crawl, in one task (select), which so owns every host: the per-host
    gap and Crawl-delay hold for the whole run, where gather shards crawling each would send the same
    requests at once. The pages land in the day cache the gather shards read. A crawl that found no
    document fails the task, naming what failed; its retry fetches the failed pages again (failures
    are not cached)."""
    fetcher = web_fetcher(run, offline=False)
    docs = fetcher.documents()
    run.counts.update(fetcher.counts(docs))
    run.info["web_skipped"] = dict(sorted(fetcher.skipped.items()))
    fetcher.require_documents(docs)


TOP_TRENDING = 10


def trends(run: StageRun[PersonasConfig], docs) -> list[dict]:
    """Today's trending topics: the terms of the fetched material that rose most against the
    `trend_window` earlier days; today's term shares are kept for the days after."""
    from synth_tasks.methods.personas.hub import earlier_trends, trends_url

    day = _run_day(run)
    today = term_shares(docs)
    run.store.write_json(trends_url(run.store, day), today)  # same docs, same file: every shard agrees
    top = trending_terms(today, earlier_trends(run.store, day, run.cfg.trend_window), TOP_TRENDING)
    run.info["trending_topics"] = top
    return top


def check_web_hosts(hosts: set[str]) -> None:
    """Whoever may trigger a run must not make the workers fetch any URL they name (internal
    services, cloud metadata): the deployment lists the hosts runs may crawl in $SYNTH_WEB_HOSTS
    (comma-separated host[:port]), as it lists input roots in $SYNTH_INPUT_ROOTS."""
    from synth_tasks.inputs import InputError

    listed = {h.strip() for h in os.environ.get("SYNTH_WEB_HOSTS", "").split(",") if h.strip()}
    refused = sorted(h for h in hosts if h not in listed)
    if refused:
        raise InputError(f"source=web: hosts {refused} are not in $SYNTH_WEB_HOSTS {sorted(listed)}: the deployment "
                         "lists the hosts runs may crawl")


def _run_day(run: StageRun[PersonasConfig]) -> str:
    from synth_tasks.methods.personas.hub import created_date

    return created_date(run.layout.partition, dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"))


def _jobs(cfg: PersonasConfig, p: dict, topics: list[str], queries: list[str], sources: list[dict]) -> list[dict]:
    return [{"id": f"{p['id']}|{t}", "persona_id": p["id"], "persona": p["description"], "domain": p["domain"],
             "expertise": p["expertise"], "root_persona_id": p["root_persona_id"], "lineage": p["lineage"],
             "template": str(t), "topics": topics, "queries": queries, "sources": sources}
            for t in cfg.templates]


QUERIES_MAX_TOKENS = 256  # a persona's topics and search queries: a short structured answer


def gather(run: StageRun[PersonasConfig], personas: list[dict]) -> None:
    """Each persona writes the topics and search queries it would look up (structured); its
    passages are retrieved from the source (folder corpus or web, BM25); then one job per template."""
    cfg = run.cfg
    if cfg.source == Source.NONE:
        for p in personas:
            run.kept(p["id"], *_jobs(cfg, p, [], [], []))
        return
    index, trending = source_index(run)
    hint = ""
    if cfg.prefer_trending and trending:
        hint = ("\nTopics trending in today's material: " + ", ".join(t["term"] for t in trending)
                + ". Prefer those that fit your interests.")

    def ask(p: dict):
        return run.llm.chat(_prompt("queries", persona=p["description"], n=str(cfg.queries_per_persona),
                                    trending=hint), cfg.sampling(f"{p['id']}:queries", QUERIES_MAX_TOKENS),
                            response_model=Queries)

    for p, result in run.llm_calls(personas, ask):
        queries = [q.strip() for q in result.parsed.queries if q.strip()][: cfg.queries_per_persona]
        topics = [t.strip() for t in result.parsed.topics if t.strip()][: cfg.queries_per_persona]
        hits = index.gather(queries + topics, cfg.sources_per_persona)
        sources = [{"ref": h.ref, "text": h.text, "score": h.score} for h in hits]
        run.counts["personas_with_sources"] += bool(sources)
        run.kept(p["id"], *_jobs(cfg, p, topics, queries, sources))


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------
def _sources_block(sources: list[dict]) -> str:
    if not sources:
        return ""
    listed = "\n\n".join(f"[{k + 1}] {s['text']}" for k, s in enumerate(sources))
    return f"\n\nSources you gathered (stay grounded in them):\n{listed}\n"


def _evidence_block(sources: list[dict]) -> str:
    return "\n" + load_prompt("personas/evidence_instruction") if sources else ""


def _conversation(messages: list[dict]) -> str:
    if not messages:
        return "The conversation is empty."
    names = {"user": "You", "assistant": "Assistant"}
    return "Conversation so far:\n" + "\n".join(f"{names[m['role']]}: {m['content']}" for m in messages)


def generate(run: StageRun[PersonasConfig], jobs: list[dict]) -> None:
    """Write each job's template conditioned on its persona (and its sources): a math problem, a
    user prompt, an article, or a dialogue of `turns` persona messages each answered."""
    cfg = run.cfg

    async def write(job: dict) -> dict:
        sources = job["sources"] or []
        if job["template"] != "multi_turn":
            r = await run.llm.chat(_prompt(job["template"], persona=job["persona"], sources=_sources_block(sources),
                                           evidence=_evidence_block(sources)), cfg.sampling(job["id"]))
            return {"raw": r.text, "messages": None, "model": r.model, "cached": r.cached,
                    "completion_tokens": r.completion_tokens}
        messages: list[dict] = []
        raw_first, tokens, cached, model = None, 0, True, None
        system = [{"role": "system", "content": _prompt(
            "multi_turn_assistant", sources=_sources_block(sources), evidence=_evidence_block(sources))[0]["content"]}]
        for turn in range(cfg.turns):
            u = await run.llm.chat(_prompt("multi_turn_user", persona=job["persona"], sources=_sources_block(sources),
                                           conversation=_conversation(messages)), cfg.sampling(f"{job['id']}:u{turn}"))
            raw_first = raw_first if raw_first is not None else u.text
            messages.append({"role": "user", "content": strip_prefix(u.text, PREFIXES["multi_turn"])})
            a = await run.llm.chat(system + messages, cfg.sampling(f"{job['id']}:a{turn}"))
            messages.append({"role": "assistant", "content": a.text.strip()})
            tokens += (0 if u.cached else u.completion_tokens) + (0 if a.cached else a.completion_tokens)
            cached, model = cached and u.cached and a.cached, a.model
        return {"raw": raw_first, "messages": messages, "model": model, "cached": cached, "completion_tokens": tokens}

    for job, out in run.llm_calls(jobs, write):
        run.kept(job["id"], job | {"raw": out["raw"], "messages": out["messages"], "model": out["model"]})


# --------------------------------------------------------------------------------------------
# filter
# --------------------------------------------------------------------------------------------
def filter_outputs(run: StageRun[PersonasConfig], outputs: list[dict]) -> None:
    """Keep outputs that start with their template's prefix, say more than their persona, quote
    evidence found in their sources (when the agent retrieved any), and share no 13-gram with a
    benchmark test set (math problems)."""
    cfg = run.cfg
    decon = Decontaminator() if cfg.decontaminate and "math_problem" in cfg.templates else None
    for o in outputs:
        verdict, body, found = check_output(o, cfg, decon)
        if not verdict.keep:
            run.filtered(o["id"], verdict.reason, template=o["template"], persona=o["persona"], raw=o["raw"])
            continue
        messages = o["messages"]
        if messages is not None:  # evidence lines are for the check, not the training text
            messages = [m | {"content": split_evidence(m["content"])[0]} for m in messages]
        run.kept(o["id"], {
            "id": o["id"], "persona_id": o["persona_id"], "persona": o["persona"], "domain": o["domain"],
            "expertise": o["expertise"], "template": o["template"], "output": body, "messages": messages,
            "sources": found, "queries": o["queries"], "topics": o["topics"], "lineage": o["lineage"],
            "root_persona_id": o["root_persona_id"], "model": o["model"]})


def check_output(o: dict, cfg: PersonasConfig, decon=None):
    """(verdict, the output's text without prefix and evidence lines, the evidence found per quote)."""
    prefix = PREFIXES[o["template"]]
    if o["template"] == "knowledge_text":
        o = o | {"raw": with_title_prefix(o["raw"])}
    verdict = has_prefix(o["raw"], prefix)
    if not verdict.keep:
        return verdict, None, None
    if o["messages"] is not None:
        body = "\n\n".join(f"{m['role'].capitalize()}: {split_evidence(m['content'])[0]}" for m in o["messages"])
        quotes = [q for m in o["messages"] if m["role"] == "assistant" for q in split_evidence(m["content"])[1]]
        first_user = o["messages"][0]["content"]
        verdict = restates_persona(first_user, o["persona"], cfg.restate_threshold)
    else:
        text, quotes = split_evidence(o["raw"])
        body = text.strip() if o["template"] == "knowledge_text" else strip_prefix(text, prefix)
        verdict = restates_persona(strip_prefix(text, prefix), o["persona"], cfg.restate_threshold)
    if not verdict.keep:
        return verdict, None, None
    found: list[dict] = []
    if o["sources"]:
        verdict, found = grounded_in(quotes, o["sources"], cfg.grounding_threshold)
        if not verdict.keep:
            return verdict, None, None
    if decon is not None and o["template"] == "math_problem":
        verdict = decon(body)
        if not verdict.keep:
            return verdict, None, None
    return verdict, body, found


# --------------------------------------------------------------------------------------------
# dedup outputs across personas
# --------------------------------------------------------------------------------------------
def dedup_outputs(run: StageRun[PersonasConfig], outputs: list[dict]) -> None:
    """Drop outputs of one template that nearly duplicate an earlier one (another persona's):
    MinHash over word 3-grams, Jaccard >= `output_duplicate_threshold`."""
    from synth_tasks.quality.dedup import minhash_duplicate_of

    by_template: dict[str, list[dict]] = {}
    for o in sorted(outputs, key=lambda o: o["id"]):
        by_template.setdefault(o["template"], []).append(o)
    for rows in by_template.values():
        found = minhash_duplicate_of([o["output"] for o in rows], threshold=run.cfg.output_duplicate_threshold,
                                     num_perm=128, shingle_words=3)
        for o, dup in zip(rows, found):
            if dup is None:
                run.kept(o["id"], o)
                run.counts[f"final_{o['template']}"] += 1
            else:
                run.filtered(o["id"], f"near_duplicate_output: of {rows[dup]['id']}", output=o["output"])


# --------------------------------------------------------------------------------------------
# optional responses and HelpSteer2 judging (shared quality layer)
# --------------------------------------------------------------------------------------------
RESPONDED = ("math_problem", "user_instruction")


def respond_and_judge(run: StageRun[PersonasConfig], outputs: list[dict]) -> None:
    """With `respond`: answer each math problem and user prompt, score the pair on the HelpSteer2
    attributes (the shared LLM judge) and filter pairs under `min_judge_score`. Without it, or for
    articles and dialogues, records pass unchanged and no LLM is called."""
    cfg = run.cfg
    todo = [o for o in outputs if cfg.respond and o["template"] in RESPONDED]
    for o in outputs:
        if not (cfg.respond and o["template"] in RESPONDED):
            run.kept(o["id"], o | {"response": None, "judge_scores": None})
    if not todo:
        return
    judge = LLMJudge(run.llm)

    async def answer_and_score(o: dict) -> dict:
        r = await run.llm.chat([{"role": "user", "content": o["output"]}], cfg.sampling(f"{o['id']}:response"))
        scores = await judge.score(o["output"], r.text.strip())
        return {"response": r.text.strip(), "scores": scores, "cached": r.cached,
                "completion_tokens": r.completion_tokens}

    for o, done in run.llm_calls(todo, answer_and_score):
        record = o | {"response": done["response"], "judge_scores": done["scores"]}
        if done["scores"]["overall"] < cfg.min_judge_score:
            run.filtered(o["id"], f"low_judge_score: {done['scores']['overall']} < {cfg.min_judge_score}",
                         output=o["output"], response=done["response"], scores=json.dumps(done["scores"]))
        else:
            run.kept(o["id"], record)


# --------------------------------------------------------------------------------------------
# what a record costs, for the shard plan (``Stage.cost``): the LLM stages by their requests, a
# stage that only passes its records on by none (no work to size by: one task), filter measured
# --------------------------------------------------------------------------------------------
# filter: prefix, persona restatement, evidence quotes found in the sources and the 13-gram check
# of math problems: 0.9 ms an output (bench/bench_stage_costs.py, the quality model's outputs);
# declared about twice that, an output a template of each selected persona
FILTER_SECONDS = 0.002


def expand_requests(cfg: PersonasConfig) -> int:
    """Per input text (expand maps over prepare's shards): each of its personas grows a tree of
    ``expand_depth`` levels, one request for every persona whose relations are asked for: 1 + n +
    ... + n^(depth-1) with n relations a persona (the paper's 6 levels of 2: 63 requests)."""
    return cfg.personas_per_text * sum(cfg.relations_per_persona ** level for level in range(cfg.expand_depth))


def generate_requests(cfg: PersonasConfig) -> int:
    """Per selected persona: one request a template, a dialogue two a turn."""
    dialogues = sum(t == Template.MULTI_TURN for t in cfg.templates)
    return len(cfg.templates) - dialogues + dialogues * 2 * cfg.turns


def expand_cost(cfg: PersonasConfig) -> float:
    return llm_seconds(cfg, requests=expand_requests(cfg))


def gather_cost(cfg: PersonasConfig) -> float:
    return 0.0 if cfg.source == Source.NONE else llm_seconds(cfg, requests=1, max_tokens=QUERIES_MAX_TOKENS)


def generate_cost(cfg: PersonasConfig) -> float:
    return llm_seconds(cfg, requests=generate_requests(cfg))


def filter_cost(cfg: PersonasConfig) -> float:
    return FILTER_SECONDS * len(cfg.templates)


def respond_cost(cfg: PersonasConfig) -> float:
    """Per output: its response, then the judge's scores; without respond the outputs pass on."""
    if not cfg.respond:
        return 0.0
    return llm_seconds(cfg, requests=1) + llm_seconds(cfg, requests=1, max_tokens=JUDGE_MAX_TOKENS)
