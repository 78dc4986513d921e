"""Research papers to grounded QA: PDFs become a structured extraction (blocks in reading order with
their pages and bounding boxes: headings, paragraphs, tables as grids, figure captions with the
figure's region and a PNG of it, equations, references), published for other DAGs, then
question-answer pairs whose every answer cites the pages and quotes that support it.

Stages (declared in ``METHOD`` at the end):
    extract   .pdf files    -> one record per paper: its blocks and figure crops; a bad PDF fails alone
                               (encrypted, not a PDF, truncated, no text layer, no pages)   (one task)
    describe  papers        -> figure descriptions from a vision endpoint (describe_figures)  (mapped, LLM)
    publish   papers        -> {partition}/publish/{paper}/papers.parquet, paper.md, figures/*.png;
                               updates the Airflow Asset "papers/extracted"                  (one task)
    plan      papers        -> QA jobs: per section context the types drawn by weight, plus
                               multi-hop jobs over two sections                              (mapped)
    generate  jobs          -> question, answer, citations [{page, block_id, quote}], steps   (mapped, LLM)
    ground    pairs         -> pairs whose every quote is on its cited page (and, for numeric
                               questions, whose numbers are in the cited table)              (mapped)
    dedup     all pairs     -> near-duplicate questions removed per paper                   (one task)
    render    unique pairs  -> chat records, citations rendered as "(p. 4)"                  (mapped)
    export    (core)        -> train/validation grouped by paper

Heavy imports (pdfplumber, pypdfium2, the LLM client) happen inside the stage functions: the DAG
file imports this module when Airflow parses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re

from pydantic import model_validator

from synth_tasks.config import LLMParams, MethodConfig, SamplingParams, override, param
from synth_tasks.method import Export, Method, Stage
from synth_tasks.methods.papers.qa import SINGLE_CONTEXT_TYPES, PaperQA, QAType

log = logging.getLogger(__name__)

ASSET = "papers/extracted"


class PapersConfig(LLMParams):
    input_path: str = override(
        MethodConfig, "input_path", "include/sample_data/papers",
        "Folder, file or glob of .pdf research papers, or an s3:// URL. Relative paths are under the project "
        "root (include/... is the shipped data). {ds} is replaced by the run's data-interval date.")
    shard_size: int = override(MethodConfig, "shard_size", 8)
    train_ratio: float = override(MethodConfig, "train_ratio", 0.8)
    context_max_tokens: int = param(700, "A section longer than this is cut into several contexts, between "
                                    "blocks (a table is never cut).", title="Max context tokens", ge=100, le=16000)
    context_min_tokens: int = param(60, "A shorter context joins the next one of the same section.",
                                    title="Min context tokens", ge=0, le=4000)
    max_contexts_per_paper: int | None = param(None, "Use only the first N contexts of each paper (all when "
                                               "empty).", title="Max contexts per paper", ge=1)
    questions_per_context: int = param(2, "QA pairs planned per context.", title="Questions per context",
                                       ge=1, le=20)
    type_weights: dict[QAType, float] = param(
        {t: 1.0 for t in SINGLE_CONTEXT_TYPES}, "Relative weight of each single-context QA type (0 turns one off); "
        "numeric_table is only asked of contexts holding a table. Multi-hop questions are planned by "
        "multi_hop_per_paper.", title="QA type weights")
    multi_hop_per_paper: int = param(2, "Multi-hop questions per paper, each over two sections (a passage and "
                                     "the table it cites first).", title="Multi-hop questions per paper", ge=0, le=100)
    describe_figures: bool = param(False, "Ask a vision endpoint (vision_conn_id) for a description of each "
                                   "figure, grounded in its caption. The embedded text model is never sent images.",
                                   title="Describe figures")
    figure_dpi: int = param(110, "Resolution of the figure crops (PNG).", title="Figure DPI", ge=36, le=600)
    temperature: float = param(0.7, "Sampling temperature.", section="Generation", title="Temperature",
                               ge=0.0, le=2.0)
    max_tokens: int = param(512, "Max tokens per LLM answer.", section="Generation", title="Max tokens",
                            ge=16, le=16384)
    quote_threshold: float = param(90.0, "Min fuzzy match (0-100, rapidfuzz partial ratio) of every quote on the "
                                   "page it cites.", section="Quality", title="Quote match threshold", ge=80, le=100)
    min_quote_chars: int = param(8, "Quotes shorter than this prove nothing (a lone number matches any table).",
                                 section="Quality", title="Min quote characters", ge=1, le=200)
    duplicate_threshold: float = param(90.0, "Questions of one paper at or above this similarity (0-100) are "
                                       "near-duplicates.", section="Quality", title="Duplicate threshold",
                                       ge=0, le=100)
    vision_conn_id: str | None = param(None, "Airflow connection of the endpoint that describes figures: an "
                                       "OpenAI-compatible server taking image_url content parts (default: "
                                       "llm_conn_id).", section="LLM endpoint", title="Vision connection")
    vision_model: str | None = param(None, "Vision model name (default: the connection's).",
                                     section="LLM endpoint", title="Vision model")

    @model_validator(mode="after")
    def _weights(self):
        if QAType.MULTI_HOP in self.type_weights:
            raise ValueError("type_weights: multi_hop is planned per paper, set multi_hop_per_paper instead")
        if any(w < 0 for w in self.type_weights.values()):
            raise ValueError("type_weights: weights must be >= 0")
        if not any(w > 0 for w in self.type_weights.values()) and self.multi_hop_per_paper == 0:
            raise ValueError("type_weights: no QA type has a weight > 0 and multi_hop_per_paper is 0")
        return self

    def sampling(self, job_id: str, temperature: float | None = None) -> SamplingParams:
        return SamplingParams.seeded(self.seed, job_id, top_p=0.95, max_tokens=self.max_tokens,
                                     temperature=self.temperature if temperature is None else temperature)


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def paper_ids(urls: list[str]) -> dict[str, str]:
    """One id per file, safe as a folder name: the file name's stem; a short hash of the URL is
    added where two files share a stem."""
    stems = {u: re.sub(r"[^A-Za-z0-9_.-]", "-", u.rsplit("/", 1)[-1].rsplit(".", 1)[0]).strip(".-") or "paper"
             for u in urls}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    return {u: s if counts[s] == 1 else f"{s}-{hashlib.sha256(u.encode()).hexdigest()[:6]}" for u, s in stems.items()}


# --------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------
def extract_papers(run, files: list[str]) -> None:
    """Read every PDF into blocks in reading order (two columns kept apart; running headers, footers
    and page numbers removed; line-end hyphens repaired), each with its page and bounding box, and
    render each figure's region to PNG. A bad PDF (encrypted, not a PDF, truncated, no text layer,
    no pages) fails alone, naming the file and the reason."""
    from synth_tasks.methods.papers.extract import BadPDF, extract_paper, render_figures

    cfg: PapersConfig = run.cfg
    ids = paper_ids(files)
    progress = run.progress(len(files), "extract")
    for url in files:
        try:
            data = run.input_store.read_bytes(url)
            paper = extract_paper(data, url, ids[url])
            figures = [b for b in paper["blocks"] if b["figure_bbox"]]
            try:
                pngs = render_figures(data, figures, cfg.figure_dpi)
            except RuntimeError as exc:  # pypdfium2's PdfiumError: pdfminer read the file, pdfium cannot
                raise BadPDF("unrenderable_pdf", url, f"figures: {type(exc).__name__}: {exc}") from None
        except BadPDF as exc:
            log.error("paper failed: %s", exc)
            run.failed(url, str(exc))
            progress.update(error=True)
            continue
        except OSError as exc:
            run.failed(url, f"unreadable_file: {url}: {exc}")
            progress.update(error=True)
            continue
        kinds: dict[str, int] = {}
        for b in paper["blocks"]:
            kinds[b["kind"]] = kinds.get(b["kind"], 0) + 1
        for kind, n in kinds.items():
            run.counts[f"blocks_{kind}"] += n
        run.counts["pages"] += paper["n_pages"]
        run.counts["pages_without_text"] += len(paper["pages_without_text"])
        if paper["pages_without_text"]:
            log.warning("%s: pages %s have no text layer (scans?): nothing is read from them", url,
                        paper["pages_without_text"])
        blocks = paper.pop("blocks")
        run.kept(url, paper | {"id": paper["paper_id"], "source_file": url, "blocks": json.dumps(blocks, ensure_ascii=False),
                               "page_sizes": json.dumps(paper["page_sizes"]),
                               "figures": [{"block_id": k, "png": v} for k, v in pngs.items()]})
        progress.update()
    log.info("extract: %d files -> %d papers, %d pages", len(files), len(run.outputs), run.counts["pages"])


# --------------------------------------------------------------------------------------------
# describe (figures, optional)
# --------------------------------------------------------------------------------------------
def _text_only(endpoint) -> bool:
    """The embedded llama.cpp servers run text models: they are never sent images."""
    from synth_tasks.llm import embedded

    models = embedded.MODELS.values()
    return endpoint.model in {m.alias for m in models} or any(
        endpoint.base_url == (embedded.read_state(m) or {}).get("base_url") for m in models)


def figure_messages(caption: str, png: bytes) -> list[dict]:
    import base64

    from synth_tasks.prompts import load_prompt, render

    url = "data:image/png;base64," + base64.b64encode(png).decode()
    return [{"role": "user", "content": [
        {"type": "text", "text": render(load_prompt("papers/describe_figure"), caption=caption)},
        {"type": "image_url", "image_url": {"url": url}}]}]


def describe(run, papers: list[dict]) -> None:
    """With describe_figures: ask the vision endpoint to describe each figure (its PNG crop, grounded
    in its caption) and keep the description on the figure's block. A text-only endpoint (the
    embedded model) is never sent images: each figure is then marked skipped with the reason. Without
    describe_figures the papers pass unchanged."""
    from synth_tasks.ledger import StageLedger

    cfg: PapersConfig = run.cfg
    if not cfg.describe_figures or not any(p["figures"] for p in papers):
        for p in papers:
            run.kept(p["id"], p)
        return
    run.llm  # noqa: B018 - resolves the endpoint, to know whether it takes images
    skip = "text_only_endpoint: the embedded model is a text model; figures are not sent to it" \
        if _text_only(run.endpoint) else None
    items = [{"id": f"{p['id']}#{f['block_id']}", "paper": p["id"], "block_id": f["block_id"], "png": f["png"],
              "caption": next(b["text"] for b in json.loads(p["blocks"]) if b["block_id"] == f["block_id"])}
             for p in papers for f in p["figures"]]
    notes: dict[str, dict] = {}
    if skip is not None:
        log.warning("describe: %s (%d figures)", skip, len(items))
        notes = {i["id"]: {"figure_description": None, "figure_description_skipped": skip} for i in items}
        run.counts["figures_not_described"] += len(items)
    else:
        scratch = StageLedger(run.stage.name, run.shard)  # a failed figure does not fail its paper
        answered = run.llm_calls(items, lambda i: run.llm.chat(figure_messages(i["caption"], i["png"]),
                                                               cfg.sampling(i["id"], temperature=0.2)), ledger=scratch)
        for item, result in answered:
            notes[item["id"]] = {"figure_description": result.text.strip(), "figure_description_skipped": None}
        for row in scratch.rows:
            notes[row["record_id"]] = {"figure_description": None, "figure_description_skipped": row["error"]}
            run.audit(row["record_id"], reason=row["error"], raw=row["raw_response"])
        run.counts["figures_described"] += len(answered)
        run.counts["figures_not_described"] += len(scratch.rows)
    for p in papers:
        blocks = json.loads(p["blocks"])
        for b in blocks:
            note = notes.get(f"{p['id']}#{b['block_id']}")
            if note is not None:
                b.update(note)
        run.kept(p["id"], p | {"blocks": json.dumps(blocks, ensure_ascii=False)})


# --------------------------------------------------------------------------------------------
# publish (the Asset papers/extracted)
# --------------------------------------------------------------------------------------------
BLOCK_COLUMNS = ("paper_id", "block_id", "kind", "level", "section_path", "page", "bbox", "text", "table_cells",
                 "label", "caption", "figure_bbox", "figure_image", "figure_description")


def block_rows(paper_id: str, blocks: list[dict], images: dict[str, str]) -> list[dict]:
    """papers.parquet's rows: one per block, the same columns for every paper."""
    return [{"paper_id": paper_id, **{k: b.get(k) for k in BLOCK_COLUMNS[1:]}, "figure_image": images.get(b["block_id"])}
            for b in blocks]


