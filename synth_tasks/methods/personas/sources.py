"""Where persona agents gather material: a pluggable fetcher gives documents, a BM25 index (bm25s)
over their passages answers the personas' queries.

- ``FolderFetcher`` (source=corpus, the default): .md/.txt/.jsonl documents in a local or s3://
  folder, read through the store of the folder's own URL and only from the allowed input roots.
- ``WebFetcher`` (source=web, only when that Param is chosen): a small crawler from seed URLs over
  allowed hosts. Every request, redirect hops and robots.txt included, passes the host policy, the
  host's robots.txt (RFC 9309: a 4xx robots.txt allows all, a 5xx or unreachable one disallows all)
  and the per-host gap (``rate_limit_s``, or the robots.txt Crawl-delay when longer, capped at
  ``MAX_CRAWL_DELAY_S``). At most ``max_pages`` pages and ``max_bytes`` per page, only text/html and
  text/plain, main text by trafilatura; a page marked noindex (meta robots or X-Robots-Tag) is not
  a source. Definitive answers are cached in the staging store by date and URL
  (``{root}/_hub/web_cache/{date}/{sha}.json``), so a backfill of a day re-reads that day's pages
  instead of today's web; failures that may pass (network errors, 5xx, 429) are not cached, so a
  retry the same day fetches them again. One task of a run crawls (it owns every host, so the
  per-host gap holds for the run); the others read the day cache only (``offline=True``).

A fetcher is any object with ``documents() -> list[Document]``. Passages are bounded
(``PASSAGE_CHARS``) so that the few a persona retrieves fit a small model's prompt."""

from __future__ import annotations

import hashlib
import http.client
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


# How a text is cut, coarsest first: paragraphs (blank lines), lines (trafilatura separates
# paragraphs with single newlines), sentences, words; each with the joiner that packs pieces again.
_SPLITS = ((re.compile(r"\n\s*\n"), "\n\n"), (re.compile(r"\n"), "\n"),
           (re.compile(r"(?<=[.!?])\s+"), " "), (re.compile(r"\s+"), " "))


def bounded_pieces(text: str, size: int, level: int = 0) -> list[str]:
    """``text`` in pieces of at most ``size`` characters: units of the coarsest split that fit are
    packed together; a unit over ``size`` is cut at the next finer split (paragraphs, then lines,
    then sentences, then words). Only a single word over ``size`` (a URL, a blob) is cut inside."""
    if level == len(_SPLITS):
        return [text[i : i + size] for i in range(0, len(text), size)]
    pattern, joiner = _SPLITS[level]
    out, buf = [], ""
    for unit in (u.strip() for u in pattern.split(text)):
        if not unit:
            continue
        if len(unit) > size:
            if buf:
                out.append(buf)
                buf = ""
            out.extend(bounded_pieces(unit, size, level + 1))
            continue
        if buf and len(buf) + len(joiner) + len(unit) > size:
            out.append(buf)
            buf = ""
        buf = f"{buf}{joiner}{unit}" if buf else unit
    if buf:
        out.append(buf)
    return out


def passages(doc: Document, size: int = PASSAGE_CHARS) -> list[Passage]:
    """The document in passages of at most ``size`` characters (see ``bounded_pieces``): a web page
    of one 19,000-character "paragraph" must not become one passage that overflows the prompt."""
    return [Passage(f"{doc.ref}#p{k}", text) for k, text in enumerate(bounded_pieces(doc.text, size))]


class PassageIndex:
    """BM25 (bm25s, English stop words) over the passages of some documents."""

    def __init__(self, docs: list[Document], passage_chars: int = PASSAGE_CHARS):
        import bm25s

        self._bm25s = bm25s
        self.passages = [p for d in docs for p in passages(d, passage_chars)]
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
MAX_REDIRECTS = 5  # RFC 9309 asks crawlers to follow at least five redirects for robots.txt; pages get as many
# A robots.txt Crawl-delay above this is capped: the crawl runs inside one task with a deadline, and
# an hour between requests would hold it forever (the cap is logged where it applies).
MAX_CRAWL_DELAY_S = 60.0
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class WebSourceEmpty(RuntimeError):
    """The web source yielded no document: the run would generate without grounding while looking fine."""


def _transient(status: int | None) -> bool:
    """A failure that may pass (no answer, a 5xx, 429 Too Many Requests): retried, never cached."""
    return status is None or status >= 500 or status == 429


