"""The papers method through the stage runner, without Airflow (``run_method``): bad PDFs failing alone,
the published extraction, contexts, grounding of quotes and numbers, dedup, rendering, figure
descriptions."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from synth_tasks.config import ConfigError, EndpointConfig, parse_config
from synth_tasks.methods.papers import METHOD
from synth_tasks.methods.papers.config import PapersConfig
from synth_tasks.methods.papers.extract import extract_paper
from synth_tasks.methods.papers.qa import check_pair, page_texts, quote_found, quote_tokens, section_contexts
from synth_tasks.methods.papers.stages import BLOCK_COLUMNS, paper_ids
from synth_tasks.pipeline import run_method
from tests.synth_tasks.methods import papers_pdfs as pdfs
from tests.synth_tasks.methods.papers_replies import grounded_reply


def _run(layout, cfg, folder, server=None, until=None):
    endpoint = None if server is None else EndpointConfig(base_url=server.base_url, model="fault-model",
                                                          api_key=SecretStr("k"))
    results = run_method(METHOD, cfg, layout, f"file://{folder}", endpoint_for=lambda conn: endpoint,
                         until=until, run_info={"run_id": "t", "run_timestamp": "2026-01-01_00-00-00"})
    summary = layout.store.read_json(results["export"]["summary"]) if "export" in results else None
    return results, summary


def _records(layout, stage: str) -> list[dict]:
    return [r for url in layout.store.glob(f"{layout.base}/{stage}/part-*.parquet") for r in layout.store.read_parquet(url)]


def _folder(tmp_path, files: dict[str, bytes]):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def paper_blocks():
    return extract_paper(pdfs.two_column_paper(), "paper.pdf", "paper")["blocks"]


def test_bad_pdfs_each_fail_alone_naming_file_and_reason_and_the_good_paper_finishes(layout, tmp_path, fault_server):
    fault_server.responder = grounded_reply
    folder = _folder(tmp_path, {"good.pdf": pdfs.two_column_paper(), "locked.pdf": pdfs.encrypted_pdf(),
                                "page.pdf": pdfs.NOT_A_PDF, "cut.pdf": pdfs.truncated_pdf(),
                                "scan.pdf": pdfs.image_only_pdf(), "empty.pdf": pdfs.zero_page_pdf()})
    results, summary = _run(layout, PapersConfig(max_contexts_per_paper=2, multi_hop_per_paper=0),
                            folder, fault_server)
    assert summary["accounted_for"], summary["problems"]
    extract = summary["stages"]["extract"]
    assert (extract["input"], extract["kept"], extract["failed"]) == (6, 1, 5)
    assert extract["error_kinds"] == {"encrypted": 1, "no_pages": 1, "no_text_layer": 1, "not_a_pdf": 1, "truncated": 1}
    ledger = {r["record_id"].rsplit("/", 1)[1]: r for r in layout.store.read_parquet(layout.ledger_part("extract", 0))}
    for name, kind in (("locked.pdf", "encrypted"), ("page.pdf", "not_a_pdf"), ("cut.pdf", "truncated"),
                       ("scan.pdf", "no_text_layer"), ("empty.pdf", "no_pages")):
        assert ledger[name]["outcome"] == "failed" and ledger[name]["error"].startswith(f"{kind}: file://{folder}/{name}: ")
    assert "OCR read no text on them" in ledger["scan.pdf"]["error"]
    assert ledger["good.pdf"]["outcome"] == "kept"
    final = [json.loads(line) for k in ("train_jsonl", "validation_jsonl")
             for line in layout.store.read_bytes(results["export"][k]).decode().splitlines()]
    assert final and {r["paper_id"] for r in final} == {"good"}


def test_file_types_ignore_case_trailing_bytes_are_read_and_an_empty_file_says_so(layout, tmp_path, fault_server):
    """PAPER.PDF is a paper (it was skipped with no ledger row); a complete PDF with 4 KB appended
    is read (it was refused as truncated); a 0-byte file fails as empty_file (it was not_a_pdf)."""
    fault_server.responder = grounded_reply
    paper = pdfs.two_column_paper()
    folder = _folder(tmp_path, {"PAPER.PDF": paper, "tail.pdf": paper + b"\n" + b"x" * 4096,
                                "zero.pdf": b""})
    _, summary = _run(layout, PapersConfig(max_contexts_per_paper=1, multi_hop_per_paper=0), folder, fault_server)
    assert summary["accounted_for"], summary["problems"]
    extract = summary["stages"]["extract"]
    assert (extract["input"], extract["kept"], extract["failed"]) == (3, 2, 1) and extract["error_kinds"] == {"empty_file": 1}
    ledger = {r["record_id"].rsplit("/", 1)[1]: r for r in layout.store.read_parquet(layout.ledger_part("extract", 0))}
    assert ledger["PAPER.PDF"]["outcome"] == ledger["tail.pdf"]["outcome"] == "kept"
    assert ledger["zero.pdf"]["error"].startswith(f"empty_file: file://{folder}/zero.pdf: ")


def test_a_pdf_pdfium_cannot_render_fails_alone(layout, tmp_path, monkeypatch):
    import pypdfium2

    from synth_tasks.methods.papers import stages

    good = pdfs.two_column_paper()
    odd = good.replace(b"%%EOF", b"%%EOF\n%odd")  # the same paper, other bytes: the one pdfium refuses
    real = stages.render_figures

    def render(data, figures, dpi=110):
        if data == odd:
            raise pypdfium2.PdfiumError("Failed to load document (PDFium: Data format error).")
        return real(data, figures, dpi)

    monkeypatch.setattr(stages, "render_figures", render)
    folder = _folder(tmp_path, {"good.pdf": good, "odd.pdf": odd})
    _run(layout, PapersConfig(), folder, until="extract")
    ledger = {r["record_id"].rsplit("/", 1)[1]: r for r in layout.store.read_parquet(layout.ledger_part("extract", 0))}
    assert ledger["good.pdf"]["outcome"] == "kept" and ledger["odd.pdf"]["outcome"] == "failed"
    assert ledger["odd.pdf"]["error"] == (f"unrenderable_pdf: file://{folder}/odd.pdf: figures: PdfiumError: "
                                          "Failed to load document (PDFium: Data format error).")


def test_the_extraction_is_published_per_paper(layout, tmp_path):
    folder = _folder(tmp_path, {"paper.pdf": pdfs.two_column_paper()})
    _run(layout, PapersConfig(), folder, until="publish")
    base = f"{layout.base}/publish/paper"
    rows = layout.store.read_parquet(f"{base}/papers.parquet")
    assert list(rows[0]) == list(BLOCK_COLUMNS)
    assert [r["block_id"] for r in rows] == [f"b{i:04d}" for i in range(1, len(rows) + 1)]
    table = next(r for r in rows if r["label"] == "Table 1")
    assert json.loads(table["table_cells"]) == pdfs.TABLE_1 and table["page"] == 2 and len(table["bbox"]) == 4
    figures = [r for r in rows if r["kind"] == "figure_caption"]
    assert [r["figure_image"] for r in figures] == [f"figures/{r['block_id']}.png" for r in figures]
    for r in figures:
        assert layout.store.read_bytes(f"{base}/{r['figure_image']}")[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = layout.store.read_bytes(f"{base}/paper.md").decode()
    assert markdown.startswith("<!-- page 1 -->\n\n# " + pdfs.TITLE) and "| Plain text | 0.71 | 0.88 | 85.0 |" in markdown
    (record,) = _records(layout, "publish")
    assert record["extraction"].endswith("/publish/paper/papers.parquet") and record["n_figures"] == 2
    assert "figures" not in record  # the PNG bytes live in the files, not in the hand-off


def test_contexts_never_cut_a_table_and_never_use_the_references(paper_blocks):
    contexts = section_contexts(paper_blocks, max_tokens=100, min_tokens=0)
    kinds = [b["kind"] for c in contexts for b in c.blocks]
    assert "reference" not in kinds and "heading" not in kinds
    (holder,) = [c for c in contexts if any(b.get("label") == "Table 1" for b in c.blocks)]
    table = next(b for b in holder.blocks if b.get("label") == "Table 1")
    assert json.loads(table["table_cells"]) == pdfs.TABLE_1  # whole, cells and all
    assert all(c.n_tokens <= 100 or len(c.blocks) == 1 for c in contexts)
    assert [b["text"] for c in contexts for b in c.blocks][:1] == [pdfs.ABSTRACT]


def test_multi_hop_pairs_a_passage_with_the_table_it_mentions(paper_blocks):
    from synth_tasks.methods.papers.qa import cross_pairs

    contexts = section_contexts(paper_blocks, max_tokens=700, min_tokens=0)
    pairs = cross_pairs(contexts, limit=3)
    first, second = pairs[0]  # the Method section's "(Table 1)" with the Results holding Table 1
    assert first.section == ["2 Method"] and any(b["text"] == pdfs.METHOD_2 for b in first.blocks)
    assert second.section == ["3 Results"] and any(b.get("label") == "Table 1" for b in second.blocks)
    # then neighbouring sections, never a section with itself, never twice the same pair
    assert len(pairs) == 3 and all(a.section != b.section for a, b in pairs)
    assert len({frozenset((a.index, b.index)) for a, b in pairs}) == 3


def _pair(question, answer, *citations):
    return {"question": question, "answer": answer, "reasoning_steps": ["x"],
            "citations": [{"page": p, "block_id": b, "quote": q} for p, b, q in citations]}


def test_grounding_checks_each_quote_on_its_cited_page_and_numbers_in_the_cited_table(paper_blocks):
    pages = page_texts(paper_blocks, {1, 2, 3})
    ids = {b["text"]: b["block_id"] for b in paper_blocks}
    table_id = next(b["block_id"] for b in paper_blocks if b.get("label") == "Table 1")
    intro = ids[pdfs.INTRO_1]

    def check(pair, qa_type="factual", min_support=0.0):
        return check_pair(pair, qa_type, paper_blocks, pages, min_quote_chars=8, min_support=min_support)

    good = check(_pair("Q?", "A.", (1, intro, "The extraction pipeline reads every page of a paper")))
    assert good.ok and good.block_ids == [intro]
    # the same quote cited on page 2, where it is not
    moved = check(_pair("Q?", "A.", (2, intro, "The extraction pipeline reads every page of a paper")))
    assert not moved.ok and moved.reason.startswith("quote_not_on_page: p.2: ")
    # a quote found on its page, in another block than the one named: the block is corrected
    fixed = check(_pair("Q?", "A.", (1, "b0099", "Blocks are grouped from lines that share a column")))
    assert fixed.ok and fixed.block_ids == [ids[pdfs.METHOD_1]]
    assert check(_pair("Q?", "A.", (2, table_id, "0.94"))).reason.startswith("quote_too_short")

    row = (2, table_id, "Column reader 0.94 0.91 12.5")
    assert check(_pair("Precision of the column reader?", "It is 0.94.", row), "numeric_table").ok
    assert check(_pair("Precision?", "It is 0.940.", row), "numeric_table").ok  # the same number
    assert check(_pair("Precision?", "Table 1 gives 0.94.", row), "numeric_table").ok  # the caption's number
    wrong = check(_pair("Precision?", "It is 0.97.", row), "numeric_table")
    assert not wrong.ok and wrong.reason == "number_not_in_quoted_row: 0.97"
    prose = check(_pair("Precision?", "It is 0.94.", (2, ids[pdfs.RESULTS_1], "The column reader is the most precise")),
                  "numeric_table")
    assert prose.reason == "number_not_in_table: no table is cited"
    one = check(_pair("Q?", "A.", (1, intro, "The extraction pipeline reads every page")), "multi_hop")
    assert one.reason.startswith("multi_hop_one_block")


def test_grounding_cannot_be_fooled_by_a_changed_word_another_rows_number_or_an_unsaid_answer(paper_blocks):
    """The counter-examples of real papers: a fuzzy match kept a negated quote (92 >= 90), a number
    from another row of the table, and answers no quote said."""
    pages = page_texts(paper_blocks, {1, 2, 3})
    ids = {b["text"]: b["block_id"] for b in paper_blocks}
    table_id = next(b["block_id"] for b in paper_blocks if b.get("label") == "Table 1")
    intro = ids[pdfs.INTRO_1]

    def check(pair, qa_type="factual"):
        return check_pair(pair, qa_type, paper_blocks, pages, min_quote_chars=8, min_support=0.5)

    said = "The extraction pipeline reads every page of a paper"
    for changed in ("The extraction pipeline does not read every page of a paper",  # a negation added
                    "The extraction pipeline reads each page of a paper",  # a word changed
                    "The extraction pipeline reads every page of paper"):  # a word left out
        assert check(_pair("Q?", "It reads every page.", (1, intro, changed))).reason.startswith("quote_not_on_page")
    assert check(_pair("What does the pipeline read?", "It reads every page of a paper.", (1, intro, said))).ok
    # a number of another row: kept before, because it is a cell of the cited table
    row = (2, table_id, "Column reader 0.94 0.91 12.5")
    assert check(_pair("Recall?", "It is 0.88.", row), "numeric_table").reason == "number_not_in_quoted_row: 0.88"
    named = (2, table_id, "Plain text 0.71")  # a quote that names the row by its label
    assert check(_pair("Recall of plain text?", "It is 0.88.", named), "numeric_table").ok
    # an answer its quote does not say, and one that turns it around
    unsaid = check(_pair("Why?", "Figures are rendered with a vision model.", (1, intro, said)))
    assert unsaid.reason.startswith("answer_not_supported: 0.") and unsaid.support < 0.5
    negated = check(_pair("Q?", "The extraction pipeline does not read every page of a paper.", (1, intro, said)))
    assert negated.reason == "answer_not_supported: the answer is negated and the quote is not"


def test_quotes_forgive_layout_and_glyphs_only():
    """Whitespace, case, punctuation, ligatures, hyphenation and unmapped glyphs ("(cid:2)" for
    "fi") are forgiven; a word is not."""
    page = "The ensemble con-\nsists of (cid:2)ve active replicas; each keeps 1000- byte ﬁles in memory."
    assert quote_found("consists of five active replicas", page)
    assert quote_found("each keeps 1000-byte files", page)
    assert not quote_found("consists of four active replicas", page)
    assert not quote_found("consists of five replicas", page)
    assert not quote_found("Bigtable does support transactions", "Bigtable does not support transactions.")
    assert quote_tokens("don't") == ["do", "not"]


def test_ground_stage_keeps_grounded_pairs_and_filters_the_others_with_their_reason(layout, tmp_path, fault_server):
    """Every context is asked three types with the same three answers, written for the Results
    context: there, the comparison pair is grounded, the factual pair quotes page 1's text as page
    2's, and the numeric pair gives a number that is not in Table 1."""
    folder = _folder(tmp_path, {"paper.pdf": pdfs.two_column_paper()})
    blocks = extract_paper(pdfs.two_column_paper(), "paper.pdf", "paper")["blocks"]
    table_id = next(b["block_id"] for b in blocks if b.get("label") == "Table 1")
    results_id = next(b["block_id"] for b in blocks if b["text"] == pdfs.RESULTS_1)
    replies = {
        "comparison question": _pair("Which method is the most precise?", "The column reader.",
                                     (2, results_id, "The column reader is the most precise.")),
        "factual question": _pair("What does the pipeline read?", "Every page.",
                                  (2, results_id, "The extraction pipeline reads every page of a paper")),
        "number read from one cell": _pair("What is the recall of plain text?", "It is 0.99.",
                                           (2, table_id, "Plain text 0.71 0.88 85.0")),
    }
    fault_server.responder = lambda body: json.dumps(next(
        reply for cue, reply in replies.items() if cue in body["messages"][0]["content"]))
    cfg = PapersConfig(questions_per_context=3, multi_hop_per_paper=0, concurrency=1,
                              type_weights={"factual": 1, "numeric_table": 1, "comparison": 1})
    results, _ = _run(layout, cfg, folder, fault_server)
    jobs = _records(layout, "plan")
    (results_ctx,) = {j["id"].rsplit(":", 2)[0] for j in jobs if table_id in j["context_blocks"]
                      and j["qa_type"] == "numeric_table"}
    ledger = {r["record_id"]: r for url in layout.store.glob(f"{layout.base}/_ledger/ground/*.parquet")
              for r in layout.store.read_parquet(url)}
    outcome = {r.rsplit(":", 1)[1]: (row["outcome"], row["reason"]) for r, row in ledger.items()
               if r.startswith(results_ctx + ":")}
    assert outcome["comparison"] == ("kept", None)
    assert outcome["factual"][0] == "filtered" and outcome["factual"][1].startswith("quote_not_on_page: p.2: ")
    assert outcome["numeric_table"] == ("filtered", "number_not_in_quoted_row: 0.99")
    dropped = {d["id"].rsplit(":", 1)[1]: d["answer"] for d in _records(layout, "_dropped/ground")
               if d["id"].startswith(results_ctx + ":")}
    assert dropped == {"factual": "Every page.", "numeric_table": "It is 0.99."}  # audit copies
    final = [json.loads(line) for k in ("train_jsonl", "validation_jsonl")
             for line in layout.store.read_bytes(results["export"][k]).decode().splitlines()]
    assert len(final) == 1  # the one grounded pair: every other context lacks page 2's sentence
    (kept,) = final
    assert kept["messages"] == [{"role": "user", "content": "Which method is the most precise?"},
                                {"role": "assistant", "content": "The column reader (p. 2)."}]
    assert (kept["pages"], kept["block_ids"], kept["qa_type"]) == ([2], [results_id], "comparison")
    assert kept["quotes"] == ["The column reader is the most precise."] and kept["paper_id"] == "paper"