def publish(run, papers: list[dict]) -> None:
    """Publish each paper's extraction where other DAGs read it (the Airflow Asset papers/extracted):
    publish/{paper_id}/papers.parquet (one row per block: kind, section path, page, bbox, text,
    table cells as JSON, figure region and image), paper.md (one markdown rendering) and
    figures/{block_id}.png."""
    import pyarrow as pa

    from synth_tasks.methods.papers.extract import paper_markdown

    store, root = run.store, run.layout.stage_dir(run.stage.name)
    schema = pa.schema([("paper_id", pa.string()), ("block_id", pa.string()), ("kind", pa.string()),
                        ("level", pa.int32()), ("section_path", pa.list_(pa.string())), ("page", pa.int32()),
                        ("bbox", pa.list_(pa.float64())), ("text", pa.string()), ("table_cells", pa.string()),
                        ("label", pa.string()), ("caption", pa.string()), ("figure_bbox", pa.list_(pa.float64())),
                        ("figure_image", pa.string()), ("figure_description", pa.string())])
    for p in papers:
        folder = f"{root}/{p['paper_id']}"
        blocks = json.loads(p["blocks"])
        images = {}
        for f in p["figures"]:
            store.write_bytes(f"{folder}/figures/{f['block_id']}.png", f["png"])
            images[f["block_id"]] = f"figures/{f['block_id']}.png"
        parquet = store.write_parquet(f"{folder}/papers.parquet", block_rows(p["paper_id"], blocks, images), schema)
        markdown = store.write_bytes(f"{folder}/paper.md", paper_markdown(p | {"blocks": blocks}, images).encode())
        run.kept(p["id"], {k: v for k, v in p.items() if k != "figures"} | {
            "extraction": parquet, "markdown": markdown, "n_figures": len(images)})
    run.info["extracted"] = {"asset": ASSET, "url": root, "papers": len(papers)}