class _PageParser(HTMLParser):
    """href targets of <a> tags and the robots directives of <meta name="robots"> (or of a meta
    tag naming our crawler), with html.parser: no extra dependency."""

    def __init__(self, base: str, agent: str):
        super().__init__()
        self.base, self.agent = base, agent
        self.links: list[str] = []
        self.robots: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            try:
                self.links.append(urllib.parse.urldefrag(urllib.parse.urljoin(self.base, attrs["href"]))[0])
            except ValueError:  # an unparsable href (a broken IPv6 literal): not a link we can follow
                pass
        elif tag == "meta" and (attrs.get("name") or "").strip().lower() in ("robots", self.agent):
            self.robots |= _directives(attrs.get("content") or "")


def _directives(value: str) -> set[str]:
    """The lower-cased directives of a meta robots content or X-Robots-Tag value ("noindex, nofollow")."""
    return {d.strip().lower() for d in value.split(",") if d.strip()}


def _header_directives(values: list[str], agent: str) -> set[str]:
    """X-Robots-Tag directives for us: a value may name a crawler first ("otherbot: noindex"), and
    then it applies to that crawler only."""
    found: set[str] = set()
    for value in values:
        named = re.match(r"\s*([\w.-]+)\s*:\s*(.*)$", value)
        if named and named.group(1).lower() != "unavailable_after":
            if named.group(1).lower() == agent:
                found |= _directives(named.group(2))
        else:
            found |= _directives(value)
    return found


