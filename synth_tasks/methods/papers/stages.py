"""The papers method's stage functions (declared in ``synth_tasks.methods.papers.METHOD``). Heavy
imports (pyarrow, the LLM client) happen inside them: the DAG file imports this module when Airflow
parses it."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from typing import TYPE_CHECKING

from synth_tasks.draw import distinct_by_weight
from synth_tasks.llm import embedded
from synth_tasks.method import llm_seconds
from synth_tasks.methods.papers.config import PapersConfig
from synth_tasks.methods.papers.extract import BadPDF, extract_paper, paper_markdown, render_figures
from synth_tasks.methods.papers.qa import (SINGLE_CONTEXT_TYPES, PaperQA, QAType, answer_with_citations, check_pair,
                                           cross_pairs, page_texts, render_context, section_contexts)
from synth_tasks.prompts import load_prompt, render

if TYPE_CHECKING:  # the stage runner and the LLM client import pyarrow: not at DAG parse time
    from synth_tasks.llm.client import LLMError
    from synth_tasks.stage import StageRun

log = logging.getLogger(__name__)

ASSET = "papers/extracted"


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
def extract_papers(run: StageRun[PapersConfig], files: list[str]) -> None:
    """Read every PDF into blocks in reading order (two columns kept apart; running headers, footers
    and page numbers removed; line-end hyphens repaired), each with its page and bounding box, and
    render each figure's region to PNG. A bad PDF (encrypted, not a PDF, truncated, no text layer,
    no pages) fails alone, naming the file and the reason."""
    cfg = run.cfg
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
        run.counts["pages_ocr"] += len(paper["ocr_pages"])
        run.counts["glyphs_unread"] += paper["glyphs_unread"]
        if paper["pages_without_text"]:
            log.warning("%s: pages %s have no text layer and OCR read nothing on them", url,
                        paper["pages_without_text"])
        if paper["glyphs_unread"]:
            log.warning("%s: %d glyphs without a text mapping could not be read (left out of the text)", url,
                        paper["glyphs_unread"])
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
    models = embedded.MODELS.values()
    return endpoint.model in {m.alias for m in models} or any(
        endpoint.base_url == (embedded.read_state(m) or {}).get("base_url") for m in models)


def figure_messages(caption: str, png: bytes) -> list[dict]:
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    return [{"role": "user", "content": [
        {"type": "text", "text": render(load_prompt("papers/describe_figure"), caption=caption)},
        {"type": "image_url", "image_url": {"url": url}}]}]


def describe(run: StageRun[PapersConfig], papers: list[dict]) -> None:
    """With describe_figures: ask the vision endpoint to describe each figure (its PNG crop, grounded
    in its caption) and keep the description on the figure's block. A text-only endpoint (the
    embedded model) is never sent images: each figure is then marked skipped with the reason. Without
    describe_figures the papers pass unchanged."""
    cfg = run.cfg
    if not cfg.describe_figures or not any(p["figures"] for p in papers):
        for p in papers:
            run.kept(p["id"], p)
        return
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
        failed: list[str] = []

        def not_described(item: dict, exc: LLMError) -> None:  # a failed figure does not fail its paper
            failed.append(item["id"])
            notes[item["id"]] = {"figure_description": None, "figure_description_skipped": str(exc)}
            run.audit(item["id"], reason=str(exc), raw=exc.raw)

        answered = run.llm_calls(items, lambda i: run.llm.chat(figure_messages(i["caption"], i["png"]),
                                                               cfg.sampling(i["id"], temperature=0.2)),
                                 on_failure=not_described)
        for item, result in answered:
            notes[item["id"]] = {"figure_description": result.text.strip(), "figure_description_skipped": None}
        run.counts["figures_described"] += len(answered)
        run.counts["figures_not_described"] += len(failed)
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
BLOCK_COLUMNS = ("paper_id", "block_id", "kind", "level", "section_path", "page", "bbox", "text", "text_source", "table_cells",
                 "label", "caption", "figure_bbox", "figure_image", "figure_description")


def block_rows(paper_id: str, blocks: list[dict], images: dict[str, str]) -> list[dict]:
    """papers.parquet's rows: one per block, the same columns for every paper."""
    return [{"paper_id": paper_id, **{k: b.get(k) for k in BLOCK_COLUMNS[1:]}, "figure_image": images.get(b["block_id"])}
            for b in blocks]


