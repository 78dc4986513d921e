"""Research-paper PDF -> blocks in reading order, each with its page (1-based) and bounding box.

No model: pdfplumber (MIT) gives every character with its position, font and size, and finds ruled
tables; the layout is recovered from those positions:

1. characters -> words -> line fragments (a row of words is cut where the gap is wider than a column
   gutter could be, so the two columns of a page never share a line). Glyphs without a text mapping
   ("(cid:N)") are named from the embedded font's glyph names (glyphs.py) or read by OCR from their
   box; a page without a text layer is read by OCR whole (ocr.py, tesseract). Superscripts and
   subscripts join the word they follow ("2^34", "99.9th"; a footnote mark is dropped), small
   capitals join their capital;
2. running headers and footers (a line in the top or bottom band that repeats on 30 % of the pages,
   digits ignored) and page numbers are removed; tables (pdfplumber's ruled tables, and tables set
   without rules next to a "Table N:" caption) and figure regions (clusters of images and vector
   graphics, with the short labels around them) are taken out of the text flow;
3. per page, a gutter is looked for near the middle (an x that no line crosses while lines sit side
   by side on both sides of it); lines that cross it span the page; reading order is then, band by
   band between spanning items, the left column top to bottom, then the right column;
4. lines -> paragraphs (a new one on a wider gap, a font change, an indent, a short last line, a
   display equation), with line-end hyphens repaired (kept where the document writes the word with
   a hyphen elsewhere, and after a number); a paragraph cut by a column or page break is joined
   again, the floats (figures, tables, captions, footnotes) placed after it;
5. paragraphs -> kinds: headings (size, weight, numbering; levels from the numbering, else from the
   size), figure captions (with the figure's region), table captions (attached to their table),
   display equations, footnotes, references (everything under a References heading, one entry per
   number or hanging indent), paragraphs. The title is the largest text near the top of page 1;
   the abstract is the text under an "Abstract" heading (or a paragraph that starts with "Abstract").

Bad files raise ``BadPDF`` with a "kind: file: detail" message: ``empty_file``, ``not_a_pdf``, ``truncated``,
``encrypted``, ``no_pages``, ``no_text_layer`` (no page has text, and OCR read none),
``ocr_unavailable`` (a page needs OCR and tesseract is not installed), ``unreadable_pdf``.

pdfplumber and pypdfium2 are imported inside the functions: the DAG file imports this package when
Airflow parses it.
"""

from __future__ import annotations

import io
import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field

from . import ocr
from .glyphs import CID, GlyphNames
from .ocr import OCRUnavailable

BAND = 0.12  # top and bottom share of the page where running headers, footers and page numbers live
# chars further apart than this share of their size start a new word: TeX shrinks a justified
# line's spaces to about 0.14 em (MapReduce's "pseudo-code is" set 0.145 em apart), while kerns
# inside a word stay under 0.05 em
WORD_GAP_RATIO = 0.12
TOUCHING = 0.1  # words closer than this share of their size touch: small capitals, a superscript
FRAGMENT_GAP_EM = 1.2  # words further apart than this many ems are in different columns (or table cells)
EQ_NUMBER_REACH = 0.3  # an equation number "(3)" this share of the page width from its equation still joins it
_MONO_FONTS = ("courier", "mono", "cmtt", "consol", "typewriter")
SCAN_STAMP_CHARS = 200  # fewer characters than this beside a page-sized image: a scan with a stamp
MATH_CHARS = set("=≤≥≠≈∑∏∫√±×÷∈∉⊂⊆∀∃→←↔∞∂∇αβγδεθλμπσφωΣΠΔΩ")

# "Table 4:", "Fig. 2.", or the label set apart before a capital ("Table 4  A table spanning ...", ASME)
_CAPTION = re.compile(r"^(?P<kind>fig\.?|figure|table)\s*(?P<num>\d+|[IVXLC]+)(\s*[:.|]|\s+(?=(?-i:[A-Z])))", re.IGNORECASE)
_NUMBERED = re.compile(r"^(?P<num>(?:\d+\.)*\d+|[IVX]+\.|[A-Z]\.(?:\d+\.?)*)\s+(?P<title>\S.*)$")
_SECTION_NUMBER = re.compile(r"(\d{1,2}(\.\d{1,2}){0,3}\.?|[IVX]{1,5}\.|[A-Z]\.)")
_PAGE_NUMBER = re.compile(r"^(page\s*)?(\d{1,4}|[ivxlc]{1,6})(\s*(of|/)\s*\d{1,4})?$", re.IGNORECASE)
_UNMAPPED_GLYPH = re.compile(r"\(cid:\d+\)")
_LIST_ITEM = re.compile(r"^(•|◦|▪|–|\*|\(cid:15\)|\(\d{1,2}\)|\d{1,2}[.)]|[a-z][.)]|\([a-z]\))\s")
_FOOTNOTE_MARK = re.compile(r"[\d*†‡§,]+")
_REF_LABEL = re.compile(r"\[[\w.+-]{1,20}\]|\d{1,3}\.")
_REF_START = re.compile(r"^(\[[\w.+-]{1,20}\]|\d{1,3}\.\s)")
_REFERENCES = re.compile(r"^((\d+|[IVX]+)\.?\s+)?(references|bibliography|works cited|literature cited)$",
                         re.IGNORECASE)
_KNOWN_SECTION = re.compile(r"^(abstract|introduction|background|related work|conclusions?|references|"
                            r"acknowledge?ments?|keywords|bibliography|appendix)\b", re.IGNORECASE)
_ABSTRACT = re.compile(r"^abstract\b[\s.:—-]*", re.IGNORECASE)
_EQ_NUMBER = re.compile(r"\(\s*\d{1,3}[a-z]?\s*\)$")


class BadPDF(ValueError):
    """A PDF this method cannot read; ``kind`` is the ledger's error kind, the message names the file."""

    def __init__(self, kind: str, name: str, detail: str):
        super().__init__(f"{kind}: {name}: {detail}")
        self.kind = kind


@dataclass
class Line:
    page: int
    x0: float
    top: float
    x1: float
    bottom: float
    text: str
    size: float
    bold: bool
    mono: bool = False  # a typewriter font: code
    col: str = "S"  # L(eft), R(ight) or S(panning / single column)
    ocr: bool = False  # some of its text was read from the pixels (ocr.py), not the text layer

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return (self.x0, self.top, self.x1, self.bottom)


@dataclass
class Region:
    """A table or a figure's graphics: kept out of the text flow, placed in reading order."""

    kind: str  # "table" | "figure"
    page: int
    x0: float
    top: float
    x1: float
    bottom: float
    cells: list[list[str]] | None = None
    col: str = "S"
    used: bool = False
    lines: list[Line] = field(default_factory=list)  # a figure's text (labels), out of the flow
    caption: str | None = None  # a table's, once attached
    label: str | None = None
    caption_bbox: tuple[float, float, float, float] | None = None
    section_path: list[str] = field(default_factory=list)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return (self.x0, self.top, self.x1, self.bottom)


@dataclass
class Paragraph:
    lines: list[Line]
    kind: str = "paragraph"
    text: str = ""
    level: int | None = None
    label: str | None = None
    region: Region | None = None  # a caption's figure or table
    section_path: list[str] = field(default_factory=list)

    @property
    def page(self) -> int:
        return self.lines[0].page

    @property
    def size(self) -> float:
        return statistics.median(line.size for line in self.lines)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """On its first page: a paragraph continued over a page break is placed where it starts."""
        lines = [l for l in self.lines if l.page == self.lines[0].page]
        return (min(l.x0 for l in lines), min(l.top for l in lines),
                max(l.x1 for l in lines), max(l.bottom for l in lines))


@dataclass
class PageLayout:
    number: int
    width: float
    height: float
    lines: list[Line]
    regions: list[Region]
    has_text: bool
    gutter: float | None = None
    ocr_page: bool = False  # the whole page was read by OCR: it has no text layer
    glyphs_read: int = 0  # glyphs without a text mapping, named from their font or read by OCR
    glyphs_unread: int = 0  # ... that neither could read: left out of the text


# ---------------------------------------------------------------------------------------------
# opening the file
# ---------------------------------------------------------------------------------------------
def open_pdf(data: bytes, name: str):
    """The pdfplumber document; BadPDF for a file that is no PDF, cut off, locked or without pages."""
    import pdfplumber
    from pdfminer.pdfdocument import PDFPasswordIncorrect
    from pdfplumber.utils.exceptions import PdfminerException

    if not data.strip():
        raise BadPDF("empty_file", name, f"the file holds {len(data)} bytes and no content")
    if b"%PDF-" not in data[:1024]:
        raise BadPDF("not_a_pdf", name, f"no %PDF- header in its first bytes ({data[:16]!r})")
    # anywhere, not only at the very end: bytes appended after a complete PDF leave it readable
    if b"%%EOF" not in data:
        raise BadPDF("truncated", name, f"no %%EOF marker in its {len(data)} bytes: the file is cut off")
    try:
        pdf = pdfplumber.open(io.BytesIO(data))
        n_pages = len(pdf.pages)
    except PdfminerException as exc:
        cause = exc.args[0] if exc.args else exc.__cause__
        if isinstance(cause, PDFPasswordIncorrect):
            raise BadPDF("encrypted", name, "it needs a password to open") from None
        raise BadPDF("unreadable_pdf", name, f"{type(cause).__name__}: {cause}") from None
    except Exception as exc:  # noqa: BLE001 - pdfminer raises many kinds on broken files
        raise BadPDF("unreadable_pdf", name, f"{type(exc).__name__}: {exc}") from None
    if n_pages == 0:
        pdf.close()
        raise BadPDF("no_pages", name, "the document has zero pages")
    return pdf


