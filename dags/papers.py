"""
### Research papers — structured extraction and QA grounded in cited pages

Turns a folder of research-paper PDFs (local or S3) into (a) a structured extraction of each paper,
published as the Airflow Asset `papers/extracted` for other DAGs, and (b) question-answer data whose
every answer cites the pages and quotes that support it.

**Flow:** `extract` reads every PDF (pdfplumber; no model): blocks in reading order with their page
and bounding box (two columns kept apart, running headers/footers and page numbers removed,
line-end hyphens repaired, paragraphs joined over column and page breaks): headings with levels,
paragraphs, tables as grids with their captions (ruled with lines or images, and text-aligned),
figure captions with the figure's region rendered to PNG (pypdfium2), display equations as text,
footnotes, references one per entry. Scanned pages and glyphs without a text mapping are read by
OCR (tesseract), ligatures by the font's glyph names; each block says how (`text_source`). A bad
PDF (encrypted, not a PDF, truncated, nothing OCR can read, zero pages) fails alone in the ledger,
naming the file and the reason → `describe`
(mapped; with `describe_figures`) asks a vision endpoint about each figure; the embedded text model
is never sent images → `publish` writes each paper's `papers.parquet` (one row per block),
`paper.md` and figure PNGs, and updates the Asset → `plan` (mapped) cuts sections into contexts by
tokens (never inside a table; references never used) and plans QA jobs: factual, numeric from a
table, methodological, comparison, limitation, and multi-hop over two sections → `generate`
(mapped, LLM, structured: question, answer, citations `[{page, block_id, quote}]`, reasoning steps)
→ `ground` (mapped) keeps a pair only when every quote stands word for word on its cited page, a
numeric answer's numbers are cells of the row its quote shows or names, and any other answer is said
by its quotes (else `quote_not_on_page: p.4`, `number_not_in_quoted_row`, `answer_not_supported`) → `dedup` (one task) drops near-duplicate questions per paper → `render`
(mapped) writes chat records with citations as "(p. 4)" → `export` splits by paper.

**Outputs** under `{SYNTH_DATA_ROOT}/papers/{partition}/`: `publish/{paper_id}/papers.parquet`,
`paper.md`, `figures/*.png` (the Asset's data; each Asset event names the partition and URL), and
`final/train.jsonl`/`.parquet`, `final/validation.*` (messages plus paper, pages, block ids,
quotes, QA type, reasoning steps). `_summary.json`, `_ledger/` and `_dropped/` account for every
file, paper, job and pair.

**Partition, LLM, retries:** as in every DAG of this project (see the `mind` DAG and docs/outputs.md).
"""

from synth_tasks.airflow_glue import build_dag
from synth_tasks.methods.papers import METHOD

dag = build_dag(METHOD, doc_md=__doc__)
