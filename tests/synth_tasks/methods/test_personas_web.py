"""The web source of the personas method against a small HTTP server on 127.0.0.1 (no internet
here or on CI): robots.txt, the page and byte caps, content types, a slow page, a 404, the per-host
rate limit and the cache by date and URL; then a whole run whose agents gather from it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from synth_tasks.config import EndpointConfig
from synth_tasks.inputs import InputError
from synth_tasks.methods.personas import METHOD
from synth_tasks.methods.personas.config import PersonasConfig
from synth_tasks.methods.personas.sources import WebFetcher
from synth_tasks.pipeline import run_method
from synth_tasks.storage import RunLayout, Store
from tests.conftest import SAMPLE
from tests.synth_tasks.methods.personas_replies import reply

ARTICLE = ("<html><head><title>{title}</title></head><body><nav><a href='/index.html'>Home</a></nav>"
           "<article><h1>{title}</h1>{paras}</article>{links}</body></html>")
PARA = "<p>{}</p>"


def _page(title: str, sentences: list[str], links: list[str] = ()) -> bytes:
    paras = "".join(PARA.format(s) for s in sentences)
    anchors = "".join(f"<a href='{href}'>{href}</a> " for href in links)
    return ARTICLE.format(title=title, paras=paras, links=f"<footer>{anchors}</footer>").encode()


BEES = ["Varroa mites are the main threat to honey bee colonies in temperate climates across Europe today.",
        "Beekeepers count mites per hundred bees in late summer and treat their colonies when the count exceeds three.",
        "Oxalic acid treatments work best in winter, when colonies are broodless and mites have nowhere to hide."]
FERRIES = ["The coastal ferry leaves the harbour every hour between six in the morning and ten at night.",
           "In winter storms the ferry company cancels crossings and posts updates at the terminal and online.",
           "Season tickets for commuters cost less per crossing than single tickets bought on board."]

PAGES = {
    "/robots.txt": (200, "text/plain", b"User-agent: *\nDisallow: /private/\n"),
    "/index.html": (200, "text/html; charset=utf-8", _page("Bee health", BEES, [
        "/ferries.html", "/private/secret.html", "/slow.html", "/missing.html", "/logo.png", "/notes.txt",
        "/big.html", "http://elsewhere.invalid/page.html"])),
    "/ferries.html": (200, "text/html", _page("Ferry timetable", FERRIES, ["/index.html"])),
    "/private/secret.html": (200, "text/html", _page("Secret", ["Never to be fetched by a polite crawler."])),
    "/missing.html": (404, "text/html", b"<html><body>Not found</body></html>"),
    "/logo.png": (200, "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
    "/notes.txt": (200, "text/plain", b"Plain notes: swarms issue from strong colonies in May and June."),
    "/big.html": (200, "text/html", _page("Big", [f"Sentence {i} about hive inspections." for i in range(3000)])),
}
SLOW_S = 2.0


class Site:
    def __init__(self):
        self.requests: list[tuple[float, str]] = []
        self.redirects: dict[str, str] = {}  # path -> Location of a 302
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                site.requests.append((time.monotonic(), self.path))
                if self.path in site.redirects:
                    self.send_response(302)
                    self.send_header("Location", site.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path == "/drip.html":  # headers at once, then a byte every 0.1 s
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    try:
                        for _ in range(100):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(0.1)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                if self.path == "/slow.html":
                    time.sleep(SLOW_S)
                    status, ctype, body = 200, "text/html", _page("Slow", ["Too late."])
                else:
                    status, ctype, body = PAGES.get(self.path, (404, "text/html", b"no"))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [p for _, p in self.requests]


@pytest.fixture
def site():
    s = Site()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _fetcher(site, store, day="2026-01-01", **kw):
    args = dict(max_pages=20, max_bytes=4096, rate_limit_s=0.2, timeout_s=0.5) | kw
    return WebFetcher([f"{site.base}/index.html"], store, day, **args)


def test_the_crawler_keeps_to_robots_types_caps_and_survives_slow_and_missing_pages(site, tmp_path):
    store = Store(f"file://{tmp_path}/stage")
    fetcher = _fetcher(site, store)
    sent: list[float] = []  # when each request left the client (the server's clock adds its threads' jitter)
    opener_open = fetcher._opener.open
    fetcher._opener.open = lambda *a, **kw: (sent.append(time.monotonic()), opener_open(*a, **kw))[1]
    docs = {d.ref.removeprefix(site.base): d.text for d in fetcher.documents()}
    assert "/private/secret.html" not in site.paths()
    assert site.paths().count("/robots.txt") == 1
    assert set(docs) == {"/index.html", "/ferries.html", "/notes.txt", "/big.html"}
    assert "Varroa mites are the main threat" in docs["/index.html"] and "<p>" not in docs["/index.html"]
    assert docs["/notes.txt"].startswith("Plain notes")
    assert len(docs["/big.html"].encode()) <= 4096 < len(PAGES["/big.html"][2])  # the byte cap cut it
    skipped = {url.removeprefix(site.base): why for url, why in fetcher.skipped.items()}
    assert skipped["/private/secret.html"] == "robots_disallowed"
    assert skipped["/missing.html"] == "http_status: 404"
    assert skipped["/logo.png"] == "content_type: image/png"
    assert skipped["/slow.html"].startswith("fetch_error") and "timed out" in skipped["/slow.html"]
    assert skipped["http://elsewhere.invalid/page.html"] == "not_allowed_domain"
    # one host, one request per rate_limit_s (0.2 s)
    assert len(sent) == len(site.requests) and all(b - a >= 0.19 for a, b in zip(sent, sent[1:])), sent


def test_the_page_cap_holds(site, tmp_path):
    fetcher = _fetcher(site, Store(f"file://{tmp_path}/stage"), max_pages=2)
    fetcher.documents()
    assert [p for p in site.paths() if p != "/robots.txt"] == ["/index.html", "/ferries.html"]


def test_redirects_are_followed_only_to_allowed_hosts(site, tmp_path):
    """An allowed page must not send the worker to a host the deployment did not list (an internal
    service, cloud metadata): urlopen alone would follow the redirect anywhere."""
    internal = Site()  # another host:port on 127.0.0.1, not allowed
    try:
        site.redirects = {"/to-internal.html": f"{internal.base}/index.html", "/to-ferries.html": "/ferries.html"}
        store = Store(f"file://{tmp_path}/stage")
        fetcher = WebFetcher([f"{site.base}/to-internal.html", f"{site.base}/to-ferries.html"], store, "2026-01-01",
                             max_pages=2, rate_limit_s=0.0, timeout_s=2.0)
        docs = {d.ref.removeprefix(site.base): d.text for d in fetcher.documents()}
        assert internal.requests == []
        assert fetcher.skipped[f"{site.base}/to-internal.html"] == "http_status: 302"
        assert "coastal ferry" in docs["/to-ferries.html"]  # a redirect within the allowed host is followed
    finally:
        internal.httpd.shutdown()
        internal.httpd.server_close()


def test_a_page_that_drips_its_body_times_out_as_a_whole(site, tmp_path):
    """Each byte arrives well within the socket timeout; the page as a whole must not take longer
    than web_timeout_s."""
    fetcher = WebFetcher([f"{site.base}/drip.html"], Store(f"file://{tmp_path}/stage"), "2026-01-01",
                         rate_limit_s=0.0, timeout_s=0.5)
    started = time.monotonic()
    assert fetcher.documents() == []
    assert time.monotonic() - started < 3.0  # the body alone would take 10 s
    assert fetcher.skipped[f"{site.base}/drip.html"].startswith("fetch_error: timed out")


def test_pages_are_cached_by_day_so_a_backfill_rereads_its_own_day(site, tmp_path):
    store = Store(f"file://{tmp_path}/stage")
    first = {d.ref: d.text for d in _fetcher(site, store).documents()}
    seen = len(site.requests)
    PAGES["/ferries.html"], original = (200, "text/html", _page("Changed", ["The timetable changed today."])), \
        PAGES["/ferries.html"]
    try:
        again = {d.ref: d.text for d in _fetcher(site, store).documents()}
        # the same day again: pages come from the cache (only robots.txt is asked, for the disallowed link)
        assert again == first and set(site.paths()[seen:]) <= {"/robots.txt"}
        next_day = {d.ref: d.text for d in _fetcher(site, store, day="2026-01-02").documents()}
        assert "timetable changed" in next_day[f"{site.base}/ferries.html"]
    finally:
        PAGES["/ferries.html"] = original
    assert store.glob(f"{store.root}/_hub/web_cache/2026-01-01/*.json")


def test_persona_agents_gather_from_the_web_in_a_run(site, tmp_path, fault_server, monkeypatch):
    def web_queries(body):
        if "search queries" in body["messages"][-1]["content"]:
            return json.dumps({"topics": ["ferry"], "queries": ["varroa mites colonies", "ferry crossings winter"]})
        return reply(body)

    fault_server.responder = web_queries
    store = Store(f"file://{tmp_path}/stage")
    cfg = PersonasConfig(source="web", web_seed_urls=[f"{site.base}/index.html"], web_rate_limit_s=0.05,
                           web_timeout_s=0.5, web_max_bytes=4096, max_personas=1, expand_depth=0,
                           templates=["knowledge_text"], embedding_dedup=False)
    endpoint = EndpointConfig(base_url=fault_server.base_url, model="fault-model", api_key=SecretStr("k"))
    layout = RunLayout(store, "personas", "2026-01-01")

    def run():
        return run_method(METHOD, cfg, layout, f"file://{SAMPLE}", endpoint_for=lambda c: endpoint,
                          run_info={"run_id": "t", "run_timestamp": "t"})

    # the deployment has not listed the site's host: nothing is fetched
    monkeypatch.delenv("SYNTH_WEB_HOSTS", raising=False)
    with pytest.raises(InputError, match="not in \\$SYNTH_WEB_HOSTS"):
        run()
    assert site.requests == []
    monkeypatch.setenv("SYNTH_WEB_HOSTS", f"example.org,{site.base.removeprefix('http://')}")
    results = run()
    summary = store.read_json(results["export"]["summary"])
    assert summary["accounted_for"] and summary["stages"]["filter"]["kept"] == 1
    assert "/private/secret.html" not in site.paths()
    split = "train_jsonl" if summary["counts"]["train"] else "validation_jsonl"
    record = json.loads(store.read_bytes(results["export"][split]).decode().splitlines()[0])
    assert record["sources"] and all(s["ref"].startswith(f"{site.base}/") for s in record["sources"])
    assert summary["info"]["web_skipped"][f"{site.base}/private/secret.html"] == "robots_disallowed"
