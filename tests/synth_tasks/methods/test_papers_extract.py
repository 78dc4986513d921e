"""PDF -> blocks on papers written in the test (papers_pdfs), where every text, cell and page is known:
pages, two-column order, table grids, captions with their figures, running headers and page numbers,
hyphenation, references, and the bad PDFs."""

from __future__ import annotations

import io
import json

import pytest

from synth_tasks.methods.papers.extract import BadPDF, extract_paper, paper_markdown, render_figures
from tests.synth_tasks.methods import papers_pdfs as pdfs


@pytest.fixture(scope="module")
def paper():
    return extract_paper(pdfs.two_column_paper(), "paper.pdf", "paper")


def _block(paper, text: str) -> dict:
    matches = [b for b in paper["blocks"] if b["text"] == text]
    assert len(matches) == 1, (text, [b["text"] for b in paper["blocks"]])
    return matches[0]


def test_every_paragraph_is_whole_and_on_its_page(paper):
    expected = {pdfs.INTRO_1: 1, pdfs.INTRO_2: 1, pdfs.INTRO_3: 1, pdfs.METHOD_1: 1, pdfs.METHOD_2: 1,
                pdfs.RESULTS_1: 2, pdfs.RESULTS_2: 2, pdfs.RESULTS_3: 2, pdfs.CONCLUSION: 3, pdfs.ABSTRACT: 1}
    paragraphs = {b["text"]: b["page"] for b in paper["blocks"] if b["kind"] == "paragraph"}
    for text, page in expected.items():
        assert paragraphs.get(text) == page, text
    intro = _block(paper, pdfs.INTRO_1)
    # the bounding box is the paragraph's: left column, from its first to its last line
    assert intro["bbox"][0] == pdfs.LEFT_COL[0] and intro["bbox"][2] < pdfs.GUTTER
    assert 220 < intro["bbox"][1] < intro["bbox"][3] < 300


def test_two_columns_are_read_left_then_right_and_never_interleaved(paper):
    order = [b["text"] for b in paper["blocks"]]
    left = [pdfs.INTRO_1, pdfs.INTRO_2, pdfs.INTRO_3]
    right = [pdfs.METHOD_1, pdfs.METHOD_2]
    positions = [order.index(t) for t in left + right]
    assert positions == sorted(positions)
    # page 2: both columns above the full-width table, then the table, then the band below it
    table_1 = order.index(next(b["text"] for b in paper["blocks"] if b["label"] == "Table 1"))
    assert order.index(pdfs.RESULTS_1) < order.index(pdfs.RESULTS_2) < table_1 < order.index(pdfs.RESULTS_3)
    # no block mixes the columns: no line of one column appears in a block of the other
    for b in paper["blocks"]:
        if b["kind"] != "paragraph":
            continue
        has_left = any(line in b["text"] for line in pdfs.INTRO_1_LINES[1:] + pdfs.RESULTS_1_LINES)
        has_right = any(line in b["text"] for line in pdfs.METHOD_1_LINES + pdfs.RESULTS_2_LINES)
        assert not (has_left and has_right), b["text"]
    assert paper["two_column_pages"] == [1, 2]


def test_line_end_hyphens_are_repaired_unless_the_word_has_one(paper):
    assert "The extraction pipeline reads" in _block(paper, pdfs.INTRO_1)["text"]
    assert "A two-column page is read" in _block(paper, pdfs.INTRO_2)["text"]


def test_the_ruled_table_is_an_exact_grid_with_its_caption(paper):
    table = next(b for b in paper["blocks"] if b["label"] == "Table 1")
    assert table["kind"] == "table" and table["page"] == 2
    assert json.loads(table["table_cells"]) == pdfs.TABLE_1
    assert table["caption"] == pdfs.TABLE_1_CAPTION
    assert table["text"].startswith(pdfs.TABLE_1_CAPTION + "\n\n| Method | Precision | Recall | Pages/s |")
    # its caption is the table's, not a paragraph of its own; its cells are not paragraphs either
    assert not any(b["kind"] == "paragraph" and ("Extraction quality" in b["text"] or "Column reader 0.94" in b["text"])
                   for b in paper["blocks"])


def test_a_table_without_rules_is_read_from_its_aligned_columns(paper):
    table = next(b for b in paper["blocks"] if b["label"] == "Table 2")
    assert table["kind"] == "table" and table["page"] == 3 and table["caption"] == pdfs.TABLE_2_CAPTION
    assert json.loads(table["table_cells"]) == pdfs.TABLE_2