@dataclass
class _HostRules:
    """What one host's robots.txt says for us: a parser, or why it could not be read (then nothing
    of the host is fetched), and the least gap between two requests to the host."""

    parser: urllib.robotparser.RobotFileParser | None
    unreachable: str | None
    gap_s: float


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed by urllib: ``WebFetcher`` follows each hop itself, so every hop
    passes the host policy, robots.txt and the per-host gap (urllib would follow one anywhere, at
    once, an allowed page sending the worker to an internal service or a disallowed path)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 30x comes back as an HTTPError with its Location header


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
    offline: bool = False  # read the day cache only: the run's crawling task owns the network
    fetched: list[str] = field(default_factory=list)  # URLs requested over the network, in order
    skipped: dict[str, str] = field(default_factory=dict)  # URL -> why it was not used
    failed: dict[str, str] = field(default_factory=dict)  # URL -> failure that may pass (not cached)
    pages: int = 0  # pages the last documents() crawled (robots-disallowed ones not counted)

    def __post_init__(self):
        self.allowed = set(self.allowed_domains) or {urllib.parse.urlsplit(u).netloc for u in self.seed_urls}
        self._agent = self.user_agent.split("/")[0].lower()  # the product token robots rules name
        self._hosts: dict[str, _HostRules] = {}
        self._last: dict[str, float] = {}
        self._opener = urllib.request.build_opener(_NoRedirect())

    def _cache_url(self, url: str) -> str:
        from synth_tasks.methods.personas.hub import HUB_DIR

        sha = hashlib.sha256(url.encode()).hexdigest()[:32]
        return self.cache_store.join(HUB_DIR[0], "web_cache", self.day, f"{sha}.json")

    def _allowed_url(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme in ("http", "https") and parts.netloc in self.allowed

    def _wait(self, host: str) -> None:
        gap = self._hosts[host].gap_s if host in self._hosts else self.rate_limit_s
        wait = self._last.get(host, -1e9) + gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last[host] = time.monotonic()

    def _get(self, url: str) -> tuple[int, object, bytes]:
        """(status, headers, body up to max_bytes) of one request, after the host's gap; redirects
        are returned, not followed; network errors raise OSError or http.client.HTTPException."""
        self._wait(urllib.parse.urlsplit(url).netloc)
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
                return resp.status, resp.headers, bytes(body)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers or http.client.HTTPMessage(), b""

    def _rules(self, url: str) -> _HostRules:
        """The robots rules of the URL's host, read once per fetcher. RFC 9309 section 2.3.1: a 2xx
        robots.txt is parsed; redirects are followed (``MAX_REDIRECTS``, allowed hosts only); a 4xx,
        401 and 403 included, means there is none, so everything is allowed (the RFC's "unavailable";
        urllib.robotparser reads 401/403 as disallow-all instead); a 5xx or no answer means
        everything is disallowed ("unreachable") until a later attempt reads it. Rules we could not
        read for a reason of ours (a redirect to a host not allowed, too many redirects) count as
        unreachable too: we do not assume there are none."""
        parts = urllib.parse.urlsplit(url)
        host = parts.netloc
        if host in self._hosts:
            return self._hosts[host]
        robots_url = hop = f"{parts.scheme}://{host}/robots.txt"
        rules = _HostRules(None, f"robots.txt {robots_url}: more than {MAX_REDIRECTS} redirects", self.rate_limit_s)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                status, headers, body = self._get(hop)
            except (OSError, http.client.HTTPException) as exc:
                rules = _HostRules(None, f"robots.txt {hop}: {exc}", self.rate_limit_s)
                break
            target = self._redirect_target(hop, status, headers)
            if status in REDIRECT_STATUSES and target and self._allowed_url(target):
                hop = target
                continue
            if 200 <= status < 300:
                parser = urllib.robotparser.RobotFileParser(robots_url)
                parser.parse(body.decode("utf-8", errors="replace").splitlines())
                rules = _HostRules(parser, None, self._gap(host, parser))
            elif 400 <= status < 500:
                parser = urllib.robotparser.RobotFileParser(robots_url)
                parser.parse([])  # no rules: everything allowed
                rules = _HostRules(parser, None, self.rate_limit_s)
            else:  # 5xx, or a redirect we may not follow: the rules could not be read
                rules = _HostRules(None, f"robots.txt {hop}: http_status: {status}", self.rate_limit_s)
            break
        if rules.unreachable:
            log.warning("%s: nothing of %s is fetched (RFC 9309: unreachable robots.txt)", rules.unreachable, host)
        self._hosts[host] = rules
        return rules

    def _gap(self, host: str, parser: urllib.robotparser.RobotFileParser) -> float:
        """The least seconds between two requests to the host: our rate limit, or the host's
        Crawl-delay for us when longer (capped at ``MAX_CRAWL_DELAY_S``; urllib.robotparser reads
        whole seconds only, a fractional Crawl-delay is ignored)."""
        delay = float(parser.crawl_delay(self.user_agent) or 0.0)
        if delay > MAX_CRAWL_DELAY_S:
            log.warning("robots.txt of %s asks Crawl-delay %g s: capped at %g s", host, delay, MAX_CRAWL_DELAY_S)
            delay = MAX_CRAWL_DELAY_S
        return max(self.rate_limit_s, delay)

    @staticmethod
    def _redirect_target(url: str, status: int, headers) -> str | None:
        location = headers.get("Location") if status in REDIRECT_STATUSES else None
        if not location:
            return None
        try:
            return urllib.parse.urldefrag(urllib.parse.urljoin(url, location.strip()))[0]
        except ValueError:  # an unparsable Location: the redirect ends there
            return None

    def page(self, url: str) -> dict:
        """The page's entry, from this day's cache or fetched: {url, status, text, links, reason,
        transient} (text None when unusable, with ``reason``). Only definitive answers are cached
        (a page, a 4xx, a type, robots-disallowed, noindex); a ``transient`` failure is not, so the
        next attempt the same day fetches it again."""
        cache = self._cache_url(url)
        if self.cache_store.exists(cache):
            entry = self.cache_store.read_json(cache)
            # entries cached before "transient" existed (fetch errors and 5xx were cached then): by status
            if not entry.setdefault("transient", _transient(entry["status"])):
                return entry
        if self.offline:
            return self._entry(url, None, "not_in_day_cache: the run's crawling task did not fetch it", transient=True)
        entry = self._fetch(url)
        if not entry["transient"]:
            self.cache_store.write_json(cache, entry)
        return entry

    @staticmethod
    def _entry(url: str, status: int | None, reason: str | None, *, transient: bool, text: str | None = None,
               links: list[str] = ()) -> dict:
        return {"url": url, "status": status, "text": text, "links": list(links), "reason": reason,
                "transient": transient}

    def _fetch(self, url: str) -> dict:
        """Fetch ``url``, following redirects one hop at a time; every hop passes the host policy,
        robots.txt and the host's gap."""
        hop = url
        for _ in range(MAX_REDIRECTS + 1):
            rules = self._rules(hop)
            if rules.unreachable:
                return self._entry(url, None, f"robots_unreachable: {rules.unreachable}", transient=True)
            if not rules.parser.can_fetch(self.user_agent, hop):
                return self._entry(url, None, f"robots_disallowed: {hop}", transient=False)
            try:
                status, headers, body = self._get(hop)
            except (OSError, http.client.HTTPException) as exc:  # timeouts, refused connections
                return self._entry(url, None, f"fetch_error: {exc}", transient=True)
            target = self._redirect_target(hop, status, headers)
            if target is None:
                return self._read(url, hop, status, headers, body)
            if not self._allowed_url(target):
                # not followed to a host the deployment did not list: the page ends with its 30x
                return self._entry(url, status, f"http_status: {status}", transient=False)
            hop = target
        return self._entry(url, None, f"too_many_redirects: more than {MAX_REDIRECTS}", transient=False)

    def _read(self, url: str, final: str, status: int, headers, body: bytes) -> dict:
        """The entry of a final answer: its text and links, or why it is not a source."""
        if status != 200:
            return self._entry(url, status, f"http_status: {status}", transient=_transient(status))
        mime = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if mime not in ("text/html", "text/plain"):
            return self._entry(url, status, f"content_type: {mime or 'none'}", transient=False)
        raw = body.decode("utf-8", errors="replace")
        robots = _header_directives(headers.get_all("X-Robots-Tag") or [], self._agent)
        links: list[str] = []
        if mime == "text/html":
            parser = _PageParser(final, self._agent)
            parser.feed(raw)
            robots |= parser.robots
            links = parser.links
        if robots & {"nofollow", "none"}:
            links = []
        if robots & {"noindex", "none"}:
            return self._entry(url, status, f"noindex: {final}", transient=False, links=links)
        if mime == "text/html":
            import trafilatura

            text = trafilatura.extract(raw, include_comments=False) or ""
        else:
            text = raw
        return self._entry(url, status, None, transient=False, text=text, links=links)

    def documents(self) -> list[Document]:
        """The usable pages, breadth-first from the seeds over the allowed hosts, at most
        ``max_pages``; every other URL met is in ``skipped`` with its reason (and in ``failed``
        when the reason may pass on a retry)."""
        queue, seen, docs = list(self.seed_urls), set(), []
        self.pages = 0
        while queue and self.pages < self.max_pages:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            if not self._allowed_url(url):
                self.skipped[url] = "not_allowed_domain"
                continue
            entry = self.page(url)
            # a disallowed page was never requested; anything else was (or would have been, when a
            # transient failure stopped it), so the crawling task and the cache readers count alike
            if not (entry["reason"] or "").startswith("robots_disallowed"):
                self.pages += 1
            if entry["text"]:
                docs.append(Document(url, entry["text"]))
            else:
                self.skipped[url] = entry["reason"] or "no_text"
                if entry["transient"]:
                    self.failed[url] = self.skipped[url]
            queue.extend(link for link in entry["links"] if link not in seen)
        return docs

    def counts(self, docs: list[Document]) -> dict[str, int]:
        """What the crawl did, for the stage's counts: requests sent, pages crawled, pages that
        failed in a way a retry may fix, and documents found."""
        return {"web_requests": len(self.fetched), "web_pages": self.pages, "web_failed": len(self.failed),
                "source_documents": len(docs)}

    def require_documents(self, docs: list[Document]) -> None:
        """Raise ``WebSourceEmpty`` when the crawl found no document: a run grounded in nothing
        must not finish looking fine (a retry of the task fetches the failed pages again)."""
        if docs:
            return
        failed = "; ".join(f"{u}: {why}" for u, why in list(self.failed.items())[:5])
        skipped = "; ".join(f"{u}: {why}" for u, why in list(self.skipped.items())[:5])
        raise WebSourceEmpty(f"source=web found no document in {self.pages} pages from {self.seed_urls} "
                             f"({len(self.failed)} failed: {failed or 'none'}; skipped: {skipped or 'none'})")


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
    (a term unseen before counts from a floor of half a document's share), ties by name. Only a
    term that rose trends: without earlier days, or on a day where nothing rose, there are none
    (the alphabetically first terms of a flat day are not news)."""
    if not earlier:
        return []
    floor = min(today.values(), default=1.0) / 2
    scored = []
    for term, share in today.items():
        before = sum(day.get(term, 0.0) for day in earlier) / len(earlier)
        rise = round(share / max(before, floor), 4)
        if rise > 1.0:
            scored.append((rise, term, share, before))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [{"term": t, "rise": r, "share": s, "share_before": round(b, 6)} for r, t, s, b in scored[:k]]
