"""QA over an extracted paper: contexts (sections cut by tokens on block boundaries, a table never cut;
pairs of sections for multi-hop questions), the structured answer with its citations, and the checks
a pair must pass: every quote word for word on the page it cites, a numeric answer's numbers in a
row its quotes show or name, any other answer said by its quotes, a multi-hop answer citing two
blocks."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from pydantic import BaseModel, Field

from synth_tasks.text.tokens import count_tokens


class QAType(StrEnum):
    FACTUAL = "factual"
    NUMERIC_TABLE = "numeric_table"  # the answer is read from a table cell
    METHODOLOGICAL = "methodological"  # why / how
    COMPARISON = "comparison"  # two rows, two columns or two methods
    LIMITATION = "limitation"  # a limitation or an assumption
    MULTI_HOP = "multi_hop"  # across two cited blocks of two sections


SINGLE_CONTEXT_TYPES = tuple(t for t in QAType if t is not QAType.MULTI_HOP)
CONTEXT_KINDS = ("paragraph", "table", "figure_caption", "equation")  # headings title contexts; references never


class Citation(BaseModel):
    page: int = Field(ge=1)
    block_id: str
    quote: str = Field(min_length=1)


class PaperQA(BaseModel):
    # Non-empty by schema, so constrained decoders cannot emit an empty pair; the grounding stage
    # then checks every citation against the paper itself.
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    citations: list[Citation] = Field(min_length=1, max_length=4)
    reasoning_steps: list[str] = Field(min_length=1, max_length=6)


# ---------------------------------------------------------------------------------------------
# contexts
# ---------------------------------------------------------------------------------------------
@dataclass
class Context:
    index: int
    section: list[str]
    blocks: list[dict] = field(default_factory=list)
    n_tokens: int = 0

    @property
    def has_table(self) -> bool:
        return any(b["kind"] == "table" and b.get("table_cells") for b in self.blocks)


def plain_text(block: dict) -> str:
    """A block's text as it reads on the page: a table is its caption and its rows of cells."""
    if block["kind"] == "table" and block.get("table_cells"):
        cells = json.loads(block["table_cells"]) if isinstance(block["table_cells"], str) else block["table_cells"]
        rows = "\n".join(" ".join(c for c in row if c) for row in cells)
        return f"{block['caption']}\n{rows}" if block.get("caption") else rows
    return block["text"]


def section_contexts(blocks: list[dict], max_tokens: int, min_tokens: int) -> list[Context]:
    """The paper's QA contexts: the blocks of each section (no front matter, no references) packed
    in order into contexts of at most ``max_tokens``, cut only between blocks, so a table is never
    cut (one over the budget is a context of its own). A context under ``min_tokens`` joins the next
    one of the same top-level section."""
    groups: list[tuple[tuple[str, ...], list[dict]]] = []
    for b in blocks:
        if b["kind"] not in CONTEXT_KINDS or b["section_path"][:1] == ["Front matter"]:
            continue
        path = tuple(b["section_path"])
        if groups and groups[-1][0] == path:
            groups[-1][1].append(b)
        else:
            groups.append((path, [b]))
    contexts: list[Context] = []
    for path, group in groups:
        current = Context(len(contexts), list(path))
        for b in group:
            n = count_tokens(plain_text(b))
            if current.blocks and current.n_tokens + n > max_tokens:
                contexts.append(current)
                current = Context(len(contexts), list(path))
            current.blocks.append(b)
            current.n_tokens += n
        contexts.append(current)
    merged: list[Context] = []
    for ctx in contexts:
        prev = merged[-1] if merged else None
        if (prev is not None and prev.n_tokens < min_tokens and prev.section[:1] == ctx.section[:1]
                and prev.n_tokens + ctx.n_tokens <= max_tokens):
            prev.blocks += ctx.blocks
            prev.n_tokens += ctx.n_tokens
            prev.section = ctx.section if len(ctx.section) < len(prev.section) else prev.section
        else:
            merged.append(ctx)
    for i, ctx in enumerate(merged):
        ctx.index = i
    return merged


def cross_pairs(contexts: list[Context], limit: int) -> list[tuple[Context, Context]]:
    """Context pairs of two different sections for multi-hop questions: first a passage that
    mentions "Table N" with the context holding that table (a method and the results it explains),
    then neighbouring sections."""
    pairs: list[tuple[Context, Context]] = []
    seen: set[tuple[int, int]] = set()

    def add(a: Context, b: Context) -> None:
        key = (min(a.index, b.index), max(a.index, b.index))
        if a.index != b.index and a.section != b.section and key not in seen and len(pairs) < limit:
            seen.add(key)
            pairs.append((a, b))

    for holder in contexts:
        for table in (b for b in holder.blocks if b["kind"] == "table" and b.get("label")):
            mention = re.compile(rf"\b{re.escape(table['label'])}\b")
            for other in contexts:
                if other is not holder and any(mention.search(b["text"]) for b in other.blocks if b["kind"] == "paragraph"):
                    add(other, holder)
    for a, b in zip(contexts, contexts[1:]):
        add(a, b)
    return pairs