# --------------------------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------------------------
def plan_types(cfg: PapersConfig, context_id: str, has_table: bool) -> list[QAType]:
    """``questions_per_context`` single-context types drawn by weight (deterministic per context),
    distinct while there are enough; numeric_table only where the context holds a table."""
    pool = {t: cfg.type_weights.get(t, 0.0) for t in SINGLE_CONTEXT_TYPES}
    if not has_table:
        pool[QAType.NUMERIC_TABLE] = 0.0
    pool = {t: w for t, w in pool.items() if w > 0}
    rng = random.Random(_stable_int(f"{cfg.seed}:{context_id}:types"))
    chosen: list[QAType] = []
    while len(chosen) < cfg.questions_per_context and pool:
        kind = rng.choices(list(pool), weights=list(pool.values()))[0]
        chosen.append(kind)
        if len(pool) > 1:
            pool.pop(kind)
    return chosen


def _job(paper: dict, job_id: str, qa_type: QAType, contexts, all_blocks: list[dict]) -> dict:
    from synth_tasks.methods.papers.qa import page_texts

    blocks = [b for ctx in contexts for b in ctx.blocks]
    slim = [{k: b.get(k) for k in ("block_id", "page", "kind", "text", "table_cells", "caption", "label")}
            for b in blocks]
    return {"id": job_id, "paper_id": paper["paper_id"], "title": paper.get("title") or paper["paper_id"],
            "source_file": paper["source_file"], "qa_type": str(qa_type),
            "sections": [" / ".join(ctx.section) for ctx in contexts],
            "first_context_size": len(contexts[0].blocks),  # where a multi-hop job's second context starts
            "context_blocks": json.dumps(slim, ensure_ascii=False),
            "pages": json.dumps(page_texts(all_blocks, {b["page"] for b in blocks}), ensure_ascii=False)}


