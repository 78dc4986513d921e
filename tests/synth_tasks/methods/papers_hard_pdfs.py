"""The hard cases of the paper extractor, as PDFs written for the tests (fpdf2, every line placed by
hand like papers_pdfs.py): a scanned page (a picture of print, no text layer), a full-width booktabs
table between two columns of text, a table ruled with raster strips right below a raster figure, a
vector diagram that is not a table, headings and a formula in a font without a Unicode map (pdfminer
reads "(cid:N)"), and ligature glyphs that only the embedded font's glyph names can read back.
Every function returns the same bytes on every call (fixed creation date, no randomness)."""

from __future__ import annotations

import contextlib
import io
import re
from datetime import datetime, timezone
from unittest import mock

from tests.synth_tasks.methods.papers_pdfs import (LEADING, LEFT, LEFT_COL, PAGE_H, PAGE_W, RIGHT, RIGHT_COL,
                                                   _centered, _lines, _writer)

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
SERIF_TTF = FONT_DIR + "DejaVuSerif.ttf"
SANS_BOLD_TTF = FONT_DIR + "DejaVuSans-Bold.ttf"
_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)

# 1. A scanned page: 300 dpi greyscale picture of 11 pt DejaVu Serif, one-inch margins, lines broken
# here by hand (a reader, or OCR, sees exactly these lines).
SCAN_DPI = 300
SCANNED_HEADING = "3 Field Survey"
SCANNED_PARAGRAPH_LINES = [
    [
        "The survey team visited forty farms in the northern valley during the dry",
        "season. At each farm they counted the wells, measured the depth of the water",
        "and asked the owner how much land had been planted in the previous year.",
    ],
    [
        "Most wells had fallen by more than two metres since the last visit. The farms",
        "that had planted less land kept more water, and three of them had dug new",
        "wells closer to the river, where the ground stays wet for most of the year.",
    ],
]
SCANNED_PARAGRAPHS = [" ".join(p) for p in SCANNED_PARAGRAPH_LINES]
# Page 1 of scanned_and_text_pdf(): an ordinary text page, which must not be OCRed.
TEXT_PAGE_HEADING = "2 Study Area"
TEXT_PAGE_LINES = [
    "The valley lies between two ridges and is drained by a single river that floods in spring.",
    "Farmers there grow wheat and barley and water their fields from wells dug by hand.",
]
TEXT_PAGE_PARAGRAPH = " ".join(TEXT_PAGE_LINES)

# 2. A full-width booktabs table between two columns of text. The paragraphs name no cell (a cell
# found in a paragraph has leaked), and none is split by the table.
FULL_WIDTH_ABOVE_LINES = [  # [left column, right column]
    [
        "We gathered text from six kinds of sites and",
        "retained each page that passed the quality",
        "filter. The filter looks at the length, the",
        "language and the ratio of repeated lines.",
    ],
    [
        "Each kind of site was sampled in proportion",
        "to the text it retained, so that no one kind",
        "dominates the mixture that the model sees",
        "during the first epoch of pretraining.",
    ],
]
FULL_WIDTH_CAPTION = "Table 1: Sources of the pretraining corpus, with the share of documents kept by the filter."
FULL_WIDTH_TABLE = [
    ["Source", "Documents (k)", "Tokens (M)", "Kept", "Share"],
    ["Crawl", "800", "4120", "38%", "11%"],
    ["Books", "120", "2950", "91%", "27%"],
    ["Papers", "340", "1870", "84%", "19%"],
    ["Code", "560", "1430", "62%", "14%"],
    ["Forums", "910", "1260", "29%", "12%"],
    ["News", "450", "1770", "73%", "17%"],
]
FULL_WIDTH_BELOW_LINES = [
    [
        "The filter removes most of what the spider",
        "brings back, which is why the open web weighs",
        "little in the mix although it is the largest.",
    ],
    [
        "Long pages are retained more often than",
        "short ones, since a long page rarely",
        "consists of menus and boilerplate alone.",
    ],
]
FULL_WIDTH_ABOVE = [" ".join(p) for p in FULL_WIDTH_ABOVE_LINES]
FULL_WIDTH_BELOW = [" ".join(p) for p in FULL_WIDTH_BELOW_LINES]
FULL_WIDTH_PARAGRAPHS = FULL_WIDTH_ABOVE + FULL_WIDTH_BELOW  # reading order: above L, R, below L, R