def render_context(ctx_blocks: list[dict]) -> str:
    """The blocks as the model sees them, each headed by its id, page and kind."""
    parts = []
    for b in ctx_blocks:
        kind = b["kind"].replace("_", " ")
        parts.append(f"[{b['block_id']} | page {b['page']} | {kind}]\n{b['text']}")
    return "\n\n".join(parts)


def page_texts(blocks: list[dict], pages: set[int]) -> dict[str, str]:
    """The text of each page in ``pages`` (every block on it but the references), which a quote
    citing that page must be found in."""
    out: dict[str, list[str]] = {str(p): [] for p in sorted(pages)}
    for b in blocks:
        if str(b["page"]) in out and b["kind"] != "reference":
            out[str(b["page"])].append(plain_text(b))
    return {p: "\n".join(texts) for p, texts in out.items()}


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------
_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(?:\.\d+)?(?![\w])")


def numbers_in(text: str) -> set[Decimal]:
    """Numbers written in ``text`` ("3,288", "0.90", "12.5%"), normalised so 0.9 and 0.90 are one."""
    found = set()
    for m in _NUMBER.finditer(text):
        raw = m.group(0).replace(",", "").replace("−", "-")
        try:
            found.add(Decimal(raw).normalize())
        except InvalidOperation:
            continue
    return found


# What a quote may differ in from its page: case, whitespace, punctuation, ligatures (NFKC), hyphens
# and hyphenation at line ends, and glyphs the PDF left unmapped ("(cid:2)" for "fi": any 1-3
# letters there). Never a word: "does support" is not on a page that says "does not support".
_HYPHEN = re.compile(r"(?<=[^\W_])[-\u00ad\u2010\u2011]\s*(?=[^\W_])")
_UNMAPPED = re.compile(r"\(cid:\d+\)")
_WILDCARD = "\x00"
_TOKEN = re.compile(r"(?:[^\W_]|\x00)+")
_NEGATIONS = {"not", "no", "never", "cannot", "nor", "neither", "without", "none", "nothing", "unable"}
_STOPWORDS = {"a", "an", "the", "of", "to", "in", "on", "and", "or", "is", "are", "was", "were", "be", "been", "it",
              "its", "this", "that", "these", "those", "by", "for", "with", "as", "at", "from", "which", "their",
              "they", "them", "has", "have", "had", "can", "will", "would", "such", "than", "then", "also"}


def quote_tokens(text: str) -> list[str]:
    """``text`` as the words a quote is matched on (a word holding an unmapped glyph keeps it as
    ``\x00``: "con\x00guration")."""
    text = unicodedata.normalize("NFKC", _UNMAPPED.sub(_WILDCARD, text)).lower().replace("n't", " not")
    return _TOKEN.findall(_HYPHEN.sub("", text))


def _same_word(page_word: str, quote_word: str) -> bool:
    if _WILDCARD not in page_word:
        return page_word == quote_word
    pattern = "[^\\W_]{1,3}".join(re.escape(part) for part in page_word.split(_WILDCARD))
    return re.fullmatch(pattern, quote_word) is not None


def quote_found(quote: str, text: str) -> bool:
    """Whether every word of ``quote`` stands in ``text`` in the same order, none left out or added."""
    want, have = quote_tokens(quote), quote_tokens(text)
    if not want:
        return False
    first = want[0]
    return any(all(_same_word(have[i + j], w) for j, w in enumerate(want))
               for i in range(len(have) - len(want) + 1) if _same_word(have[i], first))


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def answer_support(answer: str, quotes: list[str]) -> tuple[float, str | None]:
    """(share of the answer's content words found in its quotes, a polarity problem or None): a
    non-numeric answer must say what its quotes say. A negation on one side only is a problem
    ("does support" answered from "does not support")."""
    said = quote_tokens(answer)
    quoted = [w for q in quotes for w in quote_tokens(q)]
    content = [_stem(w) for w in said if w not in _STOPWORDS and w not in _NEGATIONS and len(w) > 1]
    have = {_stem(w) for w in quoted}
    share = sum(w in have for w in content) / len(content) if content else 0.0
    negated_answer, negated_quote = bool(_NEGATIONS & set(said)), bool(_NEGATIONS & set(quoted))
    if negated_answer != negated_quote:
        return share, f"the {'answer' if negated_answer else 'quote'} is negated and the {'quote' if negated_answer else 'answer'} is not"
    return share, None


