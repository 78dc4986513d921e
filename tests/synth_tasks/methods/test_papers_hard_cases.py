"""The extractor on the hard cases (papers_hard_pdfs): a scanned page read by OCR, glyphs without a
text mapping named by their font or read by OCR, a full-width table across two columns, a table ruled
with raster strips below a figure, a diagram that is no table, and the structure of running text
(a paragraph over a column break, superscripts, a footnote, a number's hyphen, references set with a
hanging indent). Tesseract is a system dependency (`make system-deps`)."""

from __future__ import annotations

import difflib
import json

import pytest

from synth_tasks.methods.papers import ocr
from synth_tasks.methods.papers.extract import BadPDF, extract_paper, join_lines
from synth_tasks.methods.papers.glyphs import GlyphNames, name_to_text
from tests.synth_tasks.methods import papers_hard_pdfs as hard


def _blocks(paper, kind: str | None = None) -> list[dict]:
    return [b for b in paper["blocks"] if kind is None or b["kind"] == kind]


def _word_accuracy(read: str, expected: str) -> float:
    return difflib.SequenceMatcher(None, read.split(), expected.split()).ratio()


def test_a_page_without_a_text_layer_is_read_by_ocr_and_only_that_page():
    paper = extract_paper(hard.scanned_and_text_pdf(), "mixed.pdf", "mixed")
    assert paper["ocr_pages"] == [2] and paper["pages_without_text"] == []
    page1, page2 = ([b for b in paper["blocks"] if b["page"] == n] for n in (1, 2))
    assert {b["text_source"] for b in page1} == {"text_layer"}
    assert {b["text_source"] for b in page2} == {"ocr"}
    assert [b["text"] for b in page1 if b["kind"] == "paragraph"] == [hard.TEXT_PAGE_PARAGRAPH]
    headings = [b["text"] for b in page2 if b["kind"] == "heading"]
    assert headings == [hard.SCANNED_HEADING]
    paragraphs = [b["text"] for b in page2 if b["kind"] == "paragraph"]
    assert len(paragraphs) == len(hard.SCANNED_PARAGRAPHS)
    for read, expected in zip(paragraphs, hard.SCANNED_PARAGRAPHS):
        assert _word_accuracy(read, expected) >= 0.95, (read, expected)


def test_a_scan_alone_is_a_paper_now_and_the_reason_stays_for_pages_ocr_cannot_read():
    paper = extract_paper(hard.scanned_page_pdf(), "scan.pdf", "scan")
    assert paper["ocr_pages"] == [1] and _blocks(paper, "paragraph")


def test_without_tesseract_a_scan_fails_saying_how_to_install_it(monkeypatch):
    import pytesseract

    def missing():
        raise pytesseract.TesseractNotFoundError()

    ocr.tesseract_version.cache_clear()
    monkeypatch.setattr(pytesseract, "get_tesseract_version", missing)
    try:
        with pytest.raises(BadPDF) as err:
            extract_paper(hard.scanned_page_pdf(), "scan.pdf", "scan")
    finally:
        ocr.tesseract_version.cache_clear()
    assert err.value.kind == "ocr_unavailable" and "make system-deps" in str(err.value)


def test_glyphs_without_a_unicode_map_are_read_by_ocr_and_never_reach_a_block():
    paper = extract_paper(hard.unmapped_glyphs_pdf(), "cid.pdf", "cid")
    assert not any("(cid:" in b["text"] for b in paper["blocks"])
    headings = _blocks(paper, "heading")
    assert [b["text"] for b in headings] == hard.UNMAPPED_HEADINGS
    assert {b["text_source"] for b in headings} == {"text_layer+ocr"}
    assert paper["glyphs_unread"] == 0 and paper["glyphs_read"] > 0
    assert [b["text"] for b in _blocks(paper, "paragraph")][1:] == hard.UNMAPPED_BODY  # after the header


def test_ligatures_without_a_unicode_map_are_named_by_the_fonts_glyph_names():
    paper = extract_paper(hard.ligature_pdf(whole_font=True), "lig.pdf", "lig")
    body = " ".join(b["text"] for b in _blocks(paper, "paragraph")[1:])
    assert body == " ".join(hard.LIGATURE_PARAGRAPHS)
    assert {b["text_source"] for b in paper["blocks"]} == {"text_layer"}  # no OCR was needed


@pytest.mark.parametrize("name, text", [("fi", "fi"), ("uniFB00", "ff"), ("ffi", "ffi"), ("quotedblleft", "“"),
                                        (".notdef", None), ("g123", None), ("uniE000", None)])
def test_glyph_names_become_text_by_the_adobe_glyph_list(name, text):
    assert name_to_text(name) == text


