"""A loopback endpoint that answers as a broken, hostile or quirky server would.

The offline server answers like a healthy OpenAI-compatible server; this stub answers
however a test tells it to (an HTML page, `choices: []`, a 401 that echoes the key, a
server that never answers), and counts what it received, so tests check the kit's
behaviour from outside: requests at the server, files on disk, what the terminal shows.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One HTTP answer."""

    status: int = 200
    body: bytes | dict[str, Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a hung server)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode(), "application/json"
        return self.body, self.headers.get("content-type", "text/plain")


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


Responder = Callable[[Received, int], Reply]


def completion(content: str | None, finish_reason: str = "stop", **usage: int) -> Reply:
    """A well-formed chat completion."""
    counts = {"prompt_tokens": 10, "completion_tokens": 20, **usage}
    counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "message": message, "finish_reason": finish_reason}
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "stub-model",
        "choices": [choice],
        "usage": counts,
    }
    return Reply(body=body)


def error(status: int, message: str, code: str | None = None, **headers: str) -> Reply:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return Reply(status=status, body=body, headers=headers)


class StubEndpoint:
    """Serves `respond(request, n)` for the n-th request (1-based) on 127.0.0.1."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.received: list[Received] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                seen = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with stub._lock:
                    stub.received.append(seen)
                    n = len(stub.received)
                reply = stub.respond(seen, n)
                if reply.delay:
                    time.sleep(reply.delay)
                payload, content_type = reply.encoded()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(payload)))
                    for name, value in reply.headers.items():
                        if name != "content-type":
                            self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (its timeout fired)

            do_GET = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def requests(self) -> int:
        return len(self.received)

    def __enter__(self) -> StubEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
