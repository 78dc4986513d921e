"""A small OpenAI-compatible chat server on 127.0.0.1 that misbehaves on cue, for retry and
failure tests. Each request takes the next scripted action; when the script is empty it answers
with ``responder(request body)`` if one is set (content-dependent replies for concurrent stages:
its reply text, or a whole body as "raw:<json>"), else with the default reply. Actions: "ok", "429" (with Retry-After), "500", "hang" (sleeps past the client's
timeout), "malformed" (200 with a body that is not JSON), "text:<content>" (answers that content), "raw:<json>" (that whole response body).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultServer:
    def __init__(self, default_reply: str = "Student 1: hello\nStudent 2: hi", retry_after: str = "1",
                 hang_s: float = 5.0, latency_s: float = 0.0):
        self.script: deque[str] = deque()
        self.default_reply, self.retry_after, self.hang_s, self.latency_s = default_reply, retry_after, hang_s, latency_s
        self.responder = None  # body -> reply text
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fault-model"}]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    if server.script:
                        action = server.script.popleft()
                    elif server.responder is not None:
                        reply = server.responder(body)
                        action = reply if reply.startswith("raw:") else "text:" + reply
                    else:
                        action = "ok"
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server._act(self, action, body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, status, payload: bytes, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._handler = Handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _act(self, h, action: str, body: dict) -> None:
        if action == "429":
            h._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": self.retry_after})
        elif action == "500":
            h._send(500, b'{"error": {"message": "boom"}}')
        elif action == "hang":
            time.sleep(self.hang_s)
            h._send(200, self._completion(body, self.default_reply))
        elif action == "malformed":
            h._send(200, b'{"id": "x", "choices": [ this is not json')
        elif action.startswith("raw:"):
            h._send(200, action[4:].encode())
        elif action.startswith("text:"):
            h._send(200, self._completion(body, action[5:]))
        else:
            if self.latency_s:
                time.sleep(self.latency_s)
            h._send(200, self._completion(body, self.default_reply))

    @staticmethod
    def _completion(body: dict, content: str) -> bytes:
        return json.dumps({
            "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fault-model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": max(1, len(content.split())),
                      "total_tokens": 10 + max(1, len(content.split()))},
        }).encode()

    def __enter__(self) -> "FaultServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