def test_a_full_width_table_on_a_two_column_page_is_one_grid_and_the_columns_stay_whole():
    paper = extract_paper(hard.full_width_table_paper(), "wide.pdf", "wide")
    (table,) = _blocks(paper, "table")
    assert json.loads(table["table_cells"]) == hard.FULL_WIDTH_TABLE
    assert table["caption"] == hard.FULL_WIDTH_CAPTION
    paragraphs = [b["text"] for b in _blocks(paper, "paragraph")][1:]  # after the running header
    assert paragraphs == hard.FULL_WIDTH_PARAGRAPHS
    cells = {c for row in hard.FULL_WIDTH_TABLE[1:] for c in row}
    assert not [b for b in paper["blocks"] if b["kind"] != "table" and b["text"] in cells]


def test_a_table_ruled_with_images_below_a_figure_is_a_grid_and_not_part_of_the_figure():
    paper = extract_paper(hard.image_ruled_table_pdf(), "ruled.pdf", "ruled")
    (table,) = _blocks(paper, "table")
    assert json.loads(table["table_cells"]) == hard.IMAGE_RULED_TABLE
    assert table["caption"] == hard.IMAGE_RULED_CAPTION
    (figure,) = _blocks(paper, "figure_caption")
    assert figure["text"] == hard.FIGURE_CAPTION and figure["figure_bbox"][3] <= table["bbox"][1]


def test_a_diagram_is_a_figure_not_a_table():
    paper = extract_paper(hard.diagram_pdf(), "diagram.pdf", "diagram")
    assert not _blocks(paper, "table")
    assert [b["text"] for b in _blocks(paper, "figure_caption")] == [hard.DIAGRAM_CAPTION]
    text = " ".join(b["text"] for b in _blocks(paper, "paragraph"))
    assert not [label for label in hard.DIAGRAM_LABELS if f" {label} " in f" {text} "]


@pytest.fixture(scope="module")
def structure():
    return extract_paper(hard.structure_pdf(), "structure.pdf", "structure")


def test_a_paragraph_over_a_column_break_is_whole_with_its_superscript_and_hyphens(structure):
    paragraphs = [b["text"] for b in _blocks(structure, "paragraph")]
    assert hard.STRUCTURE_PARAGRAPH in paragraphs
    assert hard.STRUCTURE_MARKED_TEXT in paragraphs  # the footnote mark after "file" is dropped


def test_a_footnote_is_its_own_block_out_of_the_running_text(structure):
    (footnote,) = _blocks(structure, "footnote")
    assert footnote["text"] == hard.STRUCTURE_FOOTNOTE[2:]
    assert not [b for b in _blocks(structure, "paragraph") if footnote["text"] in b["text"]]


def test_references_set_with_a_hanging_indent_are_one_entry_each(structure):
    refs = [b["text"] for b in _blocks(structure, "reference")]
    assert refs == [join_lines(e, {"loosely-coupled"}) for e in hard.STRUCTURE_REFERENCES]
    assert refs[0].startswith("Burrows, M. The Chubby lock service for loosely-coupled distributed")
    assert "ACM Transactions on Computer Systems" in refs[2]


@pytest.mark.parametrize("lines, joined", [
    (["a record of 1000-", "byte blocks"], "a record of 1000-byte blocks"),
    (["the next proof-", "of-work is found"], "the next proof-of-work is found"),
    (["for loosely-", "coupled systems"], "for loosely-coupled systems"),
    (["the extraction pipe-", "line reads"], "the extraction pipeline reads"),
])
def test_line_end_hyphens(lines, joined):
    assert join_lines(lines, set()) == joined


@pytest.fixture(scope="module")
def layout_rules():
    return extract_paper(hard.layout_rules_pdf(), "rules.pdf", "rules")


def test_a_numbered_heading_right_under_another_is_a_heading_of_its_own(layout_rules):
    headings = [b["text"] for b in _blocks(layout_rules, "heading")]
    assert hard.RULES_STACKED[0] in headings and hard.RULES_STACKED[1] in headings
    assert " ".join(hard.RULES_STACKED_BODY) in [b["text"] for b in _blocks(layout_rules, "paragraph")]


def test_the_stretched_spaces_of_a_justified_line_do_not_cut_it_like_a_gutter(layout_rules):
    headings = [b["text"] for b in _blocks(layout_rules, "heading")]
    assert " ".join(hard.RULES_JUSTIFIED + [hard.RULES_JUSTIFIED_NEXT]) in headings
    paragraphs = [b["text"] for b in _blocks(layout_rules, "paragraph")]
    assert " ".join(hard.RULES_JUSTIFIED_ITEM) in paragraphs


def test_a_code_listing_is_one_block_over_its_blank_lines_and_the_column_break(layout_rules):
    (code,) = [b for b in _blocks(layout_rules) if "#include" in b["text"]]
    assert code["kind"] == "paragraph"  # small type at the foot of a column, but code: not a footnote
    assert [l.strip() for l in code["text"].splitlines()] == [l.strip() for l in hard.RULES_CODE.splitlines()]
    assert not _blocks(layout_rules, "footnote") and not _blocks(layout_rules, "equation")


