"""QA over an extracted paper: contexts (sections cut by tokens on block boundaries, a table never cut;
pairs of sections for multi-hop questions), the structured answer with its citations, and the checks
a pair must pass: every quote found on the page it cites, a numeric answer's numbers found in the
table it cites, a multi-hop answer citing two blocks."""

from __future__ import annotations

import json
import re
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


@dataclass
class Checked:
    ok: bool
    reason: str | None = None
    scores: list[float] = field(default_factory=list)
    block_ids: list[str] = field(default_factory=list)  # the block each quote was found in


def check_pair(pair: dict, qa_type: str, blocks: list[dict], pages: dict[str, str], threshold: float,
               min_quote_chars: int) -> Checked:
    """Whether a generated pair is grounded in its paper: each quote on the page it cites (fuzzy
    partial match >= ``threshold``), found in a block of that page; for numeric questions, every
    number of the answer in a cited table's cells or caption; for multi-hop, two distinct cited blocks."""
    from synth_tasks.quality.grounding import evidence_score

    scores, found_ids = [], []
    by_id = {b["block_id"]: b for b in blocks}
    for c in pair["citations"]:
        quote, page = " ".join(c["quote"].split()), int(c["page"])
        if len(quote) < min_quote_chars:
            return Checked(False, f"quote_too_short: {quote!r} on p.{page} has under {min_quote_chars} characters")
        score = evidence_score(quote, pages.get(str(page), ""))
        if score < threshold:
            return Checked(False, f"quote_not_on_page: p.{page} (match {score:.0f} < {threshold:.0f})")
        on_page = [b for b in blocks if b["page"] == page]
        named = by_id.get(c["block_id"])
        if named is not None and named["page"] == page and evidence_score(quote, plain_text(named)) >= threshold:
            found_ids.append(named["block_id"])
        else:  # the quote is on its page; the block the model named is not where it is
            best = max(on_page, key=lambda b: evidence_score(quote, plain_text(b)))
            found_ids.append(best["block_id"])
        scores.append(score)
    if qa_type == QAType.NUMERIC_TABLE:
        tables = [by_id[i] for i in dict.fromkeys(found_ids + [c["block_id"] for c in pair["citations"]])
                  if i in by_id and by_id[i]["kind"] == "table" and by_id[i].get("table_cells")]
        if not tables:
            return Checked(False, "number_not_in_table: no table is cited", scores, found_ids)
        wanted = numbers_in(pair["answer"])
        if not wanted:
            return Checked(False, "number_not_in_table: the answer states no number", scores, found_ids)
        have = set()
        for t in tables:
            cells = json.loads(t["table_cells"]) if isinstance(t["table_cells"], str) else t["table_cells"]
            have |= {n for row in cells for cell in row for n in numbers_in(cell)}
            # the table's own caption counts: "Table 1 gives 0.94" must not fail on the 1
            have |= numbers_in(t.get("caption") or "")
        missing = sorted(wanted - have)
        if missing:
            return Checked(False, f"number_not_in_table: {', '.join(str(n) for n in missing)}", scores, found_ids)
    if qa_type == QAType.MULTI_HOP and len(set(found_ids)) < 2:
        return Checked(False, "multi_hop_one_block: a multi-hop answer must cite two blocks", scores, found_ids)
    return Checked(True, None, scores, found_ids)


def cite_pages(pages: list[int]) -> str:
    """"(p. 4)" or "(pp. 3, 5)"."""
    unique = sorted(set(pages))
    return f"(p. {unique[0]})" if len(unique) == 1 else f"(pp. {', '.join(str(p) for p in unique)})"


def answer_with_citations(answer: str, pages: list[int]) -> str:
    answer = answer.strip()
    end = answer[-1] if answer and answer[-1] in ".!?" else ""
    return f"{answer[:-1] if end else answer} {cite_pages(pages)}{end}"