def plan(run, papers: list[dict]) -> None:
    """Cut each paper into contexts (its sections, by tokens, between blocks; never the references)
    and plan its QA jobs: per context `questions_per_context` types drawn by `type_weights`, plus
    `multi_hop_per_paper` jobs over two sections. A paper with no usable text is filtered."""
    from synth_tasks.methods.papers.qa import cross_pairs, section_contexts

    cfg: PapersConfig = run.cfg
    for p in papers:
        blocks = json.loads(p["blocks"])
        contexts = section_contexts(blocks, cfg.context_max_tokens, cfg.context_min_tokens)
        if cfg.max_contexts_per_paper is not None:
            contexts = contexts[: cfg.max_contexts_per_paper]
        if not contexts:
            run.filtered(p["id"], "no_context: the paper has no section text to ask about", title=p.get("title"))
            continue
        jobs = []
        for ctx in contexts:
            cid = f"{p['paper_id']}:c{ctx.index:03d}"
            for k, kind in enumerate(plan_types(cfg, cid, ctx.has_table)):
                jobs.append(_job(p, f"{cid}:q{k}:{kind}", kind, [ctx], blocks))
        for i, (a, b) in enumerate(cross_pairs(contexts, cfg.multi_hop_per_paper)):
            jobs.append(_job(p, f"{p['paper_id']}:x{i:02d}:c{a.index:03d}+c{b.index:03d}:{QAType.MULTI_HOP}",
                             QAType.MULTI_HOP, [a, b], blocks))
        run.counts["contexts"] += len(contexts)
        run.kept(p["id"], *jobs)


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------
def qa_messages(job: dict) -> list[dict]:
    from synth_tasks.methods.papers.qa import render_context
    from synth_tasks.prompts import load_prompt, render

    blocks = json.loads(job["context_blocks"])
    if job["qa_type"] == QAType.MULTI_HOP:
        split = job["first_context_size"]
        content = render(load_prompt("papers/multi_hop"), title=job["title"], section=job["sections"][0],
                         context=render_context(blocks[:split]), other_section=job["sections"][1],
                         other_context=render_context(blocks[split:]))
    else:
        content = render(load_prompt(f"papers/{job['qa_type']}"), title=job["title"], section=job["sections"][0],
                         context=render_context(blocks))
    return [{"role": "user", "content": content}]


