"""A small website for the personas crawler tests: one ``Site`` is one host (127.0.0.1 on its own
port), serving replies by path from a table the test may change, and logging every request with
the time it arrived, so a test asserts on what was asked for and when."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    content_type: str = "text/html"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # a slow page: the reply waits this long before its headers


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status, "text/html", b"", {"Location": location})


ARTICLE = ("<html><head><title>{title}</title>{head}</head><body><nav><a href='/index.html'>Home</a></nav>"
           "<article><h1>{title}</h1>{paras}</article>{links}</body></html>")


def page(title: str, sentences: list[str], links: list[str] = (), head: str = "") -> bytes:
    """An HTML article: its sentences as paragraphs, its links in the footer, ``head`` in <head>."""
    paras = "".join(f"<p>{s}</p>" for s in sentences)
    anchors = "".join(f"<a href='{href}'>{href}</a> " for href in links)
    return ARTICLE.format(title=title, head=head, paras=paras, links=f"<footer>{anchors}</footer>").encode()


class Site:
    """One host. ``pages`` maps a path to a ``Reply``, or to a list of them answered in turn (the
    last one repeats: a page that fails once, then works). ``requests`` logs (time, path)."""

    def __init__(self, pages: dict[str, Reply | list[Reply]]):
        self.pages = dict(pages)
        self.requests: list[tuple[float, str]] = []
        self._served: dict[str, int] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                site.requests.append((time.monotonic(), self.path))
                if self.path == "/drip.html":  # headers at once, then a byte every 0.1 s
                    self._drip()
                    return
                reply = site.reply_for(self.path)
                time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _drip(self):
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

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.base = f"http://{self.host}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def reply_for(self, path: str) -> Reply:
        reply = self.pages.get(path, Reply(404, "text/html", b"no"))
        if isinstance(reply, list):
            k = self._served.get(path, 0)
            self._served[path] = k + 1
            reply = reply[min(k, len(reply) - 1)]
        return reply

    def paths(self) -> list[str]:
        return [p for _, p in self.requests]

    def times(self, path: str) -> list[float]:
        return [t for t, p in self.requests if p == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