# 3. A raster figure, and 12 pt under its caption a table whose rules are raster strips.
IMAGE_RULED_INTRO = "We trained four sizes of the model and measured their accuracy and their latency."
FIGURE_CAPTION = "Figure 1: Accuracy of each model size on the validation set."
IMAGE_RULED_CAPTION = "Table 1: Model sizes, accuracy and latency per query."
IMAGE_RULED_TABLE = [
    ["Model", "Params", "Accuracy", "Latency"],
    ["Small", "60M", "71.2", "4 ms"],
    ["Base", "220M", "78.9", "9 ms"],
    ["Large", "770M", "83.4", "21 ms"],
    ["Huge", "3B", "86.0", "64 ms"],
]
IMAGE_RULED_AFTER = "The largest model is the most accurate, but it answers sixteen times slower than the smallest."

# 4. A vector diagram (boxes, arrows, labels on a loose three-row grid): a figure, not a table. Its
# labels are in no sentence and not in the caption.
DIAGRAM_INTRO_LINES = [
    "Figure 2 shows how the web pages move through the pipeline. Each stage reads what the one",
    "before it wrote, and a page that fails any stage is dropped and never seen again.",
]
DIAGRAM_INTRO = " ".join(DIAGRAM_INTRO_LINES)
# (label, x, y, width) of each box, on three loose rows; boxes are 26 pt high.
DIAGRAM_BOXES = [
    ("Fetcher", 80, 170, 70), ("Cleaner", 235, 160, 74), ("Deduper", 410, 172, 78),
    ("Language ID", 120, 250, 90), ("Scorer", 300, 258, 66), ("Sampler", 455, 246, 72),
    ("Shards", 170, 336, 64), ("Trainer", 380, 330, 70),
]
# (from box, to box, label on the arrow or "")
DIAGRAM_ARROWS = [
    ("Fetcher", "Cleaner", "html"), ("Cleaner", "Deduper", "text"), ("Deduper", "Language ID", ""),
    ("Language ID", "Scorer", "en"), ("Scorer", "Sampler", "score"), ("Sampler", "Shards", ""),
    ("Shards", "Trainer", "batches"),
]
DIAGRAM_LABELS = [b[0] for b in DIAGRAM_BOXES] + [a[2] for a in DIAGRAM_ARROWS if a[2]]
DIAGRAM_CAPTION = "Figure 2: The data pipeline, from the web to the model."
DIAGRAM_AFTER_LINES = [
    "Every stage runs on its own machine, so a slow stage holds up only the stages after it, and",
    "the whole pipeline can be restarted from any stage.",
]
DIAGRAM_AFTER = " ".join(DIAGRAM_AFTER_LINES)

# 5. Headings (DejaVu Sans Bold) and a display formula (DejaVu Serif) in fonts with no /ToUnicode and
# no cmap: pdfminer reads them as "(cid:N)", only the picture shows them. The body is in Times.
UNMAPPED_HEADINGS = ["1 Introduction", "2 Method"]
UNMAPPED_FORMULA = "L(θ) = −Σ log p(y | x; θ)"
UNMAPPED_FORMULA_NUMBER = "(1)"  # set in Times, so it keeps its text
UNMAPPED_BODY_LINES = [
    [
        "Language models are trained to predict the next word of a text from the words before it.",
        "We study how the size of the training set changes what such a model learns.",
    ],
    [
        "The model is trained by minimising the loss in Equation 1 over all pairs of a context and",
        "the word that follows it.",
    ],
    ["We train each model for the same number of steps and report the loss on held-out text."],
]
UNMAPPED_BODY = [" ".join(p) for p in UNMAPPED_BODY_LINES]

# 6. Body text in DejaVu Serif with the ff, fi, fl ligature glyphs. The ligature codes have no
# /ToUnicode entry (pdfminer reads "(cid:N)" there), but the embedded font keeps its 'post' glyph
# names, which read them back. The constants hold the plain letters a reader sees.
LIGATURES = {"ff": "\ufb00", "fi": "\ufb01", "fl": "\ufb02"}
LIGATURE_GLYPH_NAMES = {"\ufb00": "uniFB00", "\ufb01": "fi", "\ufb02": "fl"}  # DejaVu Serif's names
LIGATURE_HEADING = "1 Workflow"
LIGATURE_PARAGRAPH_LINES = [
    [
        "The first file flows off the office scanner and is filed in the official folder.",
        "Staff find the fields they need and flag the files that differ from the final form.",
    ],
    ["Five officers fill in the forms; the flow stays fluent even when the staff is small."],
]
LIGATURE_PARAGRAPHS = [" ".join(p) for p in LIGATURE_PARAGRAPH_LINES]


