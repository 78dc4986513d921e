"""The web source of the personas method against small HTTP servers on 127.0.0.1 that the tests
start (no internet here or on CI; ``personas_web_site``): robots.txt for every hop and by its
status (RFC 9309), Crawl-delay, noindex, the page and byte caps, content types, a slow page, a
404, the per-host rate limit, the day cache (failures not cached) and bounded passages; then a
whole run whose agents gather from it."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from pydantic import SecretStr

from synth_tasks.config import EndpointConfig
from synth_tasks.inputs import InputError
from synth_tasks.methods.personas import METHOD, sources
from synth_tasks.methods.personas.config import PersonasConfig
from synth_tasks.methods.personas.sources import (PASSAGE_CHARS, Document, PassageIndex, WebFetcher, WebSourceEmpty,
                                                  bounded_pieces, passages)
from synth_tasks.pipeline import run_method
from synth_tasks.storage import RunLayout, Store
from tests.conftest import SAMPLE
from tests.synth_tasks.methods.personas_replies import reply
from tests.synth_tasks.methods.personas_web_site import Reply, Site, page, redirect

BEES = ["Varroa mites are the main threat to honey bee colonies in temperate climates across Europe today.",
        "Beekeepers count mites per hundred bees in late summer and treat their colonies when the count exceeds three.",
        "Oxalic acid treatments work best in winter, when colonies are broodless and mites have nowhere to hide."]
FERRIES = ["The coastal ferry leaves the harbour every hour between six in the morning and ten at night.",
           "In winter storms the ferry company cancels crossings and posts updates at the terminal and online.",
           "Season tickets for commuters cost less per crossing than single tickets bought on board."]
SLOW_S = 2.0

PAGES = {
    "/robots.txt": Reply(200, "text/plain", b"User-agent: *\nDisallow: /private/\n"),
    "/index.html": Reply(200, "text/html; charset=utf-8", page("Bee health", BEES, [
        "/ferries.html", "/private/secret.html", "/slow.html", "/missing.html", "/logo.png", "/notes.txt",
        "/big.html", "http://elsewhere.invalid/page.html"])),
    "/ferries.html": Reply(200, "text/html", page("Ferry timetable", FERRIES, ["/index.html"])),
    "/private/secret.html": Reply(200, "text/html", page("Secret", ["Never to be fetched by a polite crawler."])),
    "/missing.html": Reply(404, "text/html", b"<html><body>Not found</body></html>"),
    "/logo.png": Reply(200, "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
    "/notes.txt": Reply(200, "text/plain", b"Plain notes: swarms issue from strong colonies in May and June."),
    "/big.html": Reply(200, "text/html", page("Big", [f"Sentence {i} about hive inspections." for i in range(3000)])),
    "/slow.html": Reply(200, "text/html", page("Slow", ["Too late."]), delay_s=SLOW_S),
}
DAY = "2026-01-01"


@pytest.fixture
def site():
    s = Site(PAGES)
    yield s
    s.close()


@pytest.fixture
def make_site():
    """More hosts: each a Site on its own port, closed after the test."""
    started: list[Site] = []

    def make(pages: dict) -> Site:
        started.append(Site(pages))
        return started[-1]

    yield make
    for s in started:
        s.close()


def _store(tmp_path) -> Store:
    return Store(f"file://{tmp_path}/stage")


def _fetcher(site, store, day=DAY, **kw):
    args = dict(max_pages=20, max_bytes=4096, rate_limit_s=0.2, timeout_s=0.5) | kw
    return WebFetcher([f"{site.base}/index.html"], store, day, **args)


def _gaps(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in zip(times, times[1:])]


def _local(fetcher, site) -> dict[str, str]:
    return {url.removeprefix(site.base): why for url, why in fetcher.skipped.items()}


def test_the_crawler_keeps_to_robots_types_caps_and_survives_slow_and_missing_pages(site, tmp_path):
    fetcher = _fetcher(site, _store(tmp_path))
    sent: list[float] = []  # when each request left the client (the server's clock adds its threads' jitter)
    opener_open = fetcher._opener.open
    fetcher._opener.open = lambda *a, **kw: (sent.append(time.monotonic()), opener_open(*a, **kw))[1]
    docs = {d.ref.removeprefix(site.base): d.text for d in fetcher.documents()}
    assert "/private/secret.html" not in site.paths()
    assert site.paths().count("/robots.txt") == 1
    assert set(docs) == {"/index.html", "/ferries.html", "/notes.txt", "/big.html"}
    assert "Varroa mites are the main threat" in docs["/index.html"] and "<p>" not in docs["/index.html"]
    assert docs["/notes.txt"].startswith("Plain notes")
    assert len(docs["/big.html"].encode()) <= 4096 < len(PAGES["/big.html"].body)  # the byte cap cut it
    skipped = _local(fetcher, site)
    assert skipped["/private/secret.html"] == f"robots_disallowed: {site.base}/private/secret.html"
    assert skipped["/missing.html"] == "http_status: 404"
    assert skipped["/logo.png"] == "content_type: image/png"
    assert skipped["/slow.html"].startswith("fetch_error") and "timed out" in skipped["/slow.html"]
    assert skipped["http://elsewhere.invalid/page.html"] == "not_allowed_domain"
    assert fetcher.failed == {f"{site.base}/slow.html": skipped["/slow.html"]}  # the one failure a retry may fix
    # one host, one request per rate_limit_s (0.2 s)
    assert len(sent) == len(site.requests) and all(b - a >= 0.19 for a, b in zip(sent, sent[1:])), sent


def test_the_page_cap_holds(site, tmp_path):
    fetcher = _fetcher(site, _store(tmp_path), max_pages=2)
    fetcher.documents()
    assert [p for p in site.paths() if p != "/robots.txt"] == ["/index.html", "/ferries.html"]


def test_redirects_are_followed_only_to_allowed_hosts(site, make_site, tmp_path):
    """An allowed page must not send the worker to a host the deployment did not list (an internal
    service, cloud metadata): urlopen alone would follow the redirect anywhere."""
    internal = make_site(PAGES)  # another host:port on 127.0.0.1, not allowed
    site.pages |= {"/to-internal.html": redirect(f"{internal.base}/index.html"),
                   "/to-ferries.html": redirect("/ferries.html")}
    fetcher = WebFetcher([f"{site.base}/to-internal.html", f"{site.base}/to-ferries.html"], _store(tmp_path), DAY,
                         max_pages=2, rate_limit_s=0.0, timeout_s=2.0)
    docs = {d.ref.removeprefix(site.base): d.text for d in fetcher.documents()}
    assert internal.requests == []
    assert fetcher.skipped[f"{site.base}/to-internal.html"] == "http_status: 302"
    assert "coastal ferry" in docs["/to-ferries.html"]  # a redirect within the allowed host is followed


def test_every_redirect_hop_passes_robots_and_the_rate_limit(site, tmp_path):
    """Issue #25: /go/private.html answered 302 to a page robots.txt disallows, and the crawler
    fetched it 0.00 s later. Each hop is checked against robots.txt and waits for the host's gap."""
    site.pages |= {"/go/private.html": redirect("/private/secret.html"),
                   "/go/ferries.html": redirect("/go/ferries-2.html", 301),
                   "/go/ferries-2.html": redirect(f"{site.base}/ferries.html", 307)}
    fetcher = WebFetcher([f"{site.base}/go/private.html", f"{site.base}/go/ferries.html"], _store(tmp_path), DAY,
                         max_pages=2, rate_limit_s=0.3, timeout_s=2.0)
    docs = {d.ref.removeprefix(site.base): d.text for d in fetcher.documents()}
    assert "/private/secret.html" not in site.paths()
    assert fetcher.skipped[f"{site.base}/go/private.html"] == f"robots_disallowed: {site.base}/private/secret.html"
    assert "coastal ferry" in docs["/go/ferries.html"]
    assert site.paths() == ["/robots.txt", "/go/private.html", "/go/ferries.html", "/go/ferries-2.html",
                            "/ferries.html", "/index.html"]  # the second page: linked from ferries
    assert min(_gaps([t for t, _ in site.requests])) >= 0.25, site.requests  # every hop waited its turn