def test_figure_captions_carry_their_figure_region_and_its_labels_stay_out_of_the_text(paper):
    fig1, fig2 = (_block(paper, pdfs.FIGURE_1_CAPTION), _block(paper, pdfs.FIGURE_2_CAPTION))
    assert (fig1["kind"], fig1["page"], fig1["label"]) == ("figure_caption", 1, "Figure 1")
    assert (fig2["kind"], fig2["page"], fig2["label"]) == ("figure_caption", 2, "Figure 2")
    # figure 1: the two boxes drawn at x 335..535 above the caption; figure 2: the 150 x 100 image
    x0, top, x1, bottom = fig1["figure_bbox"]
    assert (x0, x1) == (pdfs.RIGHT_COL[0] + 20, pdfs.RIGHT_COL[0] + 220) and bottom <= fig1["bbox"][1]
    x0, top, x1, bottom = fig2["figure_bbox"]
    assert (round(x1 - x0), round(bottom - top)) == (150, 100) and bottom <= fig2["bbox"][1]
    text = " ".join(b["text"] for b in paper["blocks"])
    assert not any(label in text.split() for label in pdfs.FIGURE_1_LABELS)


def test_figure_regions_render_to_png(paper):
    from PIL import Image

    figures = [b for b in paper["blocks"] if b["figure_bbox"]]
    pngs = render_figures(pdfs.two_column_paper(), figures, dpi=72)
    assert set(pngs) == {b["block_id"] for b in figures}
    image = Image.open(io.BytesIO(pngs[_block(paper, pdfs.FIGURE_2_CAPTION)["block_id"]]))
    assert image.format == "PNG" and image.size == (158, 108)  # 150 x 100 pt at 72 dpi, 4 pt around


def test_running_headers_and_page_numbers_are_gone(paper):
    text = "\n".join(b["text"] for b in paper["blocks"])
    assert pdfs.HEADER not in text
    assert not any(b["text"].strip() in {"1", "2", "3"} for b in paper["blocks"])
    assert paper["running_lines_removed"] == 6  # a header and a page number on each of 3 pages


def test_headings_sections_title_authors_abstract(paper):
    headings = [(b["text"], b["level"]) for b in paper["blocks"] if b["kind"] == "heading"]
    assert headings == [(pdfs.TITLE, 0), ("Abstract", 1), ("1 Introduction", 1), ("2 Method", 1),
                        ("3 Results", 1), ("4 Conclusion", 1), ("References", 1)]
    assert _block(paper, pdfs.METHOD_2)["section_path"] == ["2 Method"]
    assert (paper["title"], paper["authors"], paper["abstract"]) == (pdfs.TITLE, pdfs.AUTHORS, pdfs.ABSTRACT)


def test_display_equation_is_kept_as_text(paper):
    eq = [b for b in paper["blocks"] if b["kind"] == "equation"]
    assert [(b["text"], b["page"]) for b in eq] == [(" ".join(pdfs.EQUATION.split()), 1)]


def test_references_are_split_into_entries(paper):
    refs = [b for b in paper["blocks"] if b["kind"] == "reference"]
    assert [b["text"] for b in refs] == pdfs.REFERENCE_TEXTS
    assert all(b["section_path"] == ["References"] and b["page"] == 3 for b in refs)


def test_markdown_rendering_has_the_structure(paper):
    md = paper_markdown(paper, {b["block_id"]: f"figures/{b['block_id']}.png" for b in paper["blocks"]
                                if b["figure_bbox"]})
    assert md.count("<!-- page ") == 3 and "\n# " + pdfs.TITLE in md and "\n## 3 Results\n" in md
    assert "| Column reader | 0.94 | 0.91 | 12.5 |" in md and "$$\nF1 = 2PR" in md
    assert f"*{pdfs.FIGURE_1_CAPTION}*" in md and "![Figure 2](figures/" in md
    assert "- " + pdfs.REFERENCE_TEXTS[0] in md


@pytest.mark.parametrize("make, kind", [
    (pdfs.encrypted_pdf, "encrypted"),
    (lambda: pdfs.NOT_A_PDF, "not_a_pdf"),
    (pdfs.truncated_pdf, "truncated"),
    (pdfs.image_only_pdf, "no_text_layer"),
    (pdfs.zero_page_pdf, "no_pages"),
], ids=["encrypted", "not_a_pdf", "truncated", "no_text_layer", "no_pages"])
def test_bad_pdfs_are_refused_with_their_reason(make, kind):
    with pytest.raises(BadPDF) as exc:
        extract_paper(make(), "file:///in/bad.pdf", "bad")
    assert exc.value.kind == kind and str(exc.value).startswith(f"{kind}: file:///in/bad.pdf: ")