def test_near_duplicate_questions_of_a_paper_are_dropped(layout, tmp_path, fault_server):
    folder = _folder(tmp_path, {"paper.pdf": pdfs.two_column_paper()})
    fault_server.responder = lambda body: json.dumps(_pair(
        "What does the paper say about columns?", "Each column is kept whole.",
        (1, "b0007", "Our reader keeps each column whole.")))
    _, summary = _run(layout, PapersConfig(max_contexts_per_paper=3, multi_hop_per_paper=0), folder,
                            fault_server)
    ground, dedup = summary["stages"]["ground"], summary["stages"]["dedup"]
    # every context got the same answer; only the pairs whose context holds page 1's sentence are grounded
    assert ground["kept"] >= 2 and dedup["kept"] == 1 and dedup["filter_reasons"] == {"near_duplicate_question": ground["kept"] - 1}


def test_figures_go_to_a_vision_endpoint_as_image_parts(layout, tmp_path, fault_server):
    fault_server.responder = lambda body: "Two boxes joined by an arrow." if not isinstance(
        body["messages"][0]["content"], str) else grounded_reply(body)
    folder = _folder(tmp_path, {"paper.pdf": pdfs.two_column_paper()})
    _run(layout, PapersConfig(describe_figures=True), folder, fault_server, until="publish")
    image_requests = [r for r in fault_server.requests if not isinstance(r["messages"][0]["content"], str)]
    assert len(image_requests) == 2
    # the two figures' requests run concurrently: find figure 1's by its caption, not by arrival order
    [(text, image)] = [r["messages"][0]["content"] for r in image_requests
                       if pdfs.FIGURE_1_CAPTION in r["messages"][0]["content"][0]["text"]]
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    rows = layout.store.read_parquet(f"{layout.base}/publish/paper/papers.parquet")
    assert [r["figure_description"] for r in rows if r["kind"] == "figure_caption"] == ["Two boxes joined by an arrow."] * 2