def _paper(bare: bool = False):
    """papers_pdfs' writer (running header, page numbers), or with ``bare`` one that draws nothing
    but what we draw (a scan must have no text at all); the creation date is fixed so bytes repeat."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="letter") if bare else _writer()
    pdf.set_auto_page_break(False)
    pdf.set_creator("tests")
    pdf.set_creation_date(_DATE)
    return pdf


def _png_bytes(img) -> bytes:
    img.save(buf := io.BytesIO(), format="PNG", dpi=(SCAN_DPI, SCAN_DPI))
    return buf.getvalue()


def _scan_png() -> bytes:
    """The page as a 300 dpi greyscale picture: heading and two paragraphs, 11 pt serif, 1" margins."""
    from PIL import Image, ImageDraw, ImageFont

    px = SCAN_DPI / 72  # pixels per point
    img = Image.new("L", (round(PAGE_W * px), round(PAGE_H * px)), 255)
    draw = ImageDraw.Draw(img)
    body = ImageFont.truetype(SERIF_TTF, round(11 * px))
    head = ImageFont.truetype(FONT_DIR + "DejaVuSerif-Bold.ttf", round(13 * px))
    x, y, width = round(72 * px), round(72 * px), round((PAGE_W - 144) * px)
    draw.text((x, y), SCANNED_HEADING, font=head, fill=0)
    y += round(26 * px)
    for para in SCANNED_PARAGRAPH_LINES:
        for line in para:
            assert draw.textlength(line, font=body) <= width, line  # stays inside the margins
            draw.text((x, y), line, font=body, fill=0)
            y += round(14 * px)
        y += round(8 * px)
    return _png_bytes(img)


def scanned_page_pdf(text_page_first: bool = False) -> bytes:
    """One page whose only content is a picture of printed text: there is no text layer to read.
    With ``text_page_first`` an ordinary text page (Times) comes before it."""
    pdf = _paper(bare=True)
    if text_page_first:
        pdf.add_page()
        _lines(pdf, LEFT, 90, [TEXT_PAGE_HEADING], size=12, style="B")
        _lines(pdf, LEFT, 106, TEXT_PAGE_LINES)
    pdf.add_page()
    pdf.image(io.BytesIO(_scan_png()), x=0, y=0, w=PAGE_W, h=PAGE_H)
    return bytes(pdf.output())


def scanned_and_text_pdf() -> bytes:
    """Page 1 has a text layer (Times), page 2 is the scan: only page 2 needs OCR."""
    return scanned_page_pdf(text_page_first=True)


def _booktabs(pdf, x: float, y: float, rows: list[list[str]], widths: list[float], row_h: float = 15) -> float:
    """Three rules only (top, under the header, bottom), no vertical rules; the first column is
    left-aligned and the others right-aligned, as LaTeX booktabs tables are set. Returns the bottom."""
    right = x + sum(widths)
    pdf.set_line_width(0.8)
    pdf.line(x, y, right, y)
    for r, row in enumerate(rows):
        pdf.set_font("Times", "B" if r == 0 else "", 10)
        base = y + 12 + r * row_h + (3 if r else 0)
        edge = x
        for c, (cell, w) in enumerate(zip(row, widths)):
            pdf.text(edge + 6 if c == 0 else edge + w - 6 - pdf.get_string_width(cell), base, cell)
            edge += w
        if r == 0:
            pdf.set_line_width(0.5)
            pdf.line(x, y + row_h + 1, right, y + row_h + 1)
    bottom = y + len(rows) * row_h + 6
    pdf.set_line_width(0.8)
    pdf.line(x, bottom, right, bottom)
    return bottom


def full_width_table_paper() -> bytes:
    """Two columns of text, a full-width booktabs table across both, and both columns go on below."""
    pdf = _paper()
    pdf.add_page()
    _lines(pdf, LEFT_COL[0], 80, ["2 Data"], size=12, style="B")
    _lines(pdf, LEFT_COL[0], 96, FULL_WIDTH_ABOVE_LINES[0])
    _lines(pdf, RIGHT_COL[0], 96, FULL_WIDTH_ABOVE_LINES[1])
    _centered(pdf, FULL_WIDTH_CAPTION, 164, 9)
    bottom = _booktabs(pdf, LEFT, 174, FULL_WIDTH_TABLE, [144, 90, 90, 90, 90])
    _lines(pdf, LEFT_COL[0], bottom + 26, FULL_WIDTH_BELOW_LINES[0])
    _lines(pdf, RIGHT_COL[0], bottom + 26, FULL_WIDTH_BELOW_LINES[1])
    return bytes(pdf.output())