def generate(run, jobs: list[dict]) -> None:
    """Write one QA pair per planned job (LLM, structured): question, answer, citations [{page,
    block_id, quote}] and reasoning steps."""
    cfg: PapersConfig = run.cfg
    answered = run.llm_calls(jobs, lambda job: run.llm.chat(qa_messages(job), cfg.sampling(job["id"]),
                                                            response_model=PaperQA))
    for job, result in answered:
        pair = result.parsed
        if not pair.question.strip() or not pair.answer.strip():
            run.failed(job["id"], "invalid_structured_output: blank question or answer", raw=result.text)
            continue
        run.kept(job["id"], job | {"question": pair.question.strip(), "answer": pair.answer.strip(),
                                   "citations": [c.model_dump() for c in pair.citations],
                                   "reasoning_steps": [s.strip() for s in pair.reasoning_steps if s.strip()],
                                   "model": result.model})


# --------------------------------------------------------------------------------------------
# ground
# --------------------------------------------------------------------------------------------
def ground(run, pairs: list[dict]) -> None:
    """Keep a pair only when every quote is found on the page it cites (fuzzy match >= quote_threshold)
    and, for numeric questions, every number of its answer is in a cited table's cells; a multi-hop
    pair must cite two blocks. Others are filtered with the reason (quote_not_on_page: p.4,
    number_not_in_table: 0.97, ...)."""
    from synth_tasks.methods.papers.qa import check_pair

    cfg: PapersConfig = run.cfg
    for p in pairs:
        blocks = json.loads(p["context_blocks"])
        checked = check_pair(p, p["qa_type"], blocks, json.loads(p["pages"]), cfg.quote_threshold, cfg.min_quote_chars)
        if not checked.ok:
            run.filtered(p["id"], checked.reason, question=p["question"], answer=p["answer"],
                         citations=json.dumps(p["citations"], ensure_ascii=False))
            continue
        citations = [c | {"block_id": found, "score": round(score, 1)}
                     for c, found, score in zip(p["citations"], checked.block_ids, checked.scores)]
        run.kept(p["id"], p | {"citations": citations})