def test_a_failed_figure_description_leaves_its_paper_and_is_audited(layout, tmp_path, fault_server):
    def reply(body):
        content = body["messages"][0]["content"]
        if isinstance(content, str):
            return grounded_reply(body)
        return "raw:{}" if pdfs.FIGURE_1_CAPTION in content[0]["text"] else "Two boxes joined by an arrow."

    fault_server.responder = reply
    folder = _folder(tmp_path, {"paper.pdf": pdfs.two_column_paper()})
    _run(layout, PapersConfig(describe_figures=True, max_retries=0), folder, fault_server, until="publish")
    stats = layout.store.read_json(layout.stats_part("describe", 0))
    assert stats["counts"] == {"figures_described": 1, "figures_not_described": 1}
    assert stats["kept"] == 1 and stats["failed"] == 0
    (paper,) = _records(layout, "publish")
    figures = {b["block_id"]: b for b in json.loads(paper["blocks"]) if b["kind"] == "figure_caption"}
    [failed] = [b for b in figures.values() if pdfs.FIGURE_1_CAPTION in b["text"]]
    assert failed["figure_description"] is None and failed["figure_description_skipped"]
    [audit] = layout.store.read_parquet(layout.part("_dropped/describe", 0))
    assert audit["id"] == f"{paper['id']}#{failed['block_id']}"
    assert audit["reason"] == failed["figure_description_skipped"]
    assert audit["reason"].startswith("malformed_response: ")