def _type3_chars(runs: list[tuple[str, float, float]], advance: float = 5.4) -> list[dict]:
    """Characters as pdfplumber reports a Type 3 bitmap font (the PageRank paper's): size 0.12,
    not upright, through a flipped matrix; ``runs`` are (text, x, baseline)."""
    chars = []
    for text, x, base in runs:
        for ch in text:
            chars.append({"text": ch, "x0": x, "x1": x + advance, "top": base - 0.12, "bottom": base, "size": 0.12,
                          "doctop": base - 0.12,
                          "upright": False, "fontname": "unknown", "matrix": (0.12, 0, 0, -0.12, x, 700 - base)})
            x += advance
    return chars


def test_a_raised_mark_in_a_font_without_sizes_is_a_superscript():
    from synth_tasks.methods.papers.extract import _fragments, _repaired_chars, _words

    # "[WVS" on the baseline, a "+" raised 6 pt, "96] Ron" back on it (TeX's \cite label [WVS+96])
    chars = _type3_chars([("[WVS", 72.0, 618.0), ("+", 93.6, 612.0), ("96]", 99.0, 618.0),
                          ("Ron", 120.0, 618.0), ("Weiss", 142.0, 618.0)])
    lines = _fragments(_words(_repaired_chars(chars)), 1, 612.0)
    assert [l.text for l in lines] == ["[WVS+96] Ron Weiss"]


class _NoNames(GlyphNames):
    def text(self, page, fontname, code):
        return None


def _glyph_chars(runs: list[tuple[str, float]], base: float = 500.0, advance: float = 5.0) -> list[dict]:
    return [{"text": t, "x0": x, "x1": x + advance, "top": base - 10, "bottom": base, "size": 10.0,
             "fontname": "T3", "upright": True} for t, x in runs]


def test_an_unmapped_glyph_beside_a_quote_is_read_though_ocr_curls_the_quote():
    from synth_tasks.methods.papers.extract import _named_glyphs

    # '"' (cid:13) 'a' 't' '"': OCR of the word reads the quotes curly, ”flat”
    chars = _glyph_chars([('"', 100), ("(cid:13)", 105), ("a", 110), ("t", 115), ('"', 120)])
    out, read, unread = _named_glyphs(chars, None, _NoNames(), lambda box: "” flat”")
    assert (read, unread) == (1, 0)
    assert "".join(c["text"] for c in sorted(out, key=lambda c: c["x0"])) == '"flat"'


def test_an_unmapped_accent_over_a_letter_is_read_with_it_and_the_letter_goes():
    from synth_tasks.methods.papers.extract import _named_glyphs

    # TeX's \'e: the acute (no text mapping) drawn over the "e" of "Velez"
    chars = _glyph_chars([("V", 100), ("(cid:19)", 105), ("e", 105.2), ("l", 110), ("e", 115), ("z", 120)])
    chars[2]["x1"] = 109.8
    out, read, unread = _named_glyphs(chars, None, _NoNames(), lambda box: "Vélez")
    assert (read, unread) == (1, 0)
    assert "".join(c["text"] for c in sorted(out, key=lambda c: c["x0"])) == "Vélez"


def test_the_shrunk_spaces_of_a_tight_line_still_part_its_words(layout_rules):
    assert hard.RULES_TIGHT_TEXT in [b["text"] for b in _blocks(layout_rules, "paragraph")]


def test_front_matter_across_a_first_page_leaves_its_two_columns_found_and_the_abstract_whole():
    paper = extract_paper(hard.front_matter_pdf(), "front.pdf", "front")
    assert paper["two_column_pages"] == [1]
    paragraphs = [b["text"] for b in _blocks(paper, "paragraph")]
    i = paragraphs.index(hard.FRONT_ABSTRACT)
    assert paragraphs[i + 1:i + 3] == [" ".join(hard.FRONT_LEFT), " ".join(hard.FRONT_RIGHT)]
    assert hard.FRONT_EMAIL in paragraphs and not _blocks(paper, "equation")


def test_a_bibliography_without_a_heading_under_a_band_of_white_is_read_last_one_entry_each():
    paper = extract_paper(hard.unheaded_bibliography_pdf(), "bib.pdf", "bib")
    kinds_texts = [(b["kind"], b["text"]) for b in paper["blocks"] if b["kind"] != "heading" and "Journal" not in b["text"]]
    assert kinds_texts == ([("paragraph", " ".join(hard.BIB_LEFT)), ("paragraph", " ".join(hard.BIB_RIGHT))]
                           + [("reference", " ".join(e)) for e in hard.BIB_ENTRIES])


def test_a_caption_label_set_apart_without_a_colon_heads_its_table():
    paper = extract_paper(hard.bare_caption_table_pdf(), "bare.pdf", "bare")
    (table,) = _blocks(paper, "table")
    assert table["caption"] == hard.BARE_CAPTION and table["label"] == "Table 4"
    assert json.loads(table["table_cells"]) == hard.BARE_TABLE