# --------------------------------------------------------------------------------------------
# dedup (one task: duplicates are looked for within a whole paper)
# --------------------------------------------------------------------------------------------
def dedup(run, pairs: list[dict]) -> None:
    """Drop near-duplicate questions within each paper, across all shards; the first (by id) stays."""
    from synth_tasks.quality.dedup import near_duplicate_of

    by_paper: dict[str, list[dict]] = {}
    for p in sorted(pairs, key=lambda p: p["id"]):
        by_paper.setdefault(p["paper_id"], []).append(p)
    for group in by_paper.values():
        for p, dup in zip(group, near_duplicate_of([p["question"] for p in group], run.cfg.duplicate_threshold)):
            if dup is None:
                run.kept(p["id"], p)
            else:
                run.filtered(p["id"], f"near_duplicate_question: of {group[dup]['id']}", question=p["question"])


# --------------------------------------------------------------------------------------------
# render
# --------------------------------------------------------------------------------------------
def render_pairs(run, pairs: list[dict]) -> None:
    """Each pair as a chat record: the user asks the question, the assistant answers with its cited
    pages rendered as "(p. 4)"; the metadata keeps the paper, pages, block ids, quotes and QA type."""
    from synth_tasks.methods.papers.qa import answer_with_citations

    for p in pairs:
        pages = [int(c["page"]) for c in p["citations"]]
        run.kept(p["id"], {
            "id": p["id"], "messages": [{"role": "user", "content": p["question"]},
                                        {"role": "assistant", "content": answer_with_citations(p["answer"], pages)}],
            "paper_id": p["paper_id"], "title": p["title"], "source_file": p["source_file"], "qa_type": p["qa_type"],
            "question": p["question"], "answer": p["answer"], "pages": sorted(set(pages)),
            "block_ids": [c["block_id"] for c in p["citations"]], "quotes": [c["quote"] for c in p["citations"]],
            "citations": p["citations"], "reasoning_steps": p["reasoning_steps"], "sections": p["sections"],
            "model": p["model"]})


METHOD = Method(
    dag_id="papers",
    config=PapersConfig,
    input_files=("**/*.pdf",),
    stages=(
        Stage("extract", extract_papers, mapped=False),
        Stage("describe", describe, llm="vision_conn_id"),
        Stage("publish", publish, mapped=False, asset=ASSET),
        Stage("plan", plan),
        Stage("generate", generate, llm="llm_conn_id"),
        Stage("ground", ground),
        Stage("dedup", dedup, mapped=False),
        Stage("render", render_pairs),
    ),
    export=Export(group_key="paper_id"),
    tags=("qa", "papers", "fine-tuning"),
)