# ---------------------------------------------------------------------------------------------
# characters -> words -> line fragments
# ---------------------------------------------------------------------------------------------
def _repaired_chars(chars: list[dict]) -> list[dict]:
    """Characters of Type 3 fonts drawn through a flipped matrix come out as not upright with a
    size near 0 (the PageRank paper): upright they are, and their size is estimated from their
    advance (about half an em for lowercase letters), so words and lines form."""
    bogus = [c for c in chars if c["size"] < 2]
    if not bogus:
        return chars
    widths = [c["x1"] - c["x0"] for c in bogus if c["text"].isalpha() and c["text"].islower()]
    size = (statistics.median(widths) / 0.5) if widths else 10.0
    fixed = []
    for c in chars:
        if c["size"] < 2:
            m = c.get("matrix") or (1, 0, 0, 1, 0, 0)
            c = dict(c, size=size, top=c["bottom"] - size, upright=c["upright"] or (m[1] == 0 and m[2] == 0),
                     size_guessed=True)
        fixed.append(c)
    return fixed


def _deduped(chars: list[dict]) -> list[dict]:
    """Characters drawn twice at the same place (fake bold) once. pdfplumber's own dedupe_chars
    sorts per character and took 60 % of the extraction time on a 16-page paper."""
    seen: set[tuple] = set()
    out = []
    for c in chars:
        key = (c["text"], round(c["x0"] * 2), round(c["top"] * 2))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _words(chars: list[dict]) -> list[dict]:
    from pdfplumber.utils.text import WordExtractor

    extractor = WordExtractor(x_tolerance_ratio=WORD_GAP_RATIO, y_tolerance=3, extra_attrs=["size"],
                              keep_blank_chars=False)
    words = []
    for word, word_chars in extractor.iter_extract_tuples(chars):
        if not word["upright"]:
            continue  # rotated text (arXiv side stamps, axis labels) is not part of the flow
        fonts = [c["fontname"].lower() for c in word_chars]
        word["bold_chars"] = sum("bold" in f or "black" in f for f in fonts)
        word["mono_chars"] = sum(any(m in f for m in _MONO_FONTS) for f in fonts)
        word["n_chars"] = len(word_chars)
        word["ocr_chars"] = sum(bool(c.get("ocr")) for c in word_chars)
        word["size_guessed"] = any(c.get("size_guessed") for c in word_chars)
        words.append(word)
    return words


def _fragments(words: list[dict], page: int, page_width: float) -> list[Line]:
    """Rows of words (same baseline), cut where two words are further apart than a gutter."""
    rows: list[list[dict]] = []
    for w in sorted(_snap_scripts(words), key=lambda w: (w["bottom"], w["x0"])):
        if rows and abs(rows[-1][-1]["bottom"] - w["bottom"]) <= max(1.5, 0.25 * w["size"]):
            rows[-1].append(w)
        else:
            rows.append([w])
    lines = []
    for row in rows:
        row.sort(key=lambda w: w["x0"])
        gaps = [w["x0"] - prev["x1"] for prev, w in zip(row, row[1:])]
        pieces: list[list[dict]] = [[row[0]]]
        for i, (prev, w) in enumerate(zip(row, row[1:]), start=1):
            gap = gaps[i - 1]
            after = row[i + 1]["x0"] - w["x1"] if i + 1 < len(row) else float("inf")
            isolated = after > FRAGMENT_GAP_EM * w["size"]  # "(3)" alone, not "(3) Each worker ..."
            if gap > FRAGMENT_GAP_EM * max(w["size"], prev["size"]) and not (
                    _EQ_NUMBER.fullmatch(w["text"]) and isolated and gap < EQ_NUMBER_REACH * page_width) and not (
                    len(pieces[-1]) == 1 and _SECTION_NUMBER.fullmatch(prev["text"]) and w["text"][:1].isupper()
                    and gap < 4 * prev["size"]) and not _stretched(row, gaps, i):
                # another column; but an equation's number at its column's edge stays with its
                # equation, a section number set apart ("2.   Transactions") with its heading, and
                # the words of a justified line whose spaces were stretched wide with theirs
                pieces.append([w])
            else:
                pieces[-1].append(w)
        lines += [_line(piece, page) for piece in pieces]
    return lines


def _stretched(row: list[dict], gaps: list[float], i: int) -> bool:
    """The wide gap before ``row[i]`` is a word space of a justified line: justification stretches
    every space of a line by the same amount, so a wide gap next to another as wide (within a tenth
    of an em) between words of letters is one of them ("6.4 Client-driven   or   Server-driven" in a
    narrow column). Column gutters and table cells do not come in equal pairs of word-to-word gaps."""
    size = row[i]["size"]
    if abs(size - row[i - 1]["size"]) > 0.5:
        return False
    for j in (i - 2, i):  # the gap before the one before row[i], the gap after row[i]
        if 0 <= j < len(gaps) and abs(gaps[j] - gaps[i - 1]) < 0.1 * size and all(
                any(ch.isalpha() for ch in row[k]["text"]) for k in (j, j + 1, i - 1, i)):
            return True
    return False


def _snap_scripts(words: list[dict]) -> list[dict]:
    """Superscripts and subscripts ("10^10", "99.9th", footnote marks) sit off the baseline in a
    smaller size: each is put on the baseline of the larger word it follows (whose height holds it),
    so it joins that word's line instead of making one of its own (or joining the other column's
    line at its height). Its own bottom is kept as ``script_bottom`` for ``_joined_words``."""
    if not words:
        return words
    body = statistics.median(w["size"] for w in words)
    out = []
    for w in words:
        host = None
        if w["size"] < 0.85 * body:
            center = (w["top"] + w["bottom"]) / 2
            host = next((h for h in words if w["size"] < 0.85 * h["size"] and h["top"] <= center <= h["bottom"]
                         and -1 <= w["x0"] - h["x1"] < 0.5 * h["size"]), None)
        elif w.get("size_guessed") and len(w["text"]) <= 3:
            # a font that gives no size (``_repaired_chars``): a short word raised a fifth to two
            # thirds of an em above the word it touches is its superscript ("[WVS" + "+" + "96]")
            host = next((h for h in words if 0.2 * h["size"] < h["bottom"] - w["bottom"] < 0.67 * h["size"]
                         and -1 <= w["x0"] - h["x1"] < TOUCHING * h["size"]), None)
        if host is not None and abs(host["bottom"] - w["bottom"]) > 0.5:
            w = dict(w, bottom=host["bottom"], top=host["bottom"] - w["size"], script_bottom=w["bottom"])
        out.append(w)
    return out


def _line(words: list[dict], page: int) -> Line:
    n = sum(w["n_chars"] for w in words)
    return Line(page=page, x0=min(w["x0"] for w in words), top=min(w["top"] for w in words),
                x1=max(w["x1"] for w in words), bottom=max(w["bottom"] for w in words),
                text=_joined_words(words),
                size=statistics.median(w["size"] for w in words),
                bold=sum(w["bold_chars"] for w in words) >= 0.8 * n,
                mono=sum(w["mono_chars"] for w in words) >= 0.8 * n,
                ocr=any(w["ocr_chars"] for w in words))


def _joined_words(words: list[dict]) -> str:
    """A row's words with spaces, except where a word touches the one before it in another size:
    small capitals ("B" + "IRMAN") join; a raised smaller word is a superscript: an exponent after a
    number ("10" + "10" -> "10^10"), an ordinal ("99.9th"), or a footnote mark after a word, which is
    dropped (the footnote is its own block); a lowered one is a subscript ("N_proxy")."""
    text = ""
    prev = None
    mark_dropped = False
    for w in words:
        if prev is None:
            text = w["text"]
        elif mark_dropped and w["text"][0] in ".,;:)" and abs(w["size"] - prev["size"]) < 0.5:
            text += w["text"]  # "Gnutella¹," -> "Gnutella,"
        elif w["x0"] - prev["x1"] > TOUCHING * min(w["size"], prev["size"]) or (
                abs(w["size"] - prev["size"]) < 0.5 and "script_bottom" not in w and "script_bottom" not in prev):
            text += " " + w["text"]
        elif (w["size"] < prev["size"] or "script_bottom" in w) and \
                w.get("script_bottom", w["bottom"]) < prev["bottom"] - 0.15 * prev["size"]:
            if prev["text"][-1].isdigit() and w["text"].isdigit():
                text += "^" + w["text"]
            elif prev["text"][-1].isdigit() and w["text"] in ("st", "nd", "rd", "th"):
                text += w["text"]
            elif _FOOTNOTE_MARK.fullmatch(w["text"]) and (prev["text"][-1].isalpha() or prev["text"][-1] in ".,;:)"):
                mark_dropped = True
                continue  # a footnote mark: the word before it stays the word before the next one
            else:
                text += w["text"]
        elif w["size"] < prev["size"] and w.get("script_bottom", w["bottom"]) > prev["bottom"] + 0.1 * prev["size"]:
            text += "_" + w["text"]
        else:
            text += w["text"]
        prev = w
        mark_dropped = False
    return text