def test_robots_txt_5xx_or_unreachable_disallows_the_host_and_4xx_allows_it(make_site, tmp_path):
    """RFC 9309 2.3.1: a robots.txt answering 5xx, or not answering, means nothing may be fetched;
    a 4xx (401 and 403 too: "unavailable") means there are no rules."""
    index = Reply(200, "text/html", page("Bees", BEES))
    by_status = {status: make_site({"/robots.txt": Reply(status, "text/plain", b"no"), "/index.html": index})
                 for status in (500, 503, 404, 401, 403)}
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    seeds = [f"{site.base}/index.html" for site in by_status.values()] + [f"http://{dead}/index.html"]
    fetcher = WebFetcher(seeds, _store(tmp_path), DAY, allowed_domains=[s.host for s in by_status.values()] + [dead],
                         max_pages=10, rate_limit_s=0.0, timeout_s=1.0)
    docs = {d.ref for d in fetcher.documents()}
    assert docs == {f"{by_status[status].base}/index.html" for status in (404, 401, 403)}
    for status in (500, 503):
        assert by_status[status].paths() == ["/robots.txt"]
        why = fetcher.skipped[f"{by_status[status].base}/index.html"]
        assert why.startswith("robots_unreachable: ") and f"http_status: {status}" in why
    assert fetcher.skipped[f"http://{dead}/index.html"].startswith("robots_unreachable: ")
    assert set(fetcher.failed) == {f"{by_status[500].base}/index.html", f"{by_status[503].base}/index.html",
                                   f"http://{dead}/index.html"}
    # the host's rules could not be read: a retry the same day asks robots.txt again
    by_status[500].pages["/robots.txt"] = Reply(200, "text/plain", b"User-agent: *\nDisallow:\n")
    again = WebFetcher(seeds[:1], _store(tmp_path), DAY, max_pages=1, rate_limit_s=0.0)
    assert [d.ref for d in again.documents()] == seeds[:1]


