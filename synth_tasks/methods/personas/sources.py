"""Where persona agents gather material: a pluggable fetcher gives documents, a BM25 index (bm25s)
over their passages answers the personas' queries.

- ``FolderFetcher`` (source=corpus, the default): .md/.txt/.jsonl documents in a local or s3://
  folder, read through the store of the folder's own URL and only from the allowed input roots.
- ``WebFetcher`` (source=web, only when that Param is chosen): a small crawler from seed URLs over
  allowed hosts. robots.txt is respected (``urllib.robotparser``), one request per host per
  ``rate_limit_s``, at most ``max_pages`` pages and ``max_bytes`` per page, only text/html and
  text/plain, main text by trafilatura. Pages are cached in the staging store by date and URL
  (``{root}/_hub/web_cache/{date}/{sha}.json``), so a backfill of a day re-reads that day's pages
  instead of today's web, and a second task of the same run fetches nothing again.

A fetcher is any object with ``documents() -> list[Document]``."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request  # urllib.robotparser imports it anyway
import urllib.robotparser
from dataclasses import dataclass, field
from html.parser import HTMLParser

log = logging.getLogger(__name__)

CORPUS_FILES = ("**/*.md", "**/*.txt", "**/*.jsonl")
PASSAGE_CHARS = 800


@dataclass(frozen=True)
class Document:
    ref: str  # file URL (with #row for JSONL) or page URL
    text: str


@dataclass(frozen=True)
class Passage:
    ref: str  # document ref + "#p<k>"
    text: str
    score: float = 0.0


def passages(doc: Document, size: int = PASSAGE_CHARS) -> list[Passage]:
    """Paragraphs packed up to ``size`` characters (a longer paragraph stands alone)."""
    out, buf = [], ""
    for para in (p.strip() for p in re.split(r"\n\s*\n", doc.text)):
        if not para:
            continue
        if buf and len(buf) + len(para) + 2 > size:
            out.append(buf)
            buf = ""
        buf = f"{buf}\n\n{para}" if buf else para
    if buf:
        out.append(buf)
    return [Passage(f"{doc.ref}#p{k}", text) for k, text in enumerate(out)]


class PassageIndex:
    """BM25 (bm25s, English stop words) over the passages of some documents."""

    def __init__(self, docs: list[Document]):
        import bm25s

        self._bm25s = bm25s
        self.passages = [p for d in docs for p in passages(d)]
        self._retriever = None
        if self.passages:
            tokens = bm25s.tokenize([p.text for p in self.passages], stopwords="en", show_progress=False)
            self._retriever = bm25s.BM25()
            self._retriever.index(tokens, show_progress=False)

    def search(self, query: str, k: int) -> list[Passage]:
        if self._retriever is None or not query.strip():
            return []
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.ids or not tokens.ids[0]:
            return []  # nothing left of the query after stop words
        k = min(k, len(self.passages))
        ids, scores = self._retriever.retrieve(tokens, k=k, show_progress=False)
        return [Passage(self.passages[i].ref, self.passages[i].text, round(float(s), 4))
                for i, s in zip(ids[0], scores[0]) if s > 0]

    def gather(self, queries: list[str], k: int) -> list[Passage]:
        """The best ``k`` distinct passages over all queries (each query's best first, round-robin)."""
        ranked = [self.search(q, k) for q in queries]
        chosen: dict[str, Passage] = {}
        for rank in range(k):
            for hits in ranked:
                if rank < len(hits) and hits[rank].ref not in chosen and len(chosen) < k:
                    chosen[hits[rank].ref] = hits[rank]
        return list(chosen.values())


# ---------------------------------------------------------------------------------------------
# folder corpus
# ---------------------------------------------------------------------------------------------
@dataclass
class FolderFetcher:
    url: str  # resolved URL of the folder (or file, or glob)
    store: object  # the Store of the folder's own filesystem
    allowed_roots: tuple[str, ...] | None = None

    def documents(self) -> list[Document]:
        from synth_tasks.inputs import list_input_files

        docs = []
        for url in list_input_files(self.store, self.url, in_folder=CORPUS_FILES, allowed_roots=self.allowed_roots):
            data = self.store.read_bytes(url).decode("utf-8", errors="replace")
            if url.endswith(".jsonl"):
                for row, line in enumerate(data.splitlines(), 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        obj = exc
                    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
                        docs.append(Document(f"{url}#{obj.get('id', row)}", obj["text"]))
                    else:  # a source document, not a record: skipped, but said where
                        log.warning("source corpus %s row %d skipped: %s", url, row,
                                    obj if isinstance(obj, Exception) else 'not an object with a string "text"')
            else:
                docs.append(Document(url, data))
        return docs


# ---------------------------------------------------------------------------------------------
# web crawler
# ---------------------------------------------------------------------------------------------
class _LinkParser:
    """href targets of <a> tags (html.parser, no extra dependency)."""

    @staticmethod
    def links(base: str, html: str) -> list[str]:
        found: list[str] = []

        class P(HTMLParser):
            def handle_starttag(self, tag, attrs):
                if tag == "a":
                    href = dict(attrs).get("href")
                    if href:
                        found.append(urllib.parse.urldefrag(urllib.parse.urljoin(base, href))[0])

        P().feed(html)
        return found


class _AllowedHostsRedirect(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an allowed host (http/https): urlopen alone follows one anywhere,
    so an allowed page could send the worker to an internal service or cloud metadata."""

    def __init__(self, allowed: set[str]):
        self.allowed = allowed

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        parts = urllib.parse.urlsplit(newurl)
        if parts.scheme not in ("http", "https") or parts.netloc not in self.allowed:
            return None  # not followed: the page ends with its redirect status (http_status: 30x)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass
class WebFetcher:
    seed_urls: list[str]
    cache_store: object  # staging store: pages cached by date and URL
    day: str  # the run's date: its cache folder
    allowed_domains: list[str] = field(default_factory=list)
    max_pages: int = 20
    max_bytes: int = 2_000_000
    rate_limit_s: float = 1.0
    timeout_s: float = 10.0
    user_agent: str = "synth-tasks-personas/0.1"
    fetched: list[str] = field(default_factory=list)  # URLs requested over the network, in order
    skipped: dict[str, str] = field(default_factory=dict)  # URL -> why it was not used

    def __post_init__(self):
        self.allowed = set(self.allowed_domains) or {urllib.parse.urlsplit(u).netloc for u in self.seed_urls}
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self._last: dict[str, float] = {}
        self._opener = urllib.request.build_opener(_AllowedHostsRedirect(self.allowed))

    def _cache_url(self, url: str) -> str:
        from synth_tasks.methods.personas.hub import HUB_DIR

        sha = hashlib.sha256(url.encode()).hexdigest()[:32]
        return self.cache_store.join(HUB_DIR[0], "web_cache", self.day, f"{sha}.json")

    def _wait(self, host: str) -> None:
        wait = self._last.get(host, -1e9) + self.rate_limit_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last[host] = time.monotonic()

    def _get(self, url: str) -> tuple[int, str, bytes]:
        """(status, content type, body up to max_bytes); network errors raise OSError."""
        host = urllib.parse.urlsplit(url).netloc
        self._wait(host)
        self.fetched.append(url)
        req = urllib.request.Request(url, headers={"User-Agent": self.user_agent})
        deadline = time.monotonic() + self.timeout_s
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                # the socket timeout bounds each read, not the page: a server dripping a byte at a
                # time would hold the task forever, so the whole body has the deadline too
                body = bytearray()
                while len(body) < self.max_bytes:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"timed out: body not read within {self.timeout_s:g} s")
                    chunk = resp.read1(min(65536, self.max_bytes - len(body)))
                    if not chunk:
                        break
                    body += chunk
                return resp.status, resp.headers.get("Content-Type", ""), bytes(body)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", "") if exc.headers else "", b""

    def _allowed_by_robots(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        host = parts.netloc
        if host not in self._robots:
            parser = urllib.robotparser.RobotFileParser()
            try:
                status, _, body = self._get(f"{parts.scheme}://{host}/robots.txt")
                parser.parse(body.decode("utf-8", errors="replace").splitlines() if status == 200 else [])
            except OSError:
                parser.parse([])  # no robots.txt reachable: nothing is disallowed
            self._robots[host] = parser
        return self._robots[host].can_fetch(self.user_agent, url)

    def page(self, url: str) -> dict | None:
        """The page's cached entry, fetching it when this day has none: {url, status, text, links}
        (text None when unusable, with ``reason``). None when robots.txt disallows it."""
        cache = self._cache_url(url)
        if self.cache_store.exists(cache):
            return self.cache_store.read_json(cache)
        if not self._allowed_by_robots(url):
            return None
        try:
            status, ctype, body = self._get(url)
        except (OSError, TimeoutError) as exc:  # timeouts, refused connections: this page only
            entry = {"url": url, "status": None, "text": None, "links": [], "reason": f"fetch_error: {exc}"}
            self.cache_store.write_json(cache, entry)  # a retry of the task does not wait again
            return entry
        mime = ctype.split(";")[0].strip().lower()
        entry = {"url": url, "status": status, "text": None, "links": [], "reason": None}
        if status != 200:
            entry["reason"] = f"http_status: {status}"
        elif mime not in ("text/html", "text/plain"):
            entry["reason"] = f"content_type: {mime or 'none'}"
        else:
            raw = body.decode("utf-8", errors="replace")
            if mime == "text/html":
                import trafilatura

                entry["text"] = trafilatura.extract(raw, include_comments=False) or ""
                entry["links"] = _LinkParser.links(url, raw)
            else:
                entry["text"] = raw
        self.cache_store.write_json(cache, entry)
        return entry

    def documents(self) -> list[Document]:
        queue, seen, docs = list(self.seed_urls), set(), []
        pages = 0
        while queue and pages < self.max_pages:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or parts.netloc not in self.allowed:
                self.skipped[url] = "not_allowed_domain"
                continue
            entry = self.page(url)
            if entry is None:
                self.skipped[url] = "robots_disallowed"
                continue
            pages += 1
            if entry["text"]:
                docs.append(Document(url, entry["text"]))
            else:
                self.skipped[url] = entry["reason"] or "no_text"
            queue.extend(link for link in entry["links"] if link not in seen)
        return docs


# ---------------------------------------------------------------------------------------------
# trending topics: terms whose share of the fetched material rose most against earlier days
# ---------------------------------------------------------------------------------------------
_TERM = re.compile(r"[a-z][a-z-]{3,}")


def term_shares(docs: list[Document]) -> dict[str, float]:
    """Share of the documents each term (a word of 4+ letters, not a stop word) appears in."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    counts: dict[str, int] = {}
    for d in docs:
        for term in set(_TERM.findall(d.text.lower())) - ENGLISH_STOP_WORDS:
            counts[term] = counts.get(term, 0) + 1
    n = len(docs) or 1
    return {t: round(c / n, 6) for t, c in sorted(counts.items()) if c >= 2 or len(docs) < 2}


def trending_terms(today: dict[str, float], earlier: list[dict[str, float]], k: int) -> list[dict]:
    """The ``k`` terms whose share today rose most over their mean share on the earlier days
    (a term unseen before counts from a floor of half a document's share), ties by name."""
    floor = min(today.values(), default=1.0) / 2
    scored = []
    for term, share in today.items():
        before = sum(day.get(term, 0.0) for day in earlier) / len(earlier) if earlier else 0.0
        scored.append((round(share / max(before, floor), 4), term, share, before))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [{"term": t, "rise": r, "share": s, "share_before": round(b, 6)} for r, t, s, b in scored[:k]]