def _inside(box, region, pad: float = 1.0) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] - pad <= cx <= region[2] + pad and region[1] - pad <= cy <= region[3] + pad


def _overlap(a, b, pad: float = 0.0) -> bool:
    return a[0] - pad < b[2] and b[0] - pad < a[2] and a[1] - pad < b[3] and b[1] - pad < a[3]


# ---------------------------------------------------------------------------------------------
# tables and figure regions
# ---------------------------------------------------------------------------------------------
def _tables(page, number: int, words: list[dict]) -> list[Region]:
    """pdfplumber's ruled tables, the rules drawn as lines, rectangles or thin images; each cell's
    text is made of this module's words (its own extraction joins words that are set close together)."""
    regions = []
    # rules drawn as thin images (GFS draws every table rule as a 1-pt raster strip) are rules too
    thin = [dict(i, object_type="rect") for i in page.images if min(i["x1"] - i["x0"], i["bottom"] - i["top"]) <= 2]
    settings = {"explicit_horizontal_lines": [i for i in thin if i["x1"] - i["x0"] > i["bottom"] - i["top"]],
                "explicit_vertical_lines": [i for i in thin if i["x1"] - i["x0"] <= i["bottom"] - i["top"]]}
    for table in page.find_tables(settings if thin else None):
        rows: list[list[list[dict]]] = []  # rows of cells of words
        for row in table.rows:
            cells: list[list[list[dict]]] = []  # each cell's text lines, as words
            for cell in row.cells:
                inside = [] if cell is None else [w for w in words if _inside((w["x0"], w["top"], w["x1"], w["bottom"]), cell, pad=0)]
                lines: dict[int, list[dict]] = {}
                for w in sorted(inside, key=lambda w: (w["bottom"], w["x0"])):
                    key = next((k for k in lines if abs(k - w["bottom"]) <= 2), round(w["bottom"]))
                    lines.setdefault(key, []).append(w)
                cells.append([sorted(ws, key=lambda w: w["x0"]) for _, ws in sorted(lines.items())])
            counts = {len(c) for c in cells if c}
            numbers = all(any(ch.isdigit() for w in line for ch in w["text"]) for c in cells[1:] for line in c)
            if len(counts) == 1 and (k := counts.pop()) > 1 and sum(bool(c) for c in cells) > 1 and (
                    k >= 3 or len(table.rows) <= 2 or numbers):
                # rows without their own rules: every cell holds the same number of lines (but two
                # lines of words in a table that rules its rows are one cell's text, wrapped)
                rows += [[c[i] if c else [] for c in cells] for i in range(k)]
            else:
                rows.append([[w for line in c for w in line] for c in cells])
        rows = [r for r in rows if any(r)]
        if len(rows) < 2 or max(len(r) for r in rows) < 2 or len(rows) * max(len(r) for r in rows) <= 4:
            continue  # a box around text, or the boxes of a diagram (a stack of them): not a grid
        grid = [[" ".join(w["text"] for w in cell) for cell in r] for r in _split_columns(rows)]
        x0, top, x1, bottom = table.bbox
        regions.append(Region("table", number, x0, top, x1, bottom, cells=grid))
    return regions


def _split_columns(rows: list[list[list[dict]]]) -> list[list[list[dict]]]:
    """Ruled columns that hold unruled sub-columns ("Read" over "X  Y", each row "0.4  2.6") split
    into them: where most rows hold the same number of words, one line each, with the gaps between
    them lined up across the rows. A word over a gap (a spanning header) goes to its left part."""
    width = max(len(r) for r in rows)
    out = [list(r) + [[] for _ in range(width - len(r))] for r in rows]
    j = 0
    while j < len(out[0]):
        bounds = _sub_column_bounds([r[j] for r in out])
        for r in out:
            parts: list[list[dict]] = [[] for _ in range(len(bounds) + 1)]
            for w in r[j]:
                parts[sum(w["x0"] > b for b in bounds)].append(w)
            r[j:j + 1] = parts
        j += len(bounds) + 1
    return out


def _sub_column_bounds(cells: list[list[dict]]) -> list[float]:
    one_line = [sorted(c, key=lambda w: w["x0"]) for c in cells
                if c and max(w["bottom"] for w in c) - min(w["bottom"] for w in c) < 2]
    if len(one_line) < 3:
        return []
    counts = Counter(len(c) for c in one_line)
    m, n = counts.most_common(1)[0]
    if m < 2 or n < 0.6 * sum(1 for c in cells if c):
        return []
    same = [c for c in one_line if len(c) == m]
    bounds = []
    for i in range(m - 1):
        lo, hi = max(c[i]["x1"] for c in same), min(c[i + 1]["x0"] for c in same)
        if lo >= hi:
            return []  # words that do not line up: a phrase, not columns
        if sum(not any(ch.isdigit() for ch in c[i + 1]["text"]) for c in same) >= 0.8 * len(same):
            return []  # "72 TB", "735 k": a number and its unit are one value
        bounds.append((lo + hi) / 2)
    return bounds


def _figure_regions(page, number: int, tables: list[Region], words: list[dict]) -> list[Region]:
    """Clusters of images and vector graphics big enough to be a figure, outside tables; a cluster
    holding a lot of text is a framed text box and stays in the flow."""
    area = page.width * page.height
    boxes = []
    for obj in (*page.images, *page.rects, *page.curves, *page.lines):
        box = (max(obj["x0"], 0), max(obj["top"], 0), min(obj["x1"], page.width), min(obj["bottom"], page.height))
        if (box[2] - box[0]) * (box[3] - box[1]) > 0.8 * area:
            continue  # a page background
        if any(_overlap(box, t.bbox, pad=2) for t in tables):
            continue
        boxes.append(list(box))
    merged = True
    while merged:  # merge boxes closer than 8 pt until none are
        merged = False
        out: list[list[float]] = []
        for box in boxes:
            for other in out:
                if _overlap(box, other, pad=8):
                    other[:] = [min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]), max(box[3], other[3])]
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    rows: dict[int, list[dict]] = {}
    for w in words:
        rows.setdefault(round(w["bottom"]), []).append(w)
    captions = [(min(w["top"] for w in row), max(w["bottom"] for w in row)) for row in rows.values()
                if _CAPTION.match(" ".join(w["text"] for w in sorted(row, key=lambda w: w["x0"])))]
    regions = []
    for box in boxes:
        for cap_top, cap_bottom in captions:  # a frame drawn around a figure and its caption
            if box[1] < cap_top < box[3] and box[0] < box[2]:
                if cap_top - box[1] > box[3] - cap_bottom:
                    box[3] = cap_top - 1
                else:
                    box[1] = cap_bottom + 1
        if box[2] - box[0] < 30 or box[3] - box[1] < 15:
            continue  # rules, underlines, bullets
        inside = [w for w in words if _inside((w["x0"], w["top"], w["x1"], w["bottom"]), box)]
        in_rows = Counter(round(w["bottom"]) for w in inside)
        prose = sum(n for n in in_rows.values() if n >= 8)
        if len(inside) > 30 and prose > 0.5 * len(inside):
            continue  # a framed box of prose (an algorithm, a sidebar): it stays in the text
        regions.append(Region("figure", number, *box))
    return regions


def _text_tables(page: PageLayout) -> None:
    """Tables set without rules, found from their caption: the rows next to a "Table N:" line (below
    it, or above it when the caption is below the table) that hold several cells, up to the first
    line of prose or a wider gap. Columns come from the rows with the most cells; the rows become a
    table region, taken out of the text flow."""
    for cap in [l for l in page.lines if (m := _CAPTION.match(l.text)) and m["kind"].lower() == "table"]:
        if any(r.kind == "table" and min(abs(r.top - cap.bottom), abs(cap.top - r.bottom)) < 3 * cap.size
               for r in page.regions):
            continue  # its ruled table is there
        framed = [r for r in page.regions if r.kind == "figure" and r.lines and _beside(r, cap)]
        if framed:  # a table drawn inside a frame or between rules was taken for a figure
            region = min(framed, key=lambda r: min(abs(r.top - cap.bottom), abs(cap.top - r.bottom)))
            found = _rows(region.lines)
            if len(found) >= 2 and sum(len(r) >= 2 for r in found) >= 2:
                region.kind, region.cells = "table", _grid(found)
            continue
        col = _column(cap.bbox, page.gutter)
        # a caption across both columns heads a table across both: its rows were cut at the gutter
        pool = [l for l in page.lines if l is not cap and (col == "S" or _column(l.bbox, page.gutter) == col)]
        found = max((_table_rows(pool, cap, up) for up in (True, False)), key=len)
        if not found:
            continue
        taken = {id(f) for row in found for f in row}
        page.lines = [l for l in page.lines if id(l) not in taken]
        frags = [f for row in found for f in row]
        page.regions.append(Region("table", page.number, min(f.x0 for f in frags), min(f.top for f in frags),
                                   max(f.x1 for f in frags), max(f.bottom for f in frags), cells=_grid(found)))