def test_crawl_delay_spaces_requests_to_the_host(make_site, tmp_path, monkeypatch):
    """Issue #25: against Crawl-delay: 3 the gap was the rate limit's 1 s. The gap is the longer of
    the two; a Crawl-delay above MAX_CRAWL_DELAY_S is capped."""
    pages = PAGES | {"/robots.txt": Reply(200, "text/plain", b"User-agent: otherbot\nCrawl-delay: 30\n\n"
                                                             b"User-agent: *\nCrawl-delay: 1\n")}
    polite = make_site(pages)
    WebFetcher([f"{polite.base}/index.html"], _store(tmp_path), DAY, max_pages=2, rate_limit_s=0.05).documents()
    assert polite.paths() == ["/robots.txt", "/index.html", "/ferries.html"]
    assert min(_gaps([t for t, _ in polite.requests])) >= 0.9, polite.requests

    monkeypatch.setattr(sources, "MAX_CRAWL_DELAY_S", 0.3)
    greedy = make_site(PAGES | {"/robots.txt": Reply(200, "text/plain", b"User-agent: *\nCrawl-delay: 3600\n")})
    WebFetcher([f"{greedy.base}/index.html"], _store(tmp_path), DAY, max_pages=2, rate_limit_s=0.05).documents()
    gaps = _gaps([t for t, _ in greedy.requests])
    assert len(gaps) == 2 and all(0.25 <= g < 1.0 for g in gaps), gaps


def test_noindex_pages_are_not_sources(make_site, tmp_path):
    """Issue #25: a page with <meta name="robots" content="noindex"> became a source document. The
    X-Robots-Tag header says the same; "none" is noindex and nofollow; a rule for another crawler
    is not ours."""
    site = make_site({
        "/robots.txt": Reply(404),
        "/index.html": Reply(200, "text/html", page("Bees", BEES, [
            "/meta-noindex.html", "/header-noindex.txt", "/meta-none.html", "/other-bot.html"])),
        "/meta-noindex.html": Reply(200, "text/html", page("Draft", ["A draft not to be indexed."], ["/ferries.html"],
                                                           head='<meta name="robots" content="noindex, follow">')),
        "/header-noindex.txt": Reply(200, "text/plain", b"Internal notes.", {"X-Robots-Tag": "noindex"}),
        "/meta-none.html": Reply(200, "text/html", page("Hidden", ["Nothing here."], ["/hidden.html"],
                                                        head='<meta name="ROBOTS" content="none">')),
        "/other-bot.html": Reply(200, "text/html", page("Open", ["Open to us."]),
                                 {"X-Robots-Tag": "otherbot: noindex"}),
        "/ferries.html": Reply(200, "text/html", page("Ferries", FERRIES)),
        "/hidden.html": Reply(200, "text/html", page("Hidden", ["Never asked for."])),
    })
    fetcher = WebFetcher([f"{site.base}/index.html"], _store(tmp_path), DAY, rate_limit_s=0.0)
    docs = {d.ref.removeprefix(site.base) for d in fetcher.documents()}
    assert docs == {"/index.html", "/other-bot.html", "/ferries.html"}  # ferries: linked from a noindex page
    skipped = _local(fetcher, site)
    for path in ("/meta-noindex.html", "/header-noindex.txt", "/meta-none.html"):
        assert skipped[path] == f"noindex: {site.base}{path}"
    assert "/hidden.html" not in site.paths()  # none: not followed either
    assert fetcher.failed == {}