def test_the_embedded_text_model_is_never_sent_images(layout, tmp_path, fault_server, monkeypatch):
    from synth_tasks.llm import embedded

    monkeypatch.setattr(embedded, "read_state", lambda model=None: {"base_url": fault_server.base_url})
    folder = _folder(tmp_path, {"paper.pdf": pdfs.two_column_paper()})
    _run(layout, PapersConfig(describe_figures=True), folder, fault_server, until="publish")
    assert fault_server.requests == []
    stats = layout.store.read_json(layout.stats_part("describe", 0))
    assert stats["counts"] == {"figures_not_described": 2} and stats["kept"] == 1
    (paper,) = _records(layout, "publish")
    notes = [b["figure_description_skipped"] for b in json.loads(paper["blocks"]) if b["kind"] == "figure_caption"]
    assert len(notes) == 2 and all(n.startswith("text_only_endpoint: ") for n in notes)


def test_config_refuses_multi_hop_in_the_type_weights():
    with pytest.raises(ConfigError, match="multi_hop_per_paper"):
        parse_config(PapersConfig, {"type_weights": {"multi_hop": 1}})
    with pytest.raises(ConfigError, match="min_answer_support"):
        parse_config(PapersConfig, {"min_answer_support": 1.5})


def test_paper_ids_are_file_stems_unique_per_run():
    ids = paper_ids(["file:///a/x.pdf", "file:///b/x.pdf", "file:///a/My Paper (v2).pdf"])
    assert ids["file:///a/My Paper (v2).pdf"] == "My-Paper--v2"
    assert ids["file:///a/x.pdf"] != ids["file:///b/x.pdf"] and ids["file:///a/x.pdf"].startswith("x-")