def _beside(region: Region, cap: Line) -> bool:
    """The region is right above or below the caption line and overlaps it horizontally."""
    overlap = min(region.x1, cap.x1) - max(region.x0, cap.x0)
    near = min(abs(region.top - cap.bottom), abs(cap.top - region.bottom)) < 3 * cap.size
    return near and overlap > 0.3 * min(region.x1 - region.x0, cap.x1 - cap.x0)


def _rows(lines: list[Line]) -> list[list[Line]]:
    rows: list[list[Line]] = []
    for l in sorted(lines, key=lambda l: l.top):
        if rows and abs(rows[-1][0].top - l.top) < 0.5 * l.size:
            rows[-1].append(l)
        else:
            rows.append([l])
    return [sorted(r, key=lambda l: l.x0) for r in rows]


def _grid(rows: list[list[Line]]) -> list[list[str]]:
    """Cells of text-aligned rows: the columns are those of the rows with the most common number of
    cells; every piece of another row goes to the column it overlaps most."""
    k = Counter(len(r) for r in rows if len(r) >= 2).most_common(1)[0][0]
    spans = [[min(r[j].x0 for r in rows if len(r) == k), max(r[j].x1 for r in rows if len(r) == k)]
             for j in range(k)]
    grid = []
    for row in rows:
        cells = [""] * k
        for frag in row:
            j = max(range(k), key=lambda j: min(frag.x1, spans[j][1]) - max(frag.x0, spans[j][0]))
            cells[j] = f"{cells[j]} {frag.text}".strip()
        grid.append(cells)
    return grid