def test_one_task_crawls_and_the_other_shards_read_its_day_cache(make_site, tmp_path):
    """Issue #25: two gather shards crawling one host sent duplicate requests 0.00-0.07 s apart. One
    task crawls (it owns every host: its per-host gap holds for the run); the shards read the day
    cache only (offline) and send nothing, at the same time or not, and agree on the documents."""
    other = make_site({"/robots.txt": Reply(404), "/ferries.html": Reply(200, "text/html", page("Ferries", FERRIES)),
                       "/notes.txt": PAGES["/notes.txt"]})
    home = make_site({"/robots.txt": Reply(404), "/index.html": Reply(200, "text/html", page("Bees", BEES, [
        f"{other.base}/ferries.html", f"{other.base}/notes.txt", "/missing.html"]))})
    store = _store(tmp_path)

    def fetcher(**kw):
        return WebFetcher([f"{home.base}/index.html"], store, DAY, allowed_domains=[home.host, other.host],
                          rate_limit_s=0.3, **kw)

    crawl = fetcher()
    crawled = [d.ref for d in crawl.documents()]
    assert crawled == [f"{home.base}/index.html", f"{other.base}/ferries.html", f"{other.base}/notes.txt"]
    for host in (home, other):  # per host, one request per 0.3 s
        assert min(_gaps([t for t, _ in host.requests])) >= 0.25, host.requests
    sent = len(home.requests) + len(other.requests)
    shards = [fetcher(offline=True) for _ in range(3)]
    found: list[list[str]] = [[] for _ in shards]
    threads = [threading.Thread(target=lambda k=k: found[k].extend(d.ref for d in shards[k].documents()))
               for k in range(len(shards))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(home.requests) + len(other.requests) == sent and all(f == crawled for f in found)
    assert shards[0].skipped == crawl.skipped and shards[0].pages == crawl.pages and shards[0].fetched == []
    # a shard reading a day nobody crawled sends nothing either, and says why it has nothing
    stray = WebFetcher([f"{home.base}/index.html"], store, "2026-01-02", offline=True)
    assert stray.documents() == [] and len(home.requests) + len(other.requests) == sent
    assert stray.failed[f"{home.base}/index.html"].startswith("not_in_day_cache")


def test_a_failed_fetch_is_not_cached_so_a_same_day_retry_fetches_it(make_site, tmp_path):
    """Issue #25: a network error was cached for the whole day, so a retry after a blip fetched
    nothing again. Failures that may pass (a timeout, a 5xx) are retried; a 404 is an answer."""
    site = make_site({
        "/robots.txt": Reply(404),
        "/index.html": Reply(200, "text/html", page("Bees", BEES, ["/flaky.html", "/slow-once.html", "/gone.html"])),
        "/flaky.html": [Reply(503), Reply(200, "text/html", page("Ferries", FERRIES))],
        "/slow-once.html": [Reply(200, "text/plain", b"late", delay_s=1.5), Reply(200, "text/plain", b"Swarm notes.")],
        "/gone.html": Reply(404),
    })
    store = _store(tmp_path)
    first = WebFetcher([f"{site.base}/index.html"], store, DAY, rate_limit_s=0.0, timeout_s=0.5)
    assert [d.ref for d in first.documents()] == [f"{site.base}/index.html"]
    assert _local(first, site)["/flaky.html"] == "http_status: 503"
    assert _local(first, site)["/slow-once.html"].startswith("fetch_error: ")
    assert set(first.failed) == {f"{site.base}/flaky.html", f"{site.base}/slow-once.html"}
    assert first.counts([]) | {"web_requests": 0} == {"web_requests": 0, "web_pages": 4, "web_failed": 2,
                                                       "source_documents": 0}
    seen = len(site.requests)
    retry = WebFetcher([f"{site.base}/index.html"], store, DAY, rate_limit_s=0.0, timeout_s=0.5)
    docs = {d.ref.removeprefix(site.base): d.text for d in retry.documents()}
    assert set(docs) == {"/index.html", "/flaky.html", "/slow-once.html"} and retry.failed == {}
    assert sorted(site.paths()[seen:]) == ["/flaky.html", "/robots.txt", "/slow-once.html"]  # not the 404 again


def test_a_web_source_that_yields_nothing_fails_loudly(make_site, tmp_path):
    """Issue #25: a run whose crawl found nothing finished rc 0 with source_documents 0, the reason
    only in info.web_skipped. ``require_documents`` raises, naming what failed."""
    down = make_site({"/robots.txt": Reply(500), "/index.html": Reply(200, "text/html", page("Bees", BEES))})
    fetcher = WebFetcher([f"{down.base}/index.html"], _store(tmp_path), DAY, rate_limit_s=0.0)
    docs = fetcher.documents()
    with pytest.raises(WebSourceEmpty, match="found no document.*1 failed.*robots_unreachable"):
        fetcher.require_documents(docs)
    fetcher.require_documents([Document("x", "y")])  # something found: nothing to say


def test_passages_are_bounded_at_paragraph_line_sentence_then_word(site, tmp_path):
    """Issue #25: trafilatura separates paragraphs with single newlines, so a page was one passage
    of up to 19,454 characters and the prompts overflowed a 4,096-token context."""
    sentence = "Beekeepers inspect every frame for queen cells before the swarming season starts. "
    lines = [sentence * 2, sentence * 30, "word " * 400 + "end.", "x" * 250, "Short line."]
    text = "\n".join(lines) + "\n\nA last paragraph."
    pieces = bounded_pieces(text, 200)
    assert max(len(p) for p in pieces) <= 200
    assert " ".join(" ".join(pieces).split()) == " ".join(text.replace("x" * 250, "x" * 200 + " " + "x" * 50).split())
    assert pieces[0] == lines[0].strip()  # a line that fits is not cut
    assert all(p.endswith(".") for p in pieces[1:11])  # the long line is cut at sentence ends
    assert pieces[-2:] == ["Short line.", "A last paragraph."]
    # a real page through trafilatura: many passages, none over the bound
    big = WebFetcher([f"{site.base}/big.html"], _store(tmp_path), DAY, max_pages=1, max_bytes=50_000,
                     rate_limit_s=0.0).documents()
    cut = passages(big[0])
    assert len(big[0].text) > 10 * PASSAGE_CHARS and len(cut) > 10
    assert max(len(p.text) for p in cut) <= PASSAGE_CHARS
    assert max(len(p.text) for p in PassageIndex(big, passage_chars=300).passages) <= 300


def test_a_page_that_drips_its_body_times_out_as_a_whole(site, tmp_path):
    """Each byte arrives well within the socket timeout; the page as a whole must not take longer
    than web_timeout_s."""
    fetcher = WebFetcher([f"{site.base}/drip.html"], _store(tmp_path), DAY, rate_limit_s=0.0, timeout_s=0.5)
    started = time.monotonic()
    assert fetcher.documents() == []
    assert time.monotonic() - started < 3.0  # the body alone would take 10 s
    assert fetcher.skipped[f"{site.base}/drip.html"].startswith("fetch_error: timed out")


def test_pages_are_cached_by_day_so_a_backfill_rereads_its_own_day(site, tmp_path):
    store = _store(tmp_path)
    first = {d.ref: d.text for d in _fetcher(site, store, rate_limit_s=0.0).documents()}
    seen = len(site.requests)
    site.pages["/ferries.html"] = Reply(200, "text/html", page("Changed", ["The timetable changed today."]))
    again = {d.ref: d.text for d in _fetcher(site, store, rate_limit_s=0.0).documents()}
    # the same day again: pages come from the cache; only the slow page, which failed, is asked again
    assert again == first and sorted(site.paths()[seen:]) == ["/robots.txt", "/slow.html"]
    next_day = {d.ref: d.text for d in _fetcher(site, store, day="2026-01-02", rate_limit_s=0.0).documents()}
    assert "timetable changed" in next_day[f"{site.base}/ferries.html"]
    assert store.glob(f"{store.root}/_hub/web_cache/{DAY}/*.json")


def test_persona_agents_gather_from_the_web_in_a_run(site, tmp_path, fault_server, monkeypatch):
    source_blocks: list[str] = []

    def web_queries(body):
        content = body["messages"][-1]["content"]
        if "search queries" in content:
            return json.dumps({"topics": ["ferry"], "queries": ["varroa mites colonies", "ferry crossings winter"]})
        if "Sources you gathered" in content:
            source_blocks.append(content.split("Sources you gathered", 1)[1])
        return reply(body)

    fault_server.responder = web_queries
    store = _store(tmp_path)
    cfg = PersonasConfig(source="web", web_seed_urls=[f"{site.base}/index.html"], web_rate_limit_s=0.05,
                           web_timeout_s=0.5, web_max_bytes=4096, max_personas=1, expand_depth=0,
                           templates=["knowledge_text"], embedding_dedup=False)
    endpoint = EndpointConfig(base_url=fault_server.base_url, model="fault-model", api_key=SecretStr("k"))
    layout = RunLayout(store, "personas", DAY)

    def run():
        return run_method(METHOD, cfg, layout, f"file://{SAMPLE}", endpoint_for=lambda c: endpoint,
                          run_info={"run_id": "t", "run_timestamp": "t"})

    # the deployment has not listed the site's host: nothing is fetched
    monkeypatch.delenv("SYNTH_WEB_HOSTS", raising=False)
    with pytest.raises(InputError, match="not in \\$SYNTH_WEB_HOSTS"):
        run()
    assert site.requests == []
    monkeypatch.setenv("SYNTH_WEB_HOSTS", f"example.org,{site.host}")
    results = run()
    summary = store.read_json(results["export"]["summary"])
    assert summary["accounted_for"] and summary["stages"]["filter"]["kept"] == 1
    assert "/private/secret.html" not in site.paths()
    split = "train_jsonl" if summary["counts"]["train"] else "validation_jsonl"
    record = json.loads(store.read_bytes(results["export"][split]).decode().splitlines()[0])
    assert record["sources"] and all(s["ref"].startswith(f"{site.base}/") for s in record["sources"])
    # the prompts carry sources_per_persona (2) bounded passages, not whole pages
    assert source_blocks and all(len(b) < 2 * PASSAGE_CHARS + 200 for b in source_blocks)
    assert summary["info"]["web_skipped"][f"{site.base}/private/secret.html"] == \
        f"robots_disallowed: {site.base}/private/secret.html"


def test_one_task_crawls_for_the_run_and_a_run_with_no_web_document_fails(site, make_site, tmp_path, fault_server,
                                                                          monkeypatch):
    """Issue #25: gather shards crawled one host each (duplicate requests 0.00-0.07 s apart), and a
    run whose crawl found nothing finished rc 0 with source_documents 0. The select task crawls,
    the gather shards read its day cache; a crawl with no document fails the run."""
    def web_queries(body):
        if "search queries" in body["messages"][-1]["content"]:
            return json.dumps({"topics": ["ferry"], "queries": ["varroa mites colonies"]})
        return reply(body)

    fault_server.responder = web_queries
    endpoint = EndpointConfig(base_url=fault_server.base_url, model="fault-model", api_key=SecretStr("k"))

    def run(seed: str, day: str):
        cfg = PersonasConfig(source="web", web_seed_urls=[seed], web_rate_limit_s=0.0, web_timeout_s=0.5,
                             web_max_bytes=4096, web_max_pages=3, max_personas=3, shard_size=1, expand_depth=0,
                             templates=["knowledge_text"], embedding_dedup=False)
        layout = RunLayout(_store(tmp_path / day), "personas", day)  # a store each: a new hub
        return run_method(METHOD, cfg, layout, f"file://{SAMPLE}", endpoint_for=lambda c: endpoint,
                          run_info={"run_id": "t", "run_timestamp": "t"})

    down = make_site({"/robots.txt": Reply(503), "/index.html": Reply(200, "text/html", page("Bees", BEES))})
    monkeypatch.setenv("SYNTH_WEB_HOSTS", f"{site.host},{down.host}")
    run(f"{site.base}/index.html", DAY)
    paths = site.paths()
    assert len(paths) == len(set(paths)), paths  # every request once: robots.txt too, for all the shards
    with pytest.raises(WebSourceEmpty, match="robots_unreachable"):
        run(f"{down.base}/index.html", "2026-01-02")