def _chart_png() -> bytes:
    """A 300x150 grey bar chart (axes and four bars), the kind of figure that sits above a table."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (300, 150), 235)
    draw = ImageDraw.Draw(img)
    draw.line([(30, 10), (30, 130), (290, 130)], fill=40, width=2)
    for i, h in enumerate((70, 88, 100, 108)):
        draw.rectangle([55 + i * 60, 130 - h, 95 + i * 60, 129], fill=110 + i * 20)
    return _png_bytes(img)


def _rule_png(horizontal: bool) -> bytes:
    """A black strip (8x1 or 1x8 px), stretched by the PDF to a 1 pt rule of any length."""
    from PIL import Image

    return _png_bytes(Image.new("L", (8, 1) if horizontal else (1, 8), 0))


def image_ruled_table_pdf() -> bytes:
    """A raster figure and its caption, then 12 pt lower a table whose grid is drawn with raster
    strips, not vector lines: an extractor that finds rules from lines sees no table here."""
    pdf = _paper()
    pdf.add_page()
    y = _lines(pdf, LEFT, 80, ["4 Results"], size=12, style="B") + 4
    _lines(pdf, LEFT, y, [IMAGE_RULED_INTRO])
    pdf.image(io.BytesIO(_chart_png()), x=PAGE_W / 2 - 150, y=112, w=300, h=150)
    _centered(pdf, FIGURE_CAPTION, 278, 9)
    _centered(pdf, IMAGE_RULED_CAPTION, 299, 9)  # 12 pt below the figure caption's descenders
    x0, top, col_w, row_h = PAGE_W / 2 - 200, 306.0, 100.0, 16.0
    n_rows, n_cols = len(IMAGE_RULED_TABLE), len(IMAGE_RULED_TABLE[0])
    h_rule, v_rule = _rule_png(True), _rule_png(False)
    for r in range(n_rows + 1):
        pdf.image(io.BytesIO(h_rule), x=x0 - 0.5, y=top + r * row_h - 0.5, w=n_cols * col_w + 1, h=1)
    for c in range(n_cols + 1):
        pdf.image(io.BytesIO(v_rule), x=x0 + c * col_w - 0.5, y=top, w=1, h=n_rows * row_h)
    for r, row in enumerate(IMAGE_RULED_TABLE):
        pdf.set_font("Times", "B" if r == 0 else "", 10)
        for c, cell in enumerate(row):
            pdf.text(x0 + c * col_w + 6, top + r * row_h + 11.5, cell)
    _lines(pdf, LEFT, top + n_rows * row_h + 26, [IMAGE_RULED_AFTER])
    return bytes(pdf.output())


def _arrow(pdf, x0: float, y0: float, x1: float, y1: float, head: float = 6) -> None:
    """A line from (x0, y0) to (x1, y1) ending in a filled triangular head."""
    dx, dy = x1 - x0, y1 - y0
    n = (dx * dx + dy * dy) ** 0.5
    ux, uy = dx / n, dy / n
    bx, by = x1 - ux * head, y1 - uy * head
    pdf.line(x0, y0, bx, by)
    pdf.polygon([(x1, y1), (bx - uy * head / 2, by + ux * head / 2), (bx + uy * head / 2, by - ux * head / 2)],
                style="F")


def diagram_pdf() -> bytes:
    """Body text, a vector diagram of labelled boxes joined by labelled arrows on three loose rows,
    and its caption. The labels line up in rows and columns, but there are no cells: not a table."""
    pdf = _paper()
    pdf.add_page()
    y = _lines(pdf, LEFT, 80, ["3 Pipeline"], size=12, style="B") + 4
    _lines(pdf, LEFT, y, DIAGRAM_INTRO_LINES)
    box_h = 26.0
    boxes = {label: (x, y, w) for label, x, y, w in DIAGRAM_BOXES}
    pdf.set_line_width(1)
    pdf.set_font("Helvetica", "", 9)
    for label, (x, y, w) in boxes.items():
        pdf.rect(x, y, w, box_h)
        pdf.text(x + w / 2 - pdf.get_string_width(label) / 2, y + box_h / 2 + 3, label)

    def edge(label: str, toward: tuple[float, float]) -> tuple[float, float]:
        """Where the line from the box centre toward a point leaves the box."""
        x, y, w = boxes[label]
        cx, cy = x + w / 2, y + box_h / 2
        dx, dy = toward[0] - cx, toward[1] - cy
        t = min(w / 2 / abs(dx) if dx else 1e9, box_h / 2 / abs(dy) if dy else 1e9)
        return cx + dx * t, cy + dy * t

    pdf.set_line_width(0.8)
    for src, dst, label in DIAGRAM_ARROWS:
        (sx, sy, sw), (tx, ty, tw) = boxes[src], boxes[dst]
        a = edge(src, (tx + tw / 2, ty + box_h / 2))
        b = edge(dst, (sx + sw / 2, sy + box_h / 2))
        _arrow(pdf, *a, *b)
        if label:
            pdf.set_font("Helvetica", "I", 8)
            pdf.text((a[0] + b[0]) / 2 - pdf.get_string_width(label) / 2, (a[1] + b[1]) / 2 - 4, label)
    _centered(pdf, DIAGRAM_CAPTION, 390, 9)
    _lines(pdf, LEFT, 418, DIAGRAM_AFTER_LINES)
    return bytes(pdf.output())


def _unmap(data: bytes, families: tuple[str, ...], drop: str = "") -> bytes:
    """Take the Unicode away from the embedded fonts whose name contains one of ``families``.

    By default a font loses its /ToUnicode and its embedded 'cmap' table: pdfminer falls back to
    that cmap when /ToUnicode is missing (reading fpdf2's codes as glyph ids, which gives wrong
    letters), so both must go for it to report "(cid:N)". With ``drop``, only the /ToUnicode
    entries of those characters go and the rest of the font keeps its text. (One-page PDFs: fpdf2
    gives every page the same font resources, so page 1 holds them all.)"""
    import pypdf
    from fontTools.ttLib import TTFont

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    for ref in writer.pages[0]["/Resources"]["/Font"].values():
        font = ref.get_object()
        if not any(family in str(font["/BaseFont"]) for family in families):
            continue
        if drop:
            cmap = font["/ToUnicode"].get_object()
            gone = "|".join(f"{ord(ch):04X}" for ch in drop)
            text = re.sub(rf"<[0-9A-F]{{4}}> <(?:{gone})>\n", "", cmap.get_data().decode("latin-1"))
            text = re.sub(r"\d+ beginbfchar\n(.*?)endbfchar",  # the block counts must match again
                          lambda m: f"{m[1].count(chr(10))} beginbfchar\n{m[1]}endbfchar", text, flags=re.S)
            cmap.set_data(text.encode("latin-1"))
            continue
        del font["/ToUnicode"]
        stream = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]["/FontFile2"].get_object()
        tt = TTFont(io.BytesIO(stream.get_data()), recalcTimestamp=False)  # same bytes every call
        del tt["cmap"]
        tt.save(out := io.BytesIO())
        stream.set_data(out.getvalue())
        stream[pypdf.generic.NameObject("/Length1")] = pypdf.generic.NumberObject(len(out.getvalue()))
    writer.write(out := io.BytesIO())
    return out.getvalue()


def unmapped_glyphs_pdf() -> bytes:
    """Headings (DejaVu Sans Bold) and a display formula (DejaVu Serif) whose fonts have no Unicode
    map at all, and no glyph names either (fpdf2's subset keeps none): only the rendered page, or
    OCR of it, tells what they say. The body paragraphs are in Times and read normally."""
    pdf = _paper()
    pdf.add_font("DejaVuSansBold", "", SANS_BOLD_TTF)
    pdf.add_font("DejaVuSerif", "", SERIF_TTF)
    pdf.add_page()
    y = 84.0
    for i, (heading, para) in enumerate(zip(UNMAPPED_HEADINGS + [None], UNMAPPED_BODY_LINES)):
        if heading:
            pdf.set_font("DejaVuSansBold", "", 12)
            pdf.text(LEFT, y, heading)
            y += 16
        y = _lines(pdf, LEFT, y, para) + 6
        if i == 1:  # the display formula follows the first paragraph of the method
            pdf.set_font("DejaVuSerif", "", 11)
            pdf.text(PAGE_W / 2 - pdf.get_string_width(UNMAPPED_FORMULA) / 2, y + 10, UNMAPPED_FORMULA)
            pdf.set_font("Times", "", 10)
            pdf.text(RIGHT - pdf.get_string_width(UNMAPPED_FORMULA_NUMBER), y + 10, UNMAPPED_FORMULA_NUMBER)
        y += 32 if i == 1 else 10
    return _unmap(bytes(pdf.output()), ("DejaVuSansBold", "DejaVuSerif"))


@contextlib.contextmanager
def _subsets_keep_glyph_names():
    """fpdf2 subsets embedded fonts with fontTools' default options, which rewrite the 'post' table
    as format 3 (no glyph names); and it has no switch to embed the whole font. Many real producers
    keep the names (format 2), which is what lets an extractor read an unmapped "fi" back, so for the
    duration of one output() we turn fontTools' own --glyph-names option on."""
    from fontTools import subset

    init = subset.Options.__init__

    def keep_names(self, **kwargs):
        init(self, **kwargs)
        self.glyph_names = True

    with mock.patch.object(subset.Options, "__init__", keep_names):
        yield


def _ligate(text: str) -> str:
    """Write ff, fi, fl as the ligature characters (ff first: "office" becomes o-ff-i-c-e)."""
    for letters, glyph in LIGATURES.items():
        text = text.replace(letters, glyph)
    return text


def ligature_pdf(whole_font: bool = False) -> bytes:
    """Body text in DejaVu Serif with ligature glyphs whose codes have no /ToUnicode entry, so
    pdfminer reads "(cid:N)" where a reader sees ff/fi/fl; the embedded subset keeps its 'post' glyph
    names ("uniFB00", "fi", "fl"). ``whole_font=True`` removes the font's /ToUnicode and its cmap
    altogether: every character of the body is then "(cid:N)" and only the glyph names read it."""
    pdf = _paper()
    pdf.add_font("DejaVuSerif", "", SERIF_TTF)
    pdf.add_page()
    y = _lines(pdf, LEFT, 84, [LIGATURE_HEADING], size=12, style="B") + 4
    pdf.set_font("DejaVuSerif", "", 10)
    for para in LIGATURE_PARAGRAPH_LINES:
        for line in para:
            pdf.text(LEFT, y, _ligate(line))
            y += LEADING + 1
        y += 6
    with _subsets_keep_glyph_names():
        data = bytes(pdf.output())
    return _unmap(data, ("DejaVuSerif",), "" if whole_font else "".join(LIGATURES.values()))


# 8. Structure: a paragraph that runs from the foot of the left column to the top of the right one
# (with a hyphen split over the break), an exponent and a footnote mark set as superscripts, a number
# hyphenated at a line end ("1000-|byte"), the footnote itself under a rule, and references set with
# a hanging indent and no numbers.
STRUCTURE_RUNNING_LEFT = [
    "Each server keeps its chunks in memory and",
    "answers reads from the nearest replica. A",
    "record is written as a 1000-",
    "byte block, and a file may grow to 2",
    "blocks before it is split, which keeps the",
    "master small and the clients fast. The sys-",
]
STRUCTURE_RUNNING_RIGHT = [
    "tem was first deployed in the storage",
    "cluster, where it served most of the reads.",
]
STRUCTURE_PARAGRAPH = ("Each server keeps its chunks in memory and answers reads from the nearest replica. A record is "
                       "written as a 1000-byte block, and a file may grow to 2^34 blocks before it is split, which "
                       "keeps the master small and the clients fast. The system was first deployed in the storage "
                       "cluster, where it served most of the reads.")
STRUCTURE_MARKED = ["The cluster runs a lock service and a file", "system, which share one set of machines."]
STRUCTURE_MARKED_TEXT = "The cluster runs a lock service and a file system, which share one set of machines."
STRUCTURE_FOOTNOTE = "1 The lock service is described in a companion paper."
STRUCTURE_REFERENCES = [  # entries, each as its printed lines
    ["Burrows, M. The Chubby lock service for loosely-", "coupled distributed systems. In OSDI (2006),", "pp. 335-350."],
    ["Dean, J., and Ghemawat, S. MapReduce: simplified", "data processing on large clusters. In OSDI (2004)."],
    ["Lamport, L. The part-time parliament. ACM Trans-", "actions on Computer Systems 16, 2 (1998), 133-169."],
    ["Ongaro, D., and Ousterhout, J. In search of an", "understandable consensus algorithm. In USENIX ATC", "(2014), pp. 305-319."],
]


def structure_pdf() -> bytes:
    pdf = _writer()
    pdf.add_page()
    _centered(pdf, "Structure of a Two-Column Research Paper", 80, 16, "B")
    pdf.set_font("Times", "B", 12)
    pdf.text(LEFT_COL[0], 120, "1 Design")
    y = 140.0
    for i, line in enumerate(STRUCTURE_RUNNING_LEFT):
        pdf.set_font("Times", "", 10)
        pdf.text(LEFT_COL[0], y, line)
        if i == 3:  # the exponent: "2" then a raised, smaller "34"
            pdf.set_font("Times", "", 7)
            pdf.text(LEFT_COL[0] + pdf.get_string_width(line) * 10 / 7 + 0.3, y - 4, "34")
        y += LEADING
    # the footnote at the foot of the left column, under a short rule
    pdf.set_line_width(0.4)
    pdf.line(LEFT_COL[0], 700, LEFT_COL[0] + 80, 700)
    pdf.set_font("Times", "", 7)
    pdf.text(LEFT_COL[0], 712, "1")
    pdf.set_font("Times", "", 8)
    pdf.text(LEFT_COL[0] + 4, 714, STRUCTURE_FOOTNOTE[2:])
    y = 140.0
    pdf.set_font("Times", "", 10)
    for line in STRUCTURE_RUNNING_RIGHT:
        pdf.text(RIGHT_COL[0], y, line)
        y += LEADING
    y += 6
    for i, line in enumerate(STRUCTURE_MARKED):
        pdf.set_font("Times", "", 10)
        pdf.text(RIGHT_COL[0], y, line)
        if i == 0:  # "file" then a raised footnote mark; the text goes on after it on the next line
            pdf.set_font("Times", "", 7)
            pdf.text(RIGHT_COL[0] + pdf.get_string_width(line) * 10 / 7 + 0.3, y - 4, "1")
        y += LEADING
    y += 14
    pdf.set_font("Times", "B", 12)
    pdf.text(RIGHT_COL[0], y, "References")
    y += 18
    pdf.set_font("Times", "", 9)
    for entry in STRUCTURE_REFERENCES:
        for k, line in enumerate(entry):
            pdf.text(RIGHT_COL[0] + (0 if k == 0 else 10), y, line)  # the hanging indent
            y += 11
    return bytes(pdf.output())


# 8. Layout rules of two-column pages, each drawn the way LaTeX sets it: two numbered headings
# stacked with no text between; a heading and a list item in a narrow column whose justified spaces
# are stretched wider than a gutter (equal gaps); a code listing with blank lines that runs from
# the foot of the left column to the top of the right one.
RULES_STACKED = ["3. RELATED WORK", "3.1 Peer to Peer Systems"]
RULES_STACKED_BODY = ["Early systems kept a full copy of every", "file on each of the peers in the group."]
RULES_JUSTIFIED = ["6.4", "Client-driven", "or", "Server-driven"]  # set with equal stretched spaces
RULES_JUSTIFIED_NEXT = "Coordination"
RULES_JUSTIFIED_ITEM = ["delete(path, version):", "Deletes", "the", "znode"]
RULES_BODY = ["The coordinator runs the state machine for", "every request that reaches this node."]
RULES_CODE_LEFT = ['#include "store.h"', "", "// Count the words", "int count(const char* s) {",
                   "  int n = 0;", "", "  while (*s) {"]
RULES_CODE_RIGHT = ["    if (*s++ == ' ') n++;", "  }", "", "  return n;", "}"]
RULES_TIGHT = [("Even", 1.8), ("though", 1.8), ("the", 1.8), ("pseudo-code", 1.4), ("is", 2.0), ("written", 0)]
RULES_TIGHT_TEXT = " ".join(w for w, _ in RULES_TIGHT)  # a tightly justified line: spaces of 0.14-0.2 em
RULES_FILLER = ["Replicas agree on the order of the writes", "before any of them is applied to the file."]
RULES_CODE = "\n".join(l for l in RULES_CODE_LEFT + RULES_CODE_RIGHT if l)


def layout_rules_pdf() -> bytes:
    pdf = _paper()
    pdf.add_page()
    _centered(pdf, "Layout Rules of Two-Column Papers", 80, 16, "B")
    y = _lines(pdf, LEFT_COL[0], 110, RULES_STACKED, 12, "B")
    y = _lines(pdf, LEFT_COL[0], y + 2, RULES_STACKED_BODY)
    # the right column, under the end of the code listing: a justified heading, its three spaces
    # stretched to 30 pt each
    pdf.set_font("Times", "B", 12)
    x = RIGHT_COL[0]
    for i, word in enumerate(RULES_JUSTIFIED):
        pdf.text(x, 200, word)
        x += pdf.get_string_width(word) + (13 if i == 0 else 30)
    pdf.text(RIGHT_COL[0], 214, RULES_JUSTIFIED_NEXT)
    y2 = _lines(pdf, RIGHT_COL[0], 230, RULES_BODY)
    pdf.set_font("Times", "", 10)
    x = RIGHT_COL[0]
    for word in RULES_JUSTIFIED_ITEM:  # a list item's first line, its spaces stretched to 13 pt
        pdf.text(x, y2 + 4, word)
        x += pdf.get_string_width(word) + 13
    pdf.set_font("Times", "", 10)
    x = LEFT_COL[0]
    for word, space in RULES_TIGHT:
        pdf.text(x, y + 8, word)
        x += pdf.get_string_width(word) + space
    _lines(pdf, LEFT_COL[0], y + 24, RULES_FILLER * 19)  # the rest of the column, down to the listing
    # the code listing: 8 pt Courier at the foot of the left column, on at the top of the right
    pdf.set_font("Courier", "", 8)
    y = 640.0
    for line in RULES_CODE_LEFT:
        if line:
            pdf.text(LEFT_COL[0], y, line)
        y += 9.5
    y = 110.0
    for line in RULES_CODE_RIGHT:
        if line:
            pdf.text(RIGHT_COL[0], y, line)
        y += 9.5
    return bytes(pdf.output())


# 9. A first page whose title, authors and abstract run across the page (more than a quarter of its
# lines) over two columns; the abstract ends in a short line on the left half.
FRONT_ABSTRACT_LINES = [
    "An abstract set across the whole page summarises the work in a few sentences before the two columns begin.",
    "It is long enough here that its lines, with the title and the authors above them, are more than a quarter",
    "of all the lines on the page, which once made the page look as if it had a single column, so that each line",
    "of the left column was read together with the line of the right column beside it, and the last line of the",
    "abstract, short and on the left half of the page, was taken for a line of the left column; this is its",
    "short last line.",
]
FRONT_ABSTRACT = " ".join(FRONT_ABSTRACT_LINES)
FRONT_EMAIL = "(MUSO Collaboration) ann.author@example.edu"  # letters with punctuation: no formula
FRONT_LEFT = ["The left column starts here and runs on", "for a few lines of plain running text that",
              "a reader takes before the right column."]
FRONT_RIGHT = ["The right column is read after the left", "one, from its top line down to its last",
               "line, which ends the page's text here."]


def front_matter_pdf() -> bytes:
    pdf = _paper()
    pdf.add_page()
    _centered(pdf, "A Paper With Its Front Matter Across the Page", 80, 16, "B")
    _centered(pdf, "Ann Author and Second Author", 104, 11)
    _centered(pdf, "Department of Tests, Example University", 118, 10)
    _centered(pdf, FRONT_EMAIL, 130, 10)
    y = _lines(pdf, LEFT_COL[0], 150, FRONT_ABSTRACT_LINES)
    _lines(pdf, LEFT_COL[0], y + 20, FRONT_LEFT)
    _lines(pdf, RIGHT_COL[0], y + 20, FRONT_RIGHT)
    return bytes(pdf.output())


# 10. The end of a REVTeX paper: the text ends in both columns, and under a band of white across the
# page the bibliography, without a heading, runs in two columns of its own.
BIB_LEFT = ["The text of the left column ends on this", "page well above its foot, and so does", "the right column next to it."]
BIB_RIGHT = ["The right column holds the last lines of", "the text, read after the left column and", "before the bibliography below."]
BIB_ENTRIES = [["[1] A. Author, Phys. Rev. 94, 262 (1954)."], ["[2] B. Author and C. Author, J. Appl.", "Phys. 51, 445 (1983)."],
               ["[3] D. Author, Physica D 88, 445 (1983)."], ["[4] E. Author, Q. J. Mech. Appl. Math.", "51, 477 (1988)."],
               ["[5] F. Author, personal communication."]]


def unheaded_bibliography_pdf() -> bytes:
    pdf = _paper()
    pdf.add_page()
    _centered(pdf, "A Paper Whose Bibliography Has No Heading", 80, 16, "B")
    _lines(pdf, LEFT_COL[0], 120, BIB_LEFT)
    _lines(pdf, RIGHT_COL[0], 120, BIB_RIGHT)
    for col, entries in ((LEFT_COL[0], BIB_ENTRIES[:3]), (RIGHT_COL[0], BIB_ENTRIES[3:])):
        y = 220.0
        for entry in entries:
            pdf.set_font("Times", "", 9)
            for k, line in enumerate(entry):
                pdf.text(col + (0 if k == 0 else 14), y, line)
                y += 11
    return bytes(pdf.output())


# 11. A caption whose label is set apart without a colon (ASME: "Table 4  Values of ..."), over a
# table set without rules.
BARE_CAPTION = "Table 4 Values of the error function"
BARE_TABLE = [["x", "erf x", "erfc x"], ["0.05", "0.05637", "0.94363"], ["0.10", "0.11246", "0.88754"],
              ["0.15", "0.16800", "0.83200"], ["0.20", "0.22270", "0.77730"]]


def bare_caption_table_pdf() -> bytes:
    pdf = _paper()
    pdf.add_page()
    _centered(pdf, "A Table Under a Caption Without a Colon", 80, 16, "B")
    y = _lines(pdf, LEFT_COL[0], 120, RULES_FILLER * 2)
    _lines(pdf, RIGHT_COL[0], 120, RULES_BODY * 2)
    pdf.set_font("Times", "B", 9)
    pdf.text(LEFT_COL[0], y + 10, "Table 4")
    pdf.set_font("Times", "", 9)
    pdf.text(LEFT_COL[0] + 36, y + 10, BARE_CAPTION[len("Table 4 "):])
    y += 28
    for row in BARE_TABLE:
        for j, cell in enumerate(row):
            pdf.text(LEFT_COL[0] + 20 + 70 * j, y, cell)
        y += 12
    _lines(pdf, LEFT_COL[0], y + 16, RULES_FILLER)
    return bytes(pdf.output())