def publish(run: StageRun[PapersConfig], papers: list[dict]) -> None:
    """Publish each paper's extraction where other DAGs read it (the Airflow Asset papers/extracted):
    publish/{paper_id}/papers.parquet (one row per block: kind, section path, page, bbox, text and
    how it was obtained (text_source), table cells as JSON, figure region and image), paper.md (one markdown rendering) and
    figures/{block_id}.png."""
    import pyarrow as pa

    store, root = run.store, run.layout.stage_dir(run.stage.name)
    schema = pa.schema([("paper_id", pa.string()), ("block_id", pa.string()), ("kind", pa.string()),
                        ("level", pa.int32()), ("section_path", pa.list_(pa.string())), ("page", pa.int32()),
                        ("bbox", pa.list_(pa.float64())), ("text", pa.string()), ("text_source", pa.string()),
                        ("table_cells", pa.string()),
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
    weights = {t: cfg.type_weights.get(t, 0.0) for t in SINGLE_CONTEXT_TYPES}
    if not has_table:
        weights[QAType.NUMERIC_TABLE] = 0.0
    return distinct_by_weight(weights, cfg.questions_per_context, f"{cfg.seed}:{context_id}:types")


def _job(paper: dict, job_id: str, qa_type: QAType, contexts, all_blocks: list[dict]) -> dict:
    blocks = [b for ctx in contexts for b in ctx.blocks]
    slim = [{k: b.get(k) for k in ("block_id", "page", "kind", "text", "table_cells", "caption", "label")}
            for b in blocks]
    return {"id": job_id, "paper_id": paper["paper_id"], "title": paper.get("title") or paper["paper_id"],
            "source_file": paper["source_file"], "qa_type": str(qa_type),
            "sections": [" / ".join(ctx.section) for ctx in contexts],
            "first_context_size": len(contexts[0].blocks),  # where a multi-hop job's second context starts
            "context_blocks": json.dumps(slim, ensure_ascii=False),
            "pages": json.dumps(page_texts(all_blocks, {b["page"] for b in blocks}), ensure_ascii=False)}


def plan(run: StageRun[PapersConfig], papers: list[dict]) -> None:
    """Cut each paper into contexts (its sections, by tokens, between blocks; never the references)
    and plan its QA jobs: per context `questions_per_context` types drawn by `type_weights`, plus
    `multi_hop_per_paper` jobs over two sections. A paper with no usable text is filtered."""
    cfg = run.cfg
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


def generate(run: StageRun[PapersConfig], jobs: list[dict]) -> None:
    """Write one QA pair per planned job (LLM, structured): question, answer, citations [{page,
    block_id, quote}] and reasoning steps."""
    cfg = run.cfg
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
def ground(run: StageRun[PapersConfig], pairs: list[dict]) -> None:
    """Keep a pair only when every quote stands word for word on the page it cites; a numeric
    answer's numbers are in a row of a cited table that a quote shows or names; another answer is
    said by its quotes (min_answer_support of its content words, no negation on one side only); a
    multi-hop pair cites two blocks. Others are filtered with the reason (quote_not_on_page: p.4,
    number_not_in_quoted_row: 259, answer_not_supported: ...)."""
    cfg = run.cfg
    for p in pairs:
        blocks = json.loads(p["context_blocks"])
        checked = check_pair(p, p["qa_type"], blocks, json.loads(p["pages"]), cfg.min_quote_chars,
                             cfg.min_answer_support)
        if not checked.ok:
            run.filtered(p["id"], checked.reason, question=p["question"], answer=p["answer"],
                         citations=json.dumps(p["citations"], ensure_ascii=False))
            continue
        citations = [c | {"block_id": found} for c, found in zip(p["citations"], checked.block_ids)]
        support = None if checked.support is None else round(checked.support, 3)
        run.kept(p["id"], p | {"citations": citations, "answer_support": support})


# --------------------------------------------------------------------------------------------
# dedup (one task: duplicates are looked for within a whole paper)
# --------------------------------------------------------------------------------------------
def dedup(run: StageRun[PapersConfig], pairs: list[dict]) -> None:
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
def render_pairs(run: StageRun[PapersConfig], pairs: list[dict]) -> None:
    """Each pair as a chat record: the user asks the question, the assistant answers with its cited
    pages rendered as "(p. 4)"; the metadata keeps the paper, pages, block ids, quotes, the answer's
    support by its quotes and QA type."""
    for p in pairs:
        pages = [int(c["page"]) for c in p["citations"]]
        run.kept(p["id"], {
            "id": p["id"], "messages": [{"role": "user", "content": p["question"]},
                                        {"role": "assistant", "content": answer_with_citations(p["answer"], pages)}],
            "paper_id": p["paper_id"], "title": p["title"], "source_file": p["source_file"], "qa_type": p["qa_type"],
            "question": p["question"], "answer": p["answer"], "pages": sorted(set(pages)),
            "block_ids": [c["block_id"] for c in p["citations"]], "quotes": [c["quote"] for c in p["citations"]],
            "citations": p["citations"], "answer_support": p["answer_support"], "reasoning_steps": p["reasoning_steps"],
            "sections": p["sections"], "model": p["model"]})


# --------------------------------------------------------------------------------------------
# the shard plan: seconds of work per record of a shard (Stage(cost=...) in METHOD). The shards
# of publish hold papers, so plan, generate and ground count per paper the jobs plan makes of it
# (the plan counted generate as one request a paper: 70 times too few on the corpus papers).
# Measured on ../shared/corpora/papers by bench/bench_stage_costs.py (2 cores); the seconds are
# declared about twice the measured.
# --------------------------------------------------------------------------------------------
CONTEXTS_PER_PAPER = 35  # section contexts a paper at the default context_max_tokens: 242 in 7 papers
FIGURES_PER_PAPER = 4  # describe's requests a paper: 29 figures in 7 papers
PLAN_SECONDS = 0.025  # a paper cut into contexts and its jobs planned: about 13 ms
GROUND_SECONDS = 0.001  # a pair's quotes found on its cited pages, numbers in their table rows: about 0.4 ms
RENDER_SECONDS = 0.00001  # a pair as a chat record (render maps over dedup's shards of pairs): 3 us


def jobs_per_paper(cfg: PapersConfig) -> int:
    contexts = min(CONTEXTS_PER_PAPER, cfg.max_contexts_per_paper or CONTEXTS_PER_PAPER)
    return contexts * cfg.questions_per_context + cfg.multi_hop_per_paper


def describe_cost(cfg: PapersConfig) -> float:
    """One request a figure with describe_figures; without, the papers only pass on: no work to
    size shards by, so one task (it was counted as a request a paper, a task for every few papers)."""
    return llm_seconds(cfg, requests=FIGURES_PER_PAPER) if cfg.describe_figures else 0.0


def generate_cost(cfg: PapersConfig) -> float:
    return llm_seconds(cfg, requests=jobs_per_paper(cfg))


def ground_cost(cfg: PapersConfig) -> float:
    return GROUND_SECONDS * jobs_per_paper(cfg)