def test_a_line_of_unmapped_glyphs_is_no_heading():
    """233 of 237 "headings" of a paper whose headings are bitmap glyphs were "(cid:25)"-like
    strings: the word "cid" passed the three-letter test. A glyph without a text mapping shows no letter."""
    from synth_tasks.methods.papers.extract import Line, Paragraph, _is_heading

    def heading(text):
        line = Line(page=1, x0=72, top=100, x1=300, bottom=114, text=text, size=14, bold=True)
        return _is_heading(Paragraph([line], text=text), body=10)

    assert not heading("(cid:25)(cid:3)(cid:17)")
    assert not heading("(cid:25) (cid:3) (cid:17) (cid:9)")
    assert heading("3 Con(cid:2)guration")  # a ligature inside a real word still reads
    assert heading("Related Work")


def test_the_plan_counts_a_paper_as_the_jobs_plan_makes_of_it(layout, tmp_path):
    """publish's shards hold papers, so generate and ground are costed per paper by the jobs plan
    makes of it (counted as one request a paper before: 70 too few on the corpus papers)."""
    from synth_tasks.method import llm_seconds
    from synth_tasks.methods.papers.stages import GROUND_SECONDS, jobs_per_paper

    cfg = PapersConfig(max_contexts_per_paper=2, questions_per_context=2, multi_hop_per_paper=1)
    folder = _folder(tmp_path, {"paper.pdf": pdfs.two_column_paper()})
    run_method(METHOD, cfg, layout, f"file://{folder}", until="plan")
    jobs = _records(layout, "plan")
    assert len(_records(layout, "publish")) == 1 and len(jobs) == jobs_per_paper(cfg) == 2 * 2 + 1
    assert METHOD.stage("generate").seconds_per_record(cfg) == pytest.approx(llm_seconds(cfg, 1) * len(jobs))
    assert METHOD.stage("ground").seconds_per_record(cfg) == pytest.approx(GROUND_SECONDS * len(jobs))
