"""Research-paper PDFs written for the tests (fpdf2), with every line placed by hand so the tests know
exactly what is where: a two-column paper with a running header, page numbers, a ruled table with
its caption, a vector figure and a raster figure with captions, a display equation, hyphenated line
ends and a references section; and the bad PDFs (encrypted, not a PDF, truncated, no text layer,
zero pages)."""

from __future__ import annotations

import io

PAGE_W, PAGE_H = 612.0, 792.0
LEFT, GUTTER, RIGHT = 54.0, 306.0, 558.0
LEFT_COL = (54.0, 297.0)
RIGHT_COL = (315.0, 558.0)
LEADING = 12.0

TITLE = "Grounded Extraction of Synthetic Papers"
AUTHORS = "Ada Lovelace and Alan Turing"
HEADER = "Journal of Synthetic Tests, Volume 7"
ABSTRACT_LINES = [
    "We describe a pipeline that turns research papers into structured blocks with their pages and bounding boxes,",
    "and then into questions whose answers quote the page that supports them. Every block keeps its page",
    "number, so a reader can check each answer against the printed paper in seconds.",
]
ABSTRACT = " ".join(ABSTRACT_LINES)

# Page 1, left column: the introduction. Line ends are hyphenated by hand: "pipe-|line" must be
# repaired to "pipeline", and "two-|column" must keep its hyphen (the word is written with it elsewhere).
INTRO_1_LINES = [
    "The extraction pipe-",
    "line reads every page of a paper and keeps",
    "the position of each word it finds there.",
    "Papers are often printed in a two-column",
    "layout, which a naive reader interleaves.",
]
INTRO_1 = ("The extraction pipeline reads every page of a paper and keeps the position of each word it finds "
           "there. Papers are often printed in a two-column layout, which a naive reader interleaves.")
INTRO_2_LINES = [
    "Our reader keeps each column whole. A two-",
    "column page is read left column first and",
    "then right column, from top to bottom.",
]
INTRO_2 = ("Our reader keeps each column whole. A two-column page is read left column first and then right "
           "column, from top to bottom.")
EQUATION = "F1 = 2PR / (P + R)        (1)"
INTRO_3_LINES = [
    "Equation 1 combines precision and recall",
    "into a single score for each method.",
]
INTRO_3 = "Equation 1 combines precision and recall into a single score for each method."

# Page 1, right column: the method, with a vector figure (boxes, arrows and labels) and its caption.
METHOD_1_LINES = [
    "Blocks are grouped from lines that share a",
    "column and a font. Headings are found from",
    "their size, their weight and their numbers.",
]
METHOD_1 = ("Blocks are grouped from lines that share a column and a font. Headings are found from their "
            "size, their weight and their numbers.")
FIGURE_1_LABELS = ("Lexer", "Grouper")  # drawn inside the boxes; in no sentence
FIGURE_1_CAPTION = "Figure 1: The parser turns pages into blocks."
METHOD_2_LINES = [
    "Tables are read as grids of cells (Table 1),",
    "and the caption of each table is attached to it.",
]
METHOD_2 = "Tables are read as grids of cells (Table 1), and the caption of each table is attached to it."

# Page 2: results with a full-width ruled table (caption above), then two columns, a raster figure.
RESULTS_1_LINES = [
    "Table 1 compares three methods on the test",
    "papers. The column reader is the most precise.",
]
RESULTS_1 = "Table 1 compares three methods on the test papers. The column reader is the most precise."
TABLE_1_CAPTION = "Table 1: Extraction quality by method."
TABLE_1 = [
    ["Method", "Precision", "Recall", "Pages/s"],
    ["Column reader", "0.94", "0.91", "12.5"],
    ["Plain text", "0.71", "0.88", "85.0"],
    ["Baseline", "0.52", "0.60", "3.2"],
]
RESULTS_2_LINES = [
    "Plain text extraction is the fastest, but it",
    "mixes the two columns of a page together.",
]
RESULTS_2 = "Plain text extraction is the fastest, but it mixes the two columns of a page together."
FIGURE_2_CAPTION = "Figure 2: Recall of each method on the test set."
RESULTS_3_LINES = [
    "The baseline reads one line at a time and",
    "loses the order of the columns on every page.",
]
RESULTS_3 = "The baseline reads one line at a time and loses the order of the columns on every page."