def _table_rows(pool: list[Line], cap: Line, up: bool) -> list[list[Line]]:
    side = [l for l in pool if (l.bottom <= cap.top + 1 if up else l.top >= cap.bottom - 1)]
    rows = _rows(side)[::-1] if up else _rows(side)
    taken: list[list[Line]] = []
    edge = cap.top if up else cap.bottom
    for row in rows:
        top, bottom = min(l.top for l in row), max(l.bottom for l in row)
        gap = edge - bottom if up else top - edge
        if gap > 2.5 * cap.size or _CAPTION.match(row[0].text):
            break
        if all(len(l.text.split()) >= 7 for l in row) or len(row) == 1 and (
                row[0].bold or row[0].size > cap.size + 1.5 or _KNOWN_SECTION.match(row[0].text)):
            break  # prose (in one column or two), or the next heading
        taken.append(sorted(row, key=lambda l: l.x0))
        edge = top if up else bottom
    while taken and len(taken[-1]) == 1:
        taken.pop()  # one piece past the last row of cells is not the table's
    if up:
        taken.reverse()
    multi = sum(len(r) >= 2 for r in taken)
    return taken if len(taken) >= 2 and multi >= max(2, (len(taken) + 1) // 2) else []


# ---------------------------------------------------------------------------------------------
# running headers and footers
# ---------------------------------------------------------------------------------------------
def _signature(text: str) -> str:
    return re.sub(r"\d+", "#", " ".join(text.lower().split()))


def _remove_running_lines(pages: list[PageLayout]) -> int:
    """Drop lines in the top/bottom band that repeat on other pages (digits ignored; on at least 30 %
    of the pages, so a table header at the top of two pages stays) and page numbers; returns how
    many were dropped."""
    def in_band(line: Line, p: PageLayout) -> bool:
        return line.bottom < BAND * p.height or line.top > (1 - BAND) * p.height

    seen = Counter()
    for p in pages:
        seen.update({_signature(l.text) for l in p.lines if in_band(l, p)})
    removed = 0
    repeats = max(2, 0.3 * len(pages))  # odd and even pages may carry different running heads
    for p in pages:
        keep = []
        for line in p.lines:
            if in_band(line, p) and (seen[_signature(line.text)] >= repeats or _PAGE_NUMBER.match(line.text.strip())):
                removed += 1
            else:
                keep.append(line)
        p.lines = keep
    return removed


# ---------------------------------------------------------------------------------------------
# columns and reading order
# ---------------------------------------------------------------------------------------------
def _gutter(lines: list[Line], width: float, at: float | None = None) -> float | None:
    """The x of a two-column page's gutter: near the middle, crossed by at most a quarter of the
    lines from the first to the last lines of prose side by side across it (two pairs; one where ``at``, the gutter of
    the document's other pages, is given); None for a single-column page."""
    if len(lines) < 4:
        return None
    if at is None:
        lo, hi = int(0.35 * width), int(0.65 * width)
        crossing = {x: sum(l.x0 < x < l.x1 for l in lines) for x in range(lo, hi + 1)}
        least = min(crossing.values())
        runs, run = [], []
        for x in range(lo, hi + 1):
            if crossing[x] == least:
                run.append(x)
            elif run:
                runs.append(run)
                run = []
        if run:
            runs.append(run)
        best = max(runs, key=len)
        gx = (best[0] + best[-1]) / 2
    else:
        gx = at
    left = [l for l in lines if l.x1 <= gx and len(l.text.split()) >= 3]
    right = [l for l in lines if l.x0 >= gx and len(l.text.split()) >= 3]
    paired = [l for l in left if any(r.top < l.bottom and l.top < r.bottom for r in right)]
    if len(paired) < (1 if at is not None else 2):
        return None
    # the lines crossing it are counted where the columns are: a first page's title, authors and
    # abstract set across the page above them are no evidence against two columns below
    top, bottom = min(l.top for l in paired), max(l.bottom for l in paired)
    within = [l for l in lines if top - 1 <= l.top and l.bottom <= bottom + 1]
    return None if sum(l.x0 < gx < l.x1 for l in within) > 0.25 * len(within) else gx


def _column(box, gx: float | None) -> str:
    if gx is None:
        return "S"
    return "L" if box[2] <= gx + 1 else "R" if box[0] >= gx - 1 else "S"


def _reading_order(page: PageLayout) -> list[Line | Region]:
    """Band by band between spanning items: left column top to bottom, then the right column."""
    items: list[Line | Region] = [*page.lines, *page.regions]
    for item in items:
        item.col = _column(item.bbox, page.gutter)
    for line in sorted(page.lines, key=lambda l: l.top):
        # the short last line of a paragraph set across the page (an abstract) lies on one side of
        # the gutter: right under a spanning line of its size, with nothing beside it, it spans too
        under_spanning = any(a.col == "S" and 0 <= line.top - a.bottom < 0.5 * line.size
                             and a.x0 - 2 * line.size <= line.x0 and abs(a.size - line.size) < 0.6 for a in page.lines)
        beside = any(o.col not in ("S", line.col) and o.top < line.bottom and line.top < o.bottom for o in items)
        if line.col != "S" and under_spanning and not beside:
            line.col = "S"
    if page.gutter is None:
        return sorted(items, key=lambda i: (i.top, i.x0))
    spanning: list[Line | Region | float] = sorted((i for i in items if i.col == "S"), key=lambda i: i.top)
    columns = [i for i in items if i.col != "S"]
    # a band of white across the whole page, several lines high, ends one band of columns and
    # starts another: author blocks side by side above the abstract, a bibliography set in two
    # columns under the end of the text
    size = statistics.median(l.size for l in page.lines) if page.lines else 10.0
    reach = float("-inf")
    for item in sorted(items, key=lambda i: i.top):
        if reach > float("-inf") and item.top - reach > 3 * size:
            spanning.append(item.top - 0.5)
        reach = max(reach, item.bottom)
    spanning.sort(key=lambda i: i if isinstance(i, float) else i.top)
    ordered: list[Line | Region] = []
    upper = float("-inf")
    for stop in [*spanning, None]:
        limit = float("inf") if stop is None else stop if isinstance(stop, float) else stop.top
        band = [i for i in columns if upper <= i.top < limit]
        ordered += sorted((i for i in band if i.col == "L"), key=lambda i: (i.top, i.x0))
        ordered += sorted((i for i in band if i.col == "R"), key=lambda i: (i.top, i.x0))
        if stop is not None:
            if not isinstance(stop, float):
                ordered.append(stop)
            upper = limit
    return ordered


# ---------------------------------------------------------------------------------------------
# lines -> paragraphs
# ---------------------------------------------------------------------------------------------
def _is_equation(line: Line, col_left: float, col_right: float) -> bool:
    text = line.text
    mathy = sum(ch in MATH_CHARS for ch in text)
    if not mathy:
        return False
    words = text.split()
    prose = sum(w.isalpha() and len(w) > 3 for w in words)
    indented = line.x0 - col_left > 2 * line.size and col_right - line.x1 > 2 * line.size
    return (bool(_EQ_NUMBER.search(text)) or indented) and prose <= max(1, len(words) // 3)


def _paragraphs(page: PageLayout, ordered: list[Line | Region]) -> list[Paragraph | Region]:
    bounds: dict[str, tuple[float, float]] = {}
    for col in "LRS":
        col_lines = [l for l in page.lines if l.col == col]
        if col_lines:
            bounds[col] = (min(l.x0 for l in col_lines), max(l.x1 for l in col_lines))
    out: list[Paragraph | Region] = []
    current: list[Line] = []
    prev_eq = False

    def flush():
        if current:
            out.append(Paragraph(list(current)))
            current.clear()

    for item in ordered:
        if isinstance(item, Region):
            flush()
            out.append(item)
            prev_eq = False
            continue
        left, right = bounds[item.col]
        eq = _is_equation(item, left, right) and not item.mono  # "i == 0" in code is no formula
        if current:
            prev = current[-1]
            size = max(prev.size, item.size)
            step = item.top - prev.top
            # indents and short lines are measured against the paragraph so far (an indented
            # abstract is narrower than its column)
            here_left = min(l.x0 for l in (*current, item)) if len(current) > 1 else min(left, item.x0)
            here_right = max(l.x1 for l in (*current, item))
            indent = item.x0 - here_left > 0.7 * item.size and prev.x0 - here_left <= 0.7 * item.size
            if _LIST_ITEM.match(current[0].text) and not _LIST_ITEM.match(item.text):
                indent = False  # the hanging indent of a list item's next lines
            starts_item = bool(_LIST_ITEM.match(item.text)) and item.x0 <= here_left + 2 * item.size
            # a numbered heading right under another ("3. RELATED WORK" over "3.1 Peer to Peer")
            starts_item |= item.bold and prev.bold and bool((m := _NUMBERED.match(item.text)) and m["title"][:1].isupper())
            short_end = prev.x1 < here_right - 2.5 * prev.size and prev.text.rstrip().endswith((".", "!", "?", ":"))
            gap_limit = 1.45 * size
            if item.mono and prev.mono:  # code: indents, short lines and blank lines are its shape, not breaks
                indent = short_end = eq = starts_item = False
                step = max(step, 0.0) if item.x0 > prev.x0 else step  # a row of code output: one line
                gap_limit = 2.6 * size  # one blank line
            if (item.col != prev.col or step > gap_limit or step < 0 or abs(item.size - prev.size) > 0.6
                    or item.bold != prev.bold or item.mono != prev.mono or indent or short_end or eq or prev_eq
                    or starts_item):
                flush()
        current.append(item)
        prev_eq = eq
    flush()
    return out


def join_lines(lines: list[str], hyphenated: set[str]) -> str:
    """Lines joined by spaces; a line-end hyphen before a lowercase letter is dropped ("pipe-" +
    "line"), unless the document writes the word with the hyphen elsewhere ("two-column"), the
    part before it already holds one ("peer-to-") or the part after ("proof-" + "of-work"), it
    follows an adverb ("loosely-" + "coupled") or a number ("1000-" + "byte")."""
    text = ""
    for line in lines:
        line = line.strip()
        if not text:
            text = line
            continue
        m = re.search(r"(\S+)-$", text)
        if m and line[:1].islower() and m.group(1)[-1:].isdigit():
            text += line  # "1000-" + "byte": a number's hyphen is the compound's
        elif m and line[:1].islower() and m.group(1)[-1:].isalpha():
            head = m.group(1)
            tail = re.match(r"[\w'’-]+", line)
            word = f"{head}-{tail.group(0) if tail else ''}".lower().strip(".,;:()[]-")
            if "-" in head or word in hyphenated or (tail and "-" in tail.group(0).strip("-")) or head.endswith("ly"):
                text += line
            else:
                text = text[:-1] + line
        else:
            text += " " + line
    return text


# ---------------------------------------------------------------------------------------------
# the whole paper
# ---------------------------------------------------------------------------------------------
def layout_pages(pdf, renderer: PageRenderer) -> list[PageLayout]:
    glyph_names = GlyphNames()  # fonts are shared by pages: each is read once
    pages = []
    for number, page in enumerate(pdf.pages, start=1):
        try:
            pages.append(_layout_page(page, number, glyph_names, renderer))
        finally:
            page.close()  # its parsed objects and caches: a 300-page paper held 3.27 GB without this
    return pages


def _layout_page(page, number: int, glyph_names: GlyphNames, renderer: PageRenderer) -> PageLayout:
    chars = _repaired_chars(_deduped(page.chars))
    if _scanned(page, chars):
        words = ocr.page_words(renderer.render(number))
        layout = _page_of_words(page, number, words)
        layout.ocr_page = True
        return layout
    chars, read, unread = _named_glyphs(
        chars, page, glyph_names, lambda box: ocr.read_line(renderer.render(number, _padded(box, 2.0))))
    layout = _page_of_words(page, number, _words(chars))
    layout.glyphs_read, layout.glyphs_unread = read, unread
    return layout


def _page_of_words(page, number: int, words: list[dict]) -> PageLayout:
    tables = _tables(page, number, words)
    figures = _figure_regions(page, number, tables, words)

    def within(w, r):
        return _inside((w["x0"], w["top"], w["x1"], w["bottom"]), r.bbox)

    for r in figures:
        r.lines = _fragments([w for w in words if within(w, r)], number, float(page.width))
    flow = [w for w in words if not any(within(w, r) for r in (*tables, *figures))]
    lines = _absorb_labels(_fragments(flow, number, float(page.width)), figures)
    return PageLayout(number, float(page.width), float(page.height), lines, [*tables, *figures],
                      has_text=bool(words))


def _scanned(page, chars: list[dict]) -> bool:
    """A page to read by OCR: no text layer at all, or an image over half the page with only a stamp
    of text (a scanner's or a repository's line) beside it."""
    if not chars:
        return True
    area = float(page.width * page.height)
    covered = sum((min(i["x1"], page.width) - max(i["x0"], 0)) * (min(i["bottom"], page.height) - max(i["top"], 0))
                  for i in page.images)
    return covered > 0.5 * area and sum(not c["text"].isspace() for c in chars) < SCAN_STAMP_CHARS


def _named_glyphs(chars: list[dict], page, glyph_names: GlyphNames, read_box) -> tuple[list[dict], int, int]:
    """Characters reported as "(cid:N)" get their text: from the font program's glyph names where it
    has them (ligatures, quotes and dashes of a font without a Unicode map), else by OCR of the glyphs
    with the rest of their word, which tesseract reads far better than a lone glyph; a glyph's reading
    is learned per font and code once two readings agree, so each is OCRed a few times per paper. A
    glyph neither reads is dropped and counted: "(cid:N)" never reaches a block. Returns the
    characters, the glyphs read and the glyphs unread."""
    out: list[dict] = []
    runs: list[list[dict]] = []
    read = 0
    for c in chars:
        m = CID.match(c["text"])
        if m is None:
            out.append(c)
            continue
        c = dict(c, code=(c["fontname"], int(m[1])))
        text = glyph_names.text(page, c["fontname"], int(m[1]))
        if text is not None:
            out.append(dict(c, text=text))
            read += 1
        elif runs and _adjacent(runs[-1][-1], c):
            runs[-1].append(c)
        else:
            runs.append([c])
    if not runs:
        return out, read, 0
    unread = 0
    lines: dict[int, list[dict]] = {}
    for c in out:
        lines.setdefault(round(c["bottom"]), []).append(c)
    for run in runs:
        # a glyph drawn over a letter is its accent (TeX sets "é" as an acute over an "e"): the two
        # are read as one, and the letter goes
        box = _bbox(run)
        under = [c for c in lines.get(round(run[0]["bottom"]), ()) if box[0] <= (c["x0"] + c["x1"]) / 2 <= box[2]
                 and c["text"].isalpha()]
        known = [None] if under else [glyph_names.learned(c["code"]) for c in run]
        text = "".join(k or "" for k in known)
        if None in known:
            left, right = _word_around(run, lines)
            seen = read_box(_bbox([*left, *run, *right]))
            prefix, suffix = "".join(c["text"] for c in left), "".join(c["text"] for c in right)
            squeezed = _folded(seen.replace(" ", "") if (left or right) else seen)
            prefix, suffix = _folded(prefix), _folded(suffix)
            if squeezed.startswith(prefix) and squeezed.endswith(suffix) and len(squeezed) > len(prefix) + len(suffix):
                text = squeezed[len(prefix):len(squeezed) - len(suffix)]
            else:
                text = ""
            if len(run) == 1 and not under:
                glyph_names.vote(run[0]["code"], text)  # "" too: a glyph OCR cannot read is not tried forever
        if not text.strip():
            unread += len(run)
            continue
        if under:
            out = [c for c in out if not any(c is u for u in under)]
        read += len(run)
        words = text.split()
        unit = (box[2] - box[0]) / (sum(map(len, words)) + len(words) - 1)
        x = box[0]
        for word in words:  # one character per word read, placed in proportion to its length
            out.append(dict(run[0], text=word, x0=x, x1=x + unit * len(word), ocr=True))
            x += unit * (len(word) + 1)
    return out, read, unread


_QUOTES = str.maketrans(dict.fromkeys("‘’‚‛′`", "'") | dict.fromkeys("“”„‟″", '"'))


def _folded(text: str) -> str:
    """Curly and straight quotes as one: OCR reads a text layer's '"' as '”' and the other way round
    (the same length, so a position in one is a position in the other)."""
    return text.translate(_QUOTES)


def _padded(box: tuple[float, float, float, float], pad: float) -> tuple[float, float, float, float]:
    return (box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad)


def _adjacent(a: dict, b: dict) -> bool:
    return abs(a["bottom"] - b["bottom"]) < 2 and -0.1 * b["size"] <= b["x0"] - a["x1"] < 0.5 * b["size"]


def _word_around(run: list[dict], lines: dict[int, list[dict]]) -> tuple[list[dict], list[dict]]:
    """The characters of the run's word on either side of it (no gap wider than a letter space)."""
    row = sorted((c for k in (round(run[0]["bottom"]) + d for d in (-1, 0, 1)) for c in lines.get(k, ())),
                 key=lambda c: c["x0"])
    left: list[dict] = []
    edge = run[0]
    for c in reversed([c for c in row if c["x1"] <= edge["x0"] + 0.5]):
        if edge["x0"] - c["x1"] > WORD_GAP_RATIO * c["size"] or c["text"].isspace():
            break
        left.insert(0, c)
        edge = c
    right: list[dict] = []
    edge = run[-1]
    for c in [c for c in row if c["x0"] >= edge["x1"] - 0.5]:
        if c["x0"] - edge["x1"] > WORD_GAP_RATIO * c["size"] or c["text"].isspace():
            break
        right.append(c)
        edge = c
    return left, right


def _bbox(chars: list[dict]) -> tuple[float, float, float, float]:
    return (min(c["x0"] for c in chars), min(c["top"] for c in chars), max(c["x1"] for c in chars),
            max(c["bottom"] for c in chars))


def _absorb_labels(lines: list[Line], figures: list[Region]) -> list[Line]:
    """Short lines right next to a figure's graphics (tick labels, axis titles, legends) are the
    figure's, not the text's; the region grows to hold them."""
    for _ in range(2):
        keep = []
        for line in lines:
            near = next((r for r in figures if _overlap(line.bbox, r.bbox, pad=1.5 * line.size)), None)
            if near is not None and len(line.text.split()) <= 4 and not _CAPTION.match(line.text):
                near.lines.append(line)
                near.x0, near.top = min(near.x0, line.x0), min(near.top, line.top)
                near.x1, near.bottom = max(near.x1, line.x1), max(near.bottom, line.bottom)
            else:
                keep.append(line)
        lines = keep
    return lines


def _body_size(paragraphs: list[Paragraph]) -> float:
    sizes = Counter()
    for p in paragraphs:
        for line in p.lines:
            sizes[round(line.size * 2) / 2] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 10.0


def _private(ch: str) -> bool:
    return "\ue000" <= ch <= "\uf8ff"  # glyphs of math fonts without a Unicode mapping


def _mathy(p: Paragraph) -> bool:
    """Display math: symbols with little prose, or a few short tokens (the pieces of a formula
    typeset in several runs: "z", "k=0 k!")."""
    words = p.text.split()
    # words of four letters or more, punctuation aside: "(MUSO Collaboration)" and an e-mail address are no formula
    prose = [w for w in words if (n := sum(ch.isalpha() for ch in w)) >= 4 and n >= 0.75 * len(w)]
    if any(ch in MATH_CHARS or _private(ch) for ch in p.text):
        return len(prose) <= max(1, len(words) // 3)
    return len(words) <= 4 and not prose and not _PAGE_NUMBER.match(p.text) and not p.lines[0].mono


def _code_text(lines: list[Line]) -> str:
    """Code keeps its lines; pieces of one row (columns of program output) share a line."""
    out = ""
    for prev, line in zip([None, *lines], lines):
        sep = "" if prev is None else "  " if abs(line.top - prev.top) < 0.5 * line.size else "\n"
        out += sep + line.text
    return out


def _classify(items: list[Paragraph | Region], body: float, hyphenated: set[str]) -> list[Paragraph | Region]:
    """Kinds of the paragraphs; neighbouring pieces of one display formula become one equation."""
    fonts_known = any(l.bold for p in items if isinstance(p, Paragraph) for l in p.lines)
    for p in items:
        if isinstance(p, Paragraph):
            mono = all(l.mono for l in p.lines)
            p.text = _code_text(p.lines) if mono else join_lines([l.text for l in p.lines], hyphenated)
    out: list[Paragraph | Region] = []
    for p in items:
        if isinstance(p, Region):
            out.append(p)
            continue
        cap = _CAPTION.match(p.text)
        if cap:
            kind = "table" if cap["kind"].lower() == "table" else "figure"
            p.kind = "table_caption" if kind == "table" else "figure_caption"
            p.label = f"{'Table' if kind == 'table' else 'Figure'} {cap['num']}"
        elif _is_heading(p, body, fonts_known):
            p.kind = "heading"
        elif _mathy(p) and not all(l.mono for l in p.lines):
            p.kind = "equation"
            prev = out[-1] if out else None
            if (isinstance(prev, Paragraph) and prev.kind == "equation" and prev.page == p.page
                    and p.bbox[1] - prev.bbox[3] < 1.5 * p.size and prev.bbox[1] - p.bbox[3] < 1.5 * p.size):
                prev.lines += p.lines  # another piece of the same formula
                prev.lines.sort(key=lambda l: (round(l.top), l.x0))
                prev.text = " ".join(l.text for l in prev.lines)
                continue
        out.append(p)
    return out


def _mark_footnotes(items: list[Paragraph | Region], body: float, pages: list[PageLayout]) -> None:
    """Footnotes: smaller than the body text, in the bottom quarter of the page, below everything
    else in their column. They stay blocks of their own (kind ``footnote``), out of the sentences
    they interrupt."""
    paragraphs = [p for p in items if isinstance(p, Paragraph)]
    for p in paragraphs:
        if (p.kind != "paragraph" or p.size > body - 1 or p.bbox[1] < 0.75 * pages[p.page - 1].height
                or all(l.mono for l in p.lines)):  # code set small at a column's foot is code
            continue
        col = p.lines[0].col
        if not any(q is not p and q.page == p.page and q.lines[0].col == col and q.bbox[1] > p.bbox[3]
                   for q in paragraphs):
            p.kind = "footnote"


def _join_continued(items: list[Paragraph | Region], hyphenated: set[str]) -> list[Paragraph | Region]:
    """A paragraph cut by a column or page break is one paragraph: when one ends without closing its
    sentence and the next text after the break (past figures, tables, captions and footnotes, which float)
    starts in lowercase, the two join, and the floats follow the whole paragraph. A sentence is
    never split by a caption or a page number."""
    out: list[Paragraph | Region] = []
    open_par: Paragraph | None = None  # the last paragraph, while only floats came after it
    for item in items:
        if isinstance(item, Region) or item.kind in ("figure_caption", "table_caption", "footnote"):
            out.append(item)
            continue
        if (open_par is not None and item.kind == "paragraph" and _break_between(open_par.lines[-1], item.lines[0])
                and not re.search(r"[.!?:]['’”)]*$", open_par.text) and re.match(r"[a-z(]", item.text)):
            open_par.lines += item.lines
            if all(l.mono for l in open_par.lines):  # a listing goes on with its next line
                open_par.text = f"{open_par.text}\n{item.text}"
            else:
                open_par.text = join_lines([open_par.text, item.text], hyphenated)
            continue
        open_par = item if item.kind == "paragraph" else None
        out.append(item)
    return out


def _break_between(a: Line, b: Line) -> bool:
    """``b`` starts another column or page than the one ``a`` ends."""
    return a.page != b.page or (a.col != b.col and b.top < a.top)


def _is_heading(p: Paragraph, body: float, fonts_known: bool = True) -> bool:
    text = p.text.strip()
    words = text.split()
    if not (1 <= len(words) <= 20 and len(p.lines) <= 3) or any(ch in MATH_CHARS or _private(ch) for ch in text):
        return False
    # letters a reader sees: "(cid:25)", a glyph without a text mapping, spells "cid" but shows none
    shown = _UNMAPPED_GLYPH.sub("", text).split()
    if not any(sum(ch.isalpha() for ch in w) >= 3 for w in shown) or text.endswith((".", ",", ";")):
        return False
    if len(words) <= 3 and _KNOWN_SECTION.match(text) and len(p.lines) == 1:
        return True  # "Abstract", "References" on a line of their own, whatever their font
    if not fonts_known:  # fonts without names or sizes (Type 3): numbered one-line titles only
        m = _NUMBERED.match(text)
        return bool(m) and len(p.lines) == 1 and len(words) <= 12 and m["title"][:1].isupper()
    bold = all(l.bold for l in p.lines)
    return p.size >= body + 0.9 or (bold and p.size >= body - 0.6)


def _heading_levels(headings: list[Paragraph]) -> None:
    by_size: dict[float, list[int]] = {}
    for h in headings:
        m = _NUMBERED.match(h.text)
        if m and m["num"][0].isdigit():
            by_size.setdefault(round(h.size), []).append(m["num"].rstrip(".").count(".") + 1)
    ranked = sorted({round(h.size) for h in headings}, reverse=True)
    for h in headings:
        m = _NUMBERED.match(h.text)
        if m and m["num"][0].isdigit():
            h.level = m["num"].rstrip(".").count(".") + 1
        elif _KNOWN_SECTION.match(h.text):
            h.level = 1
        elif round(h.size) in by_size:
            h.level = min(by_size[round(h.size)])
        else:
            h.level = ranked.index(round(h.size)) + 1


def _attach_captions(paragraphs: list[Paragraph], regions: list[Region]) -> None:
    """Each caption takes the nearest unused table or figure region of its kind on its page,
    above it or below it, overlapping it horizontally."""
    for p in paragraphs:
        if p.kind not in ("table_caption", "figure_caption"):
            continue
        kind = "table" if p.kind == "table_caption" else "figure"
        x0, top, x1, bottom = p.bbox
        best, best_d = None, 400.0
        for r in regions:
            if r.used or r.kind != kind or r.page != p.page:
                continue
            overlap = min(x1, r.x1) - max(x0, r.x0)
            if overlap < 0.3 * min(x1 - x0, r.x1 - r.x0):
                continue
            d = top - r.bottom if r.bottom <= top + 4 else r.top - bottom if r.top >= bottom - 4 else None
            if d is not None and kind == "figure" and r.top >= bottom - 4:
                d += 150  # a figure's caption is below it: a figure under the caption only when none is above
            if d is not None and d < best_d:
                best, best_d = r, d
        if best is not None:
            best.used = True
            if kind == "figure":  # the panels of one figure side by side: (a), (b), (c)
                for r in regions:
                    side_by_side = (r.page == p.page and min(r.bottom, best.bottom) - max(r.top, best.top)
                                    > 0.5 * min(r.bottom - r.top, best.bottom - best.top))
                    if (not r.used and r.kind == "figure" and side_by_side
                            and not _captioned_by_another(r, p, paragraphs)):
                        r.used = True
                        best.x0, best.top = min(best.x0, r.x0), min(best.top, r.top)
                        best.x1, best.bottom = max(best.x1, r.x1), max(best.bottom, r.bottom)
            p.region = best


def _captioned_by_another(region: Region, caption: Paragraph, paragraphs: list[Paragraph]) -> bool:
    """Another figure caption sits right under (or over) the region: it is that caption's figure."""
    for q in paragraphs:
        if q is caption or q.kind != "figure_caption" or q.page != region.page:
            continue
        qx0, qtop, qx1, qbottom = q.bbox
        overlap = min(qx1, region.x1) - max(qx0, region.x0)
        if overlap > 0.5 * (region.x1 - region.x0) and (0 <= qtop - region.bottom < 60 or 0 <= region.top - qbottom < 60):
            return True
    return False


def _split_references(paragraphs: list[Paragraph], hyphenated: set[str]) -> list[Paragraph]:
    """The references section as one entry each. Entries start at "[1]" / "1." / "[Knu84]" where the
    section numbers them; else at the hanging indent (an entry's first line at its column's left edge,
    the next lines indented), else paragraph by paragraph. The section's paragraphs are split together:
    a hanging indent also breaks paragraphs, and an entry runs on over a column or page break."""
    lines = _labels_joined([line for p in paragraphs for line in p.lines])
    if not lines:
        return []
    if sum(bool(_REF_START.match(l.text.strip())) for l in lines) >= 2:
        starts = [i == 0 or bool(_REF_START.match(l.text.strip())) for i, l in enumerate(lines)]
    else:
        lefts: dict[tuple[int, str], float] = {}
        for l in lines:
            lefts[(l.page, l.col)] = min(lefts.get((l.page, l.col), l.x0), l.x0)
        at_left = [l.x0 - lefts[(l.page, l.col)] < 0.5 * l.size for l in lines]
        if sum(not a for a in at_left) >= len(lines) // 4:  # enough indented lines: a hanging indent
            starts = [i == 0 or a for i, a in enumerate(at_left)]
        else:
            firsts = {id(p.lines[0]) for p in paragraphs}
            starts = [id(l) in firsts for l in lines]
    entries: list[list[Line]] = []
    for line, start in zip(lines, starts):
        if start or not entries:
            entries.append([line])
        else:
            entries[-1].append(line)
    return [Paragraph(e, kind="reference", text=join_lines([l.text for l in e], hyphenated)) for e in entries]


def _unheaded_references(paragraphs: list[Paragraph]) -> Paragraph | None:
    """The first entry of a bibliography printed without a heading (REVTeX sets only a rule): four
    lines starting "[n]" to "[n+3]" in a row, with no heading between, and back from them the
    earliest paragraph with a line labelled by a smaller number (an entry cut by a float is not in
    the row)."""
    def labels(p: Paragraph) -> list[int]:
        return [int(m[1]) for l in p.lines if (m := re.match(r"\[(\d{1,3})\]", l.text))]

    since = 0  # the paragraph after the last heading
    run: list[tuple[int, int]] = []  # (paragraph index, label)
    for i, p in enumerate(paragraphs):
        if p.kind == "heading":
            if _REFERENCES.match(p.text.strip()):
                return None  # a headed bibliography is found by its heading
            since, run = i + 1, []
            continue
        for n in labels(p):
            run = run + [(i, n)] if run and n == run[-1][1] + 1 else [(i, n)]
            if len(run) == 4:
                first = run[0][1]
                return next(q for q in paragraphs[since:run[0][0] + 1] if any(k <= first for k in labels(q)))
    return None


def _labels_joined(lines: list[Line]) -> list[Line]:
    """Entry labels set in a column of their own ("[Kle98]" left of its entry, read as another
    column) go back to the start of the line beside them."""
    labels = [l for l in lines if _REF_LABEL.fullmatch(l.text.strip())]
    taken: set[int] = set()
    for label in labels:
        beside = [l for l in lines if l is not label and l.page == label.page and abs(l.top - label.top) < 2
                  and l.x0 > label.x1 and id(l) not in taken and not _REF_LABEL.fullmatch(l.text.strip())]
        if beside:
            line = min(beside, key=lambda l: l.x0)
            line.text, line.x0 = f"{label.text.strip()} {line.text}", label.x0
            taken.add(id(label))
    return [l for l in lines if id(l) not in taken]


def markdown_table(cells: list[list[str]]) -> str:
    width = max(len(r) for r in cells)
    rows = [[c.replace("|", "\\|") for c in r] + [""] * (width - len(r)) for r in cells]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _box(b) -> list[float]:
    return [round(float(v), 1) for v in b]


def extract_paper(data: bytes, name: str, paper_id: str) -> dict:
    """The paper as a dict: ``paper_id``, ``title``, ``authors``, ``abstract``, ``n_pages``,
    ``pages_without_text``, ``running_lines_removed`` and ``blocks`` (reading order; each with
    ``block_id``, ``kind`` heading/paragraph/table/figure_caption/equation/reference, ``level``,
    ``section_path``, ``page``, ``bbox`` [x0, top, x1, bottom] in PDF points from the top-left,
    ``text``, ``table_cells``, ``label``, ``figure_bbox``). Raises BadPDF."""
    pdf = open_pdf(data, name)
    renderer = PageRenderer(data)
    try:
        try:
            pages = layout_pages(pdf, renderer)
            metadata_title = (pdf.metadata or {}).get("Title")
        except BadPDF:
            raise
        except OCRUnavailable as exc:  # a page needs OCR and this machine has none: say how to fix it
            raise BadPDF("ocr_unavailable", name, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a broken content stream fails this file alone
            raise BadPDF("unreadable_pdf", name, f"{type(exc).__name__}: {exc}") from None
    finally:
        renderer.close()
        pdf.close()
    without_text = [p.number for p in pages if not p.has_text]
    if len(without_text) == len(pages):
        raise BadPDF("no_text_layer", name, f"none of its {len(pages)} page(s) has a text layer, and OCR read "
                     "no text on them")
    removed = _remove_running_lines(pages)

    for page in pages:
        page.gutter = _gutter(page.lines, page.width)
    found = [p.gutter for p in pages if p.gutter is not None]
    if found:  # a page with little side-by-side text is tried at the gutter of the document's others
        usual = statistics.median(found)
        for page in pages:
            if page.gutter is None:
                page.gutter = _gutter(page.lines, page.width, at=usual)
    items: list[Paragraph | Region] = []
    for page in pages:
        _text_tables(page)
        items += _paragraphs(page, _reading_order(page))
    paragraphs = [i for i in items if isinstance(i, Paragraph)]
    regions = [i for i in items if isinstance(i, Region)]
    hyphenated = {w.lower().strip(".,;:()[]") for p in paragraphs for l in p.lines for w in l.text.split()
                  if re.fullmatch(r"[A-Za-z]+(-[A-Za-z]+)+[.,;:)]*", w)}
    body = _body_size(paragraphs)
    items = _classify(items, body, hyphenated)
    _mark_footnotes(items, body, pages)
    items = _join_continued(items, hyphenated)
    paragraphs = [i for i in items if isinstance(i, Paragraph)]

    # the title: the largest text in the top 40 % of page 1, clearly above the body size
    first = [p for p in paragraphs if p.page == 1 and p.bbox[1] < 0.4 * pages[0].height and p.kind != "figure_caption"]
    title_par = max(first, key=lambda p: p.size, default=None)
    if title_par is not None and title_par.size >= body + 2 and len(title_par.text.split()) <= 30:
        title_par.kind, title_par.level = "heading", 0
    else:
        title_par = None
    # Larger lines on page 1 before the first real heading (bold, numbered or a usual section name)
    # are the front matter (authors, affiliations), not sections.
    real_seen = False
    for p in paragraphs:
        if p.kind != "heading" or p is title_par:
            continue
        if all(l.bold for l in p.lines) or _NUMBERED.match(p.text) or _KNOWN_SECTION.match(p.text):
            real_seen = True
        elif not real_seen and p.page == 1:
            p.kind = "paragraph"
    headings = [p for p in paragraphs if p.kind == "heading" and p is not title_par]
    _heading_levels(headings)
    _attach_captions(paragraphs, regions)

    # sections, references, captions folded into their tables
    blocks: list[Paragraph | Region] = []
    stack: list[tuple[int, str]] = []
    in_refs: int | None = None
    references: list[Paragraph] = []  # the section's paragraphs: an entry's hanging indent splits them

    def close_references() -> None:
        for ref in _split_references(references, hyphenated):
            ref.section_path = references[0].section_path
            blocks.append(ref)
        references.clear()

    unheaded = _unheaded_references(paragraphs)
    for item in items:
        if item is unheaded and in_refs is None:
            in_refs = 1
        if isinstance(item, Region):
            if item.kind == "table":
                close_references()
                blocks.append(item)
                item.section_path = [t for _, t in stack]
            continue  # figure regions live on in their captions
        p = item
        if p is title_par:
            blocks.append(p)
            continue
        if p.kind == "heading":
            level = p.level or 1
            if in_refs is not None and level > in_refs:
                p.kind = "paragraph"  # bold text inside the references is no section
            else:
                close_references()
                stack = [(lv, t) for lv, t in stack if lv < level] + [(level, p.text)]
                in_refs = level if _REFERENCES.match(p.text.strip()) else None
                p.section_path = [t for _, t in stack]
                blocks.append(p)
                continue
        p.section_path = [t for _, t in stack]
        if in_refs is not None and p.kind not in ("footnote", "figure_caption", "table_caption"):  # floats stay out
            references.append(p)
            continue
        blocks.append(p)
    close_references()

    # a table caption becomes the caption of its table; one without a ruled table stays a block
    for p in [b for b in blocks if isinstance(b, Paragraph) and b.kind == "table_caption"]:
        if p.region is not None:
            p.region.caption, p.region.label, p.region.caption_bbox = p.text, p.label, p.bbox
            blocks.remove(p)
        else:
            p.kind = "table"  # a caption whose table was not found: a table block without cells

    out = []
    for i, b in enumerate(blocks, start=1):
        row = {"block_id": f"b{i:04d}", "page": b.page, "section_path": list(b.section_path), "level": None,
               "label": None, "table_cells": None, "figure_bbox": None}
        if isinstance(b, Region):
            caption = b.caption
            bbox = b.bbox if b.caption_bbox is None else _union(b.bbox, b.caption_bbox)
            row |= {"kind": "table", "bbox": _box(bbox), "label": b.label,
                    "text": ((caption + "\n\n") if caption else "") + markdown_table(b.cells),
                    "table_cells": json.dumps(b.cells, ensure_ascii=False), "caption": caption}
            row["text_source"] = _text_source(b.lines, pages[b.page - 1])
        else:
            row["text_source"] = _text_source(b.lines, pages[b.page - 1])
            row |= {"kind": b.kind, "bbox": _box(b.bbox), "text": b.text, "label": b.label, "level": b.level,
                    "caption": b.text if b.kind in ("figure_caption", "table") and b.label else None}
            if b.kind == "figure_caption" and b.region is not None:
                row["figure_bbox"] = _box(b.region.bbox)
        out.append(row)

    title = title_par.text if title_par is not None else _metadata_title(metadata_title)
    if title is None:  # no larger type and no usable metadata: the first short line of page 1
        first_block = next((b for b in out if b["page"] == 1 and b["kind"] == "paragraph"), None)
        if first_block is not None and len(first_block["text"].split()) <= 15:
            title = first_block["text"]
    abstract_blocks = [b for b in out if b["section_path"][:1] == ["Abstract"] and b["kind"] == "paragraph"]
    if not abstract_blocks:  # "Abstract. We ..." run into its paragraph (or "Abstract" on a line of its own)
        for b in out:
            if b["kind"] in ("paragraph", "heading") and b["page"] == 1 and _ABSTRACT.match(b["text"]):
                if b["kind"] == "heading":
                    continue
                b["text_abstract"] = _ABSTRACT.sub("", b["text"], count=1)
                b["section_path"] = ["Abstract"]
                abstract_blocks = [b]
                break
    abstract = " ".join(b.pop("text_abstract", b["text"]) for b in abstract_blocks) or None
    for b in out:
        b.pop("text_abstract", None)
    first_heading = next((i for i, b in enumerate(out) if b["kind"] == "heading" and b["level"] != 0), len(out))
    front = [b for b in out[:first_heading] if b["kind"] == "paragraph" and b["page"] == 1
             and b not in abstract_blocks]
    authors = " ".join(b["text"] for b in front)[:500] or None
    for b in front:
        b["section_path"] = ["Front matter"]
    return {"paper_id": paper_id, "title": title, "authors": authors, "abstract": abstract, "n_pages": len(pages),
            "pages_without_text": without_text, "running_lines_removed": removed,
            "ocr_pages": [p.number for p in pages if p.ocr_page],
            "glyphs_read": sum(p.glyphs_read for p in pages), "glyphs_unread": sum(p.glyphs_unread for p in pages),
            "two_column_pages": [p.number for p in pages if p.gutter is not None],
            "page_sizes": [[p.width, p.height] for p in pages], "blocks": out}


def _text_source(lines: list[Line], page: PageLayout) -> str:
    """How a block's text was obtained: ``ocr`` (a page without a text layer), ``text_layer+ocr``
    (glyphs without a mapping read from their pixels), or ``text_layer``."""
    if page.ocr_page:
        return "ocr"
    return "text_layer+ocr" if any(l.ocr for l in lines) else "text_layer"


def _union(a, b):
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _metadata_title(title) -> str | None:
    """The PDF's Title entry when it looks like one (not a file name such as "paper.dvi")."""
    if not isinstance(title, str):
        return None
    title = title.strip()
    return title if len(title.split()) >= 2 and not re.search(r"\.(dvi|docx?|tex|pdf|ps)$", title, re.I) else None


# ---------------------------------------------------------------------------------------------
# figures and markdown
# ---------------------------------------------------------------------------------------------
class PageRenderer:
    """A paper's pages, or boxes of them, as images (for OCR and figure crops): one pypdfium2
    document, opened on the first page that needs pixels and closed with the paper (pdfplumber's
    ``page.to_image`` loads the whole file into pdfium again for every page it renders). A run of
    glyphs renders only its box: a few kilobytes where a whole page at 300 dpi is 8 MB."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._doc = None

    def render(self, number: int, box: tuple[float, float, float, float] | None = None,
               dpi: int = ocr.OCR_DPI, grayscale: bool = True):
        """Page ``number`` (1-based), or only ``box`` of it ([x0, top, x1, bottom] in PDF points from
        the top left, clipped to the page), at ``dpi``, as a PIL image."""
        import pypdfium2 as pdfium

        if self._doc is None:
            self._doc = pdfium.PdfDocument(self._data)
        page = self._doc[number - 1]
        crop = (0, 0, 0, 0)
        if box is not None:  # pdfium crops by the margins cut from each edge, from the bottom left
            width, height = page.get_size()
            crop = (max(0, box[0]), max(0, height - box[3]), max(0, width - box[2]), max(0, box[1]))
        bitmap = page.render(scale=dpi / 72, grayscale=grayscale, crop=crop)
        try:
            image = bitmap.to_pil()
            return image.convert("L") if grayscale else image.copy()  # a copy: the bitmap's memory goes back now
        finally:
            bitmap.close()
            page.close()

    def close(self) -> None:
        if self._doc is not None:
            self._doc.close()
            self._doc = None


def render_figures(data: bytes, figures: list[dict], dpi: int = 110) -> dict[str, bytes]:
    """PNG crops of figure regions ({block_id: png}), 4 pt of margin around each. ``figures``: blocks
    with ``page`` and ``figure_bbox``."""
    pngs: dict[str, bytes] = {}
    if not figures:
        return pngs
    renderer = PageRenderer(data)
    try:
        for f in figures:
            image = renderer.render(f["page"], _padded(f["figure_bbox"], 4), dpi=dpi, grayscale=False)
            buf = io.BytesIO()
            image.save(buf, format="PNG", optimize=True)
            pngs[f["block_id"]] = buf.getvalue()
    finally:
        renderer.close()
    return pngs


def paper_markdown(paper: dict, figure_paths: dict[str, str] | None = None) -> str:
    """One markdown rendering of the paper: headings, paragraphs, tables, figures with their image,
    equations in display math, the references as a list; pages noted as HTML comments."""
    figure_paths = figure_paths or {}
    out: list[str] = []
    page = None
    for b in paper["blocks"]:
        if b["page"] != page:
            page = b["page"]
            out.append(f"<!-- page {page} -->")
        kind = b["kind"]
        if kind == "heading":
            out.append("#" * min(6, (b["level"] or 0) + 1) + " " + b["text"])
        elif kind == "table":
            out.append(b["text"])
        elif kind == "figure_caption":
            image = figure_paths.get(b["block_id"])
            out.append((f"![{b['label'] or 'Figure'}]({image})\n\n" if image else "") + f"*{b['text']}*")
        elif kind == "equation":
            out.append(f"$$\n{b['text']}\n$$")
        elif kind == "reference":
            out.append(f"- {b['text']}")
        else:
            out.append(b["text"])
    if paper.get("title") and not any(b["kind"] == "heading" and b["level"] == 0 for b in paper["blocks"]):
        out.insert(0, f"# {paper['title']}")
    return "\n\n".join(out) + "\n"
