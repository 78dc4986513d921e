"""An OpenAI-compatible endpoint that answers every chat completion at once with a canned reply,
so a benchmark measures the client's own overhead.

    python bench/instant_server.py PORT                  # serve
    python bench/instant_server.py PORT --record FILE    # serve, and append every request to FILE

With ``--record`` each request is one JSON line, ``{"method", "path", "headers", "body"}`` (header
names lower-cased, the body parsed as JSON): what tells whether two clients sent the same requests
(tests/bench/test_bench.py compares the pipeline's with the bare SDK's)."""

from __future__ import annotations

import argparse
import asyncio
import json

BODY = json.dumps({
    "id": "chatcmpl-instant", "object": "chat.completion", "created": 0, "model": "instant",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Teacher: Hi.\nStudent: Hello."}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
}).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def recorded(head: bytes, body: bytes) -> str:
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = dict(line.split(":", 1) for line in header_lines if ":" in line)
    return json.dumps({"method": method, "path": path,
                       "headers": {k.strip().lower(): v.strip() for k, v in headers.items()},
                       "body": json.loads(body) if body else None}, sort_keys=True)


def handler(record):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                if record is not None:
                    record.write(recorded(head[:-4], body) + "\n")
                    record.flush()
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        finally:
            writer.close()

    return handle


async def main(port: int, record_path: str | None) -> None:
    record = open(record_path, "a", encoding="utf-8") if record_path else None  # noqa: SIM115 - lives as long as the server
    server = await asyncio.start_server(handler(record), "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("--record", metavar="FILE", help="append every request (headers and JSON body) to FILE")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.record))
