"""Glyphs that pdfminer reports as "(cid:N)", named from the embedded font program where it can.

pdfminer maps a character code to text through the font's ToUnicode map, its /Encoding, or a Type 1
program's built-in encoding. A compact font (FontFile3, CFF) or a TrueType program (FontFile2) can
still name the glyph when all of those are missing: the MapReduce paper's Times-Roman draws "fi"
as code 2, whose CFF encoding names the glyph "fi". Glyph names become text by the Adobe Glyph List
(fontTools.agl), ligatures spelled out by NFKC ("ﬁ" -> "fi"). A glyph no name explains is left to OCR.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections import Counter

CID = re.compile(r"^\(cid:(\d+)\)$")


class GlyphNames:
    """Per document: each font's code -> text map, read once from its embedded program."""

    def __init__(self) -> None:
        self._maps: dict[str, dict[int, str]] = {}
        self._readings: dict[tuple[str, int], Counter] = {}

    def text(self, page, fontname: str, code: int) -> str | None:
        if fontname not in self._maps:
            font = _page_fonts(page).get(fontname)
            try:
                self._maps[fontname] = _code_map(font) if font is not None else {}
            except Exception:  # noqa: BLE001 - a font program fontTools cannot parse names nothing
                self._maps[fontname] = {}
        return self._maps[fontname].get(code)

    def vote(self, key: tuple[str, int], text: str) -> None:
        """One OCR reading of a glyph no name explains."""
        self._readings.setdefault(key, Counter())[text] += 1

    def learned(self, key: tuple[str, int]) -> str | None:
        """The glyph's text once two readings agree and they are at least two thirds of all ("" for a
        glyph OCR reads as nothing, a rule or a piece of a drawing); None while unknown."""
        readings = self._readings.get(key)
        if not readings:
            return None
        text, n = readings.most_common(1)[0]
        return text if n >= 2 and n >= 2 / 3 * sum(readings.values()) else None


def name_to_text(glyph: str) -> str | None:
    """A glyph name's text by the Adobe Glyph List, ligatures as their letters; None for names that
    say nothing (".notdef", "g123", private-use)."""
    from fontTools import agl

    text = unicodedata.normalize("NFKC", agl.toUnicode(glyph))
    if not text or any(unicodedata.category(ch) in ("Co", "Cc", "Cn") for ch in text):
        return None
    return text


def _page_fonts(page) -> dict[str, object]:
    """The page's font dictionaries by the name pdfplumber gives its characters, form XObjects'
    fonts included."""
    from pdfminer.psparser import literal_name
    from pdfminer.pdftypes import resolve1

    fonts: dict[str, object] = {}

    def walk(resources, depth: int) -> None:
        resources = resolve1(resources) or {}
        for ref in (resolve1(resources.get("Font")) or {}).values():
            font = resolve1(ref)
            if isinstance(font, dict) and "BaseFont" in font:
                fonts.setdefault(literal_name(font["BaseFont"]), font)
        if depth < 2:
            for ref in (resolve1(resources.get("XObject")) or {}).values():
                xobj = resolve1(ref)
                if getattr(xobj, "attrs", {}).get("Resources") is not None:
                    walk(xobj.attrs["Resources"], depth + 1)

    walk(page.page_obj.resources, 0)
    return fonts


def _code_map(font) -> dict[int, str]:
    from fontTools.ttLib import TTFont
    from pdfminer.psparser import literal_name
    from pdfminer.pdftypes import resolve1

    composite = literal_name(font.get("Subtype")) == "Type0"
    if composite:
        font = resolve1(resolve1(font["DescendantFonts"])[0])
    descriptor = resolve1(font.get("FontDescriptor")) or {}
    names: dict[int, str] = {}
    if (stream := resolve1(descriptor.get("FontFile3"))) is not None:
        names = _cff_names(stream.get_data(), composite)
    elif (stream := resolve1(descriptor.get("FontFile2"))) is not None:
        tt = TTFont(io.BytesIO(stream.get_data()), lazy=True)
        order = tt.getGlyphOrder()
        if composite:  # code = CID -> glyph id by the CIDToGIDMap stream, or the same number (Identity)
            to_gid = resolve1(font.get("CIDToGIDMap"))
            if hasattr(to_gid, "get_data"):
                raw = to_gid.get_data()
                gids = {cid: int.from_bytes(raw[2 * cid:2 * cid + 2], "big") for cid in range(len(raw) // 2)}
                names = {cid: order[gid] for cid, gid in gids.items() if 0 < gid < len(order)}
            else:
                names = dict(enumerate(order))
        else:
            cmap = next((t.cmap for t in tt["cmap"].tables if (t.platformID, t.platEncID) in ((3, 0), (1, 0))), {})
            names = {code & 0xFF: glyph for code, glyph in cmap.items()}
    return {code: text for code, glyph in names.items() if (text := name_to_text(glyph))}


def _cff_names(data: bytes, composite: bool) -> dict[int, str]:
    from fontTools.cffLib import CFFFontSet

    cff = CFFFontSet()
    cff.decompile(io.BytesIO(data), None)
    top = cff[cff.fontNames[0]]
    if composite:
        return dict(enumerate(top.charset))
    encoding = getattr(top, "Encoding", None)
    if isinstance(encoding, list):  # a custom encoding: code -> glyph name
        return {code: glyph for code, glyph in enumerate(encoding) if glyph and glyph != ".notdef"}
    return {}  # StandardEncoding: pdfminer reads it already