# Page 3: conclusion and references (two entries, the second over two lines).
CONCLUSION_LINES = [
    "Positions make every answer checkable: a quote is looked up on the page it cites, and a number",
    "is looked up in the table it comes from.",
]
CONCLUSION = ("Positions make every answer checkable: a quote is looked up on the page it cites, and a number "
              "is looked up in the table it comes from.")
# Page 3: a table set without rules (text-aligned columns), its caption above it.
TABLE_2_CAPTION = "Table 2: Papers read in the benchmark."
TABLE_2 = [
    ["Paper", "Pages", "Seconds"],
    ["Bitcoin", "9", "1.5"],
    ["MapReduce", "13", "2.6"],
]
REFERENCES = [
    ["[1] A. Lovelace. Notes on the Analytical Engine. Scientific Memoirs, 1843."],
    ["[2] A. M. Turing. On computable numbers, with an application to the",
     "Entscheidungsproblem. Proceedings of the London Mathematical Society, 1936."],
]
REFERENCE_TEXTS = [" ".join(r) for r in REFERENCES]


def _png(width: int = 120, height: int = 80) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (width, height))
    img.putdata([(x * 2 % 256, y * 3 % 256, 128) for y in range(height) for x in range(width)])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _writer():
    from fpdf import FPDF

    class Paper(FPDF):
        def header(self):
            self.set_font("Helvetica", size=8)
            self.text(LEFT, 36, HEADER)

        def footer(self):
            self.set_font("Helvetica", size=9)
            label = str(self.page_no())
            self.text(PAGE_W / 2 - self.get_string_width(label) / 2, 760, label)

    pdf = Paper(unit="pt", format="letter")
    pdf.set_auto_page_break(False)
    pdf.set_creator("tests")
    return pdf


def _lines(pdf, x: float, y: float, lines: list[str], size: float = 10, style: str = "") -> float:
    """Write ``lines`` from baseline ``y`` down; returns the baseline after the last line."""
    pdf.set_font("Times", style, size)
    for line in lines:
        pdf.text(x, y, line)
        y += LEADING
    return y


def _centered(pdf, text: str, y: float, size: float, style: str = "", span=(LEFT, RIGHT)) -> None:
    pdf.set_font("Times", style, size)
    pdf.text((span[0] + span[1]) / 2 - pdf.get_string_width(text) / 2, y, text)


def _ruled_table(pdf, x: float, y: float, rows: list[list[str]], col_w: float, row_h: float = 16) -> float:
    pdf.set_line_width(0.6)
    n_cols = len(rows[0])
    for r in range(len(rows) + 1):
        pdf.line(x, y + r * row_h, x + n_cols * col_w, y + r * row_h)
    for c in range(n_cols + 1):
        pdf.line(x + c * col_w, y, x + c * col_w, y + len(rows) * row_h)
    for r, row in enumerate(rows):
        pdf.set_font("Times", "B" if r == 0 else "", 10)
        for c, cell in enumerate(row):
            pdf.text(x + c * col_w + 4, y + r * row_h + 11.5, cell)
    return y + len(rows) * row_h


