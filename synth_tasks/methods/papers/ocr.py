"""Text that a page's text layer does not hold, read from its pixels by tesseract.

Two cases reach here: a scanned page (an image and no text), and glyphs drawn without a text mapping
that neither the font's Unicode map nor its glyph names could name (``glyphs.py``), which pdfminer
reports as "(cid:N)". Tesseract 5 (Apache-2.0, Debian's ``tesseract-ocr`` with its English data,
installed by ``make system-deps``) is driven through pytesseract; it needs no model download. The
images come from ``extract.PageRenderer``. Every word read here is marked so its block can say how
its text was obtained (``text_source``).

pytesseract is imported inside the functions: the DAG file imports this package.
"""

from __future__ import annotations

import functools
import os

OCR_DPI = 300  # tesseract's documented sweet spot for body text; 10-pt type is ~40 px high
PT_PER_PX = 72 / OCR_DPI
MIN_CONFIDENCE = 30  # tesseract's word confidence (0-100); below it the "words" are speckle and rules


class OCRUnavailable(RuntimeError):
    """tesseract is not installed: the page cannot be read, and the error says how to fix that."""


@functools.cache
def tesseract_version() -> str:
    import pytesseract

    # Tesseract's OpenMP threads fight over a small machine's cores: a GFS page took 35 s with its
    # default threads on 2 cores and 3.4 s with one. Its children (pytesseract runs the CLI) inherit this.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        return str(pytesseract.get_tesseract_version())
    except pytesseract.TesseractNotFoundError:
        raise OCRUnavailable("tesseract is not installed: run `make system-deps` (Debian: tesseract-ocr, "
                             "tesseract-ocr-eng)") from None


def page_words(image) -> list[dict]:
    """Every word tesseract reads on a rendered page, as the word dicts the layout is built from
    (PDF points from the top-left). A word's box is its text line's, top to bottom: ink boxes end at
    each word's own descenders, where a text layer's words share their line's. Tesseract gives no
    font size: a line's ink height (ascender to descender) is about one em, so it is the size."""
    import pytesseract

    tesseract_version()
    data = pytesseract.image_to_data(image, lang="eng", config="--psm 3",
                                     output_type=pytesseract.Output.DICT)
    line_box: dict[tuple[int, int, int], tuple[int, int]] = {}
    words = []
    for i, text in enumerate(data["text"]):
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        if data["level"][i] == 4:
            line_box[key] = (data["top"][i], data["height"][i])
        elif text.strip() and float(data["conf"][i]) >= MIN_CONFIDENCE and key in line_box:
            top, height = line_box[key]
            size = round(height * PT_PER_PX * 2) / 2
            x0 = data["left"][i] * PT_PER_PX
            words.append(_word(text.strip(), x0, top * PT_PER_PX, x0 + data["width"][i] * PT_PER_PX,
                               (top + height) * PT_PER_PX, size))
    return words


def read_line(image) -> str:
    """The text of a small image holding one line (a run of glyphs the text layer cannot name, cut
    from its page with a margin), read as a single line; "" when tesseract reads nothing there."""
    import pytesseract

    tesseract_version()
    if image.width < 4 or image.height < 4:
        return ""
    return " ".join(pytesseract.image_to_string(image, lang="eng", config="--psm 7").split())


def _word(text: str, x0: float, top: float, x1: float, bottom: float, size: float) -> dict:
    return {"text": text, "x0": x0, "x1": x1, "top": top, "bottom": bottom, "upright": True, "size": size,
            "bold_chars": 0, "mono_chars": 0, "n_chars": len(text), "ocr_chars": len(text)}