@dataclass
class Checked:
    ok: bool
    reason: str | None = None
    block_ids: list[str] = field(default_factory=list)  # the block each quote was found in
    support: float | None = None  # the answer's support by its quotes (non-numeric answers)


def _cells(table: dict) -> list[list[str]]:
    cells = table["table_cells"]
    return json.loads(cells) if isinstance(cells, str) else cells


def quoted_rows(table: dict, quotes: list[str]) -> list[list[str]]:
    """The rows of ``table`` a quote shows (all of the row's cells in it) or names (its first
    cell with a letter in it, as words of the quote)."""
    rows = []
    for row in _cells(table):
        filled = [c for c in row if c and c.strip()]
        label = next((c for c in filled if re.search(r"[^\W\d_]", c)), None)
        for quote in quotes:
            if filled and quote_found(" ".join(filled), quote) or label and quote_found(label, quote):
                rows.append(row)
                break
    return rows


def check_pair(pair: dict, qa_type: str, blocks: list[dict], pages: dict[str, str], min_quote_chars: int,
               min_support: float) -> Checked:
    """Whether a generated pair is grounded in its paper: each quote, word for word, on the page it
    cites and in a block of that page (see ``quote_found``); for numeric questions, every number
    of the answer in a row of a cited table that a quote shows or names (or the table's caption);
    for other questions, the answer said by its quotes (``answer_support`` >= ``min_support``, no
    negation on one side only); for multi-hop, two distinct cited blocks."""
    found_ids = []
    by_id = {b["block_id"]: b for b in blocks}
    quotes = [" ".join(c["quote"].split()) for c in pair["citations"]]
    for c, quote in zip(pair["citations"], quotes):
        page = int(c["page"])
        if len(quote) < min_quote_chars:
            return Checked(False, f"quote_too_short: {quote!r} on p.{page} has under {min_quote_chars} characters")
        if not quote_found(quote, pages.get(str(page), "")):
            return Checked(False, f"quote_not_on_page: p.{page}: {quote[:80]!r}")
        named = by_id.get(c["block_id"])
        if named is not None and named["page"] == page and quote_found(quote, plain_text(named)):
            found_ids.append(named["block_id"])
        else:  # the quote is on its page; the block the model named is not where it is
            on_page = [b for b in blocks if b["page"] == page]
            found_ids.append(next((b["block_id"] for b in on_page if quote_found(quote, plain_text(b))),
                                  on_page[0]["block_id"] if on_page else c["block_id"]))
    support = None
    if qa_type == QAType.NUMERIC_TABLE:
        tables = [by_id[i] for i in dict.fromkeys(found_ids + [c["block_id"] for c in pair["citations"]])
                  if i in by_id and by_id[i]["kind"] == "table" and by_id[i].get("table_cells")]
        if not tables:
            return Checked(False, "number_not_in_table: no table is cited", found_ids)
        wanted = numbers_in(pair["answer"])
        if not wanted:
            return Checked(False, "number_not_in_table: the answer states no number", found_ids)
        rows = [row for t in tables for row in quoted_rows(t, quotes)]
        if not rows:
            return Checked(False, "number_not_in_quoted_row: no quote shows or names a row of the cited table",
                           found_ids)
        have = {n for row in rows for cell in row for n in numbers_in(cell)}
        # the table's own caption counts: "Table 1 gives 0.94" must not fail on the 1
        have |= {n for t in tables for n in numbers_in(t.get("caption") or "")}
        missing = sorted(wanted - have)
        if missing:
            return Checked(False, f"number_not_in_quoted_row: {', '.join(str(n) for n in missing)}", found_ids)
    else:
        support, problem = answer_support(pair["answer"], quotes)
        if problem is not None:
            return Checked(False, f"answer_not_supported: {problem}", found_ids, support)
        if support < min_support:
            return Checked(False, f"answer_not_supported: {support:.2f} of its content words are in its quotes "
                                  f"< {min_support:.2f}", found_ids, support)
    if qa_type == QAType.MULTI_HOP and len(set(found_ids)) < 2:
        return Checked(False, "multi_hop_one_block: a multi-hop answer must cite two blocks", found_ids, support)
    return Checked(True, None, found_ids, support)


def cite_pages(pages: list[int]) -> str:
    """"(p. 4)" or "(pp. 3, 5)"."""
    unique = sorted(set(pages))
    return f"(p. {unique[0]})" if len(unique) == 1 else f"(pp. {', '.join(str(p) for p in unique)})"


def answer_with_citations(answer: str, pages: list[int]) -> str:
    answer = answer.strip()
    end = answer[-1] if answer and answer[-1] in ".!?" else ""
    return f"{answer[:-1] if end else answer} {cite_pages(pages)}{end}"