def two_column_paper() -> bytes:
    """The three-page test paper (see the module constants for its exact text)."""
    pdf = _writer()
    # -- page 1 --------------------------------------------------------------------------------
    pdf.add_page()
    _centered(pdf, TITLE, 90, 18, "B")
    _centered(pdf, AUTHORS, 112, 11)
    _centered(pdf, "Abstract", 140, 11, "B")
    _lines(pdf, LEFT, 156, ABSTRACT_LINES, size=9.5)
    y = _lines(pdf, LEFT_COL[0], 222, ["1 Introduction"], size=12, style="B") + 4
    y = _lines(pdf, LEFT_COL[0], y, INTRO_1_LINES) + 6
    y = _lines(pdf, LEFT_COL[0], y, INTRO_2_LINES) + 10
    pdf.set_font("Times", "", 10)
    pdf.text(LEFT_COL[0] + 40, y, EQUATION)
    y = _lines(pdf, LEFT_COL[0], y + 22, INTRO_3_LINES)

    y = _lines(pdf, RIGHT_COL[0], 222, ["2 Method"], size=12, style="B") + 4
    y = _lines(pdf, RIGHT_COL[0], y, METHOD_1_LINES) + 8
    # the vector figure: two labelled boxes and an arrow
    top = y
    pdf.set_line_width(1)
    pdf.rect(RIGHT_COL[0] + 20, top, 70, 40)
    pdf.rect(RIGHT_COL[0] + 150, top, 70, 40)
    pdf.line(RIGHT_COL[0] + 90, top + 20, RIGHT_COL[0] + 150, top + 20)
    pdf.line(RIGHT_COL[0] + 142, top + 15, RIGHT_COL[0] + 150, top + 20)
    pdf.line(RIGHT_COL[0] + 142, top + 25, RIGHT_COL[0] + 150, top + 20)
    pdf.set_font("Helvetica", "", 9)
    pdf.text(RIGHT_COL[0] + 36, top + 23, FIGURE_1_LABELS[0])
    pdf.text(RIGHT_COL[0] + 166, top + 23, FIGURE_1_LABELS[1])
    y = _lines(pdf, RIGHT_COL[0], top + 58, [FIGURE_1_CAPTION], size=9) + 8
    _lines(pdf, RIGHT_COL[0], y, METHOD_2_LINES)

    # -- page 2 --------------------------------------------------------------------------------
    pdf.add_page()
    y = _lines(pdf, LEFT_COL[0], 80, ["3 Results"], size=12, style="B") + 4
    _lines(pdf, LEFT_COL[0], y, RESULTS_1_LINES)
    _lines(pdf, RIGHT_COL[0], 96, RESULTS_2_LINES)
    _centered(pdf, TABLE_1_CAPTION, 150, 9)
    bottom = _ruled_table(pdf, 156, 160, TABLE_1, col_w=75)
    pdf.image(io.BytesIO(_png()), x=RIGHT_COL[0] + 40, y=bottom + 30, w=150, h=100)
    _lines(pdf, RIGHT_COL[0], bottom + 146, [FIGURE_2_CAPTION], size=9)
    _lines(pdf, LEFT_COL[0], bottom + 40, RESULTS_3_LINES)

    # -- page 3 --------------------------------------------------------------------------------
    pdf.add_page()
    y = _lines(pdf, LEFT, 80, ["4 Conclusion"], size=12, style="B") + 4
    y = _lines(pdf, LEFT, y, CONCLUSION_LINES) + 14
    y = _lines(pdf, LEFT, y, [TABLE_2_CAPTION], size=9) + 2
    pdf.set_font("Times", "", 10)
    for row in TABLE_2:
        for x, cell in zip((LEFT + 20, LEFT + 160, LEFT + 260), row):
            pdf.text(x, y, cell)
        y += LEADING
    y = _lines(pdf, LEFT, y + 14, ["References"], size=12, style="B") + 4
    for ref in REFERENCES:
        y = _lines(pdf, LEFT, y, ref, size=9) + 3
    return bytes(pdf.output())


def encrypted_pdf() -> bytes:
    """Opens only with a password."""
    pdf = _writer()
    pdf.add_page()
    _lines(pdf, LEFT, 100, ["This page is locked behind a user password."])
    pdf.set_encryption(owner_password="owner-secret", user_password="user-secret")
    return bytes(pdf.output())


def image_only_pdf() -> bytes:
    """One page that is a picture (a scan): no text layer at all."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="letter")
    pdf.add_page()
    pdf.image(io.BytesIO(_png(300, 400)), x=54, y=54, w=500, h=660)
    return bytes(pdf.output())


def zero_page_pdf() -> bytes:
    """A well-formed PDF whose page tree is empty."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def truncated_pdf() -> bytes:
    """The test paper cut off half way (a failed download)."""
    data = two_column_paper()
    return data[: len(data) // 2]


NOT_A_PDF = b"<html><body>404 Not Found</body></html>\n"
