"""The offline model behind a real loopback HTTP endpoint that speaks OpenAI's chat API.

Point any OpenAI client's `base_url` at `OfflineServer(...).base_url` exactly as at vLLM,
Ollama or OpenAI: requests then cross real sockets, so timeouts, dropped connections,
keep-alive and the crash of a serving process behave as they do in production, while the
answers stay the offline model's deterministic ones. Answers, fault decisions and the
payload shapes come from `transport` and `faults`; this module only adds HTTP. It is started
with `refine-kit serve` (or `OfflineServer(...).start()` in Python):

    refine-kit serve --port 8787 --latency 0.2 --faults '{"rate": 0.1, "crash_after": 30}'
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from refine_kit.offline.faults import FaultInjector, FaultPlan
from refine_kit.offline.model import OfflineModel
from refine_kit.offline.transport import (
    ModelStats,
    answer_chat,
    error_payload,
    models_payload,
)

MAX_BODY_BYTES = 16 * 1024 * 1024  # far above any report; stops a runaway upload early


class OfflineServer:
    """A loopback OpenAI-compatible server for the offline model, with its own counters.

    Each server has its own `ModelStats` and `FaultInjector`, so tests running several
    servers (or the in-process transport beside one) never share counts or fault dice.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        verbose: bool = False,
        allow_remote: bool = False,
    ) -> None:
        if not allow_remote and not _is_loopback(host):
            raise ValueError(
                f"host {host!r} is not a loopback address; the offline server is for local "
                "use (bind 127.0.0.1, or pass allow_remote=True to expose it on purpose)"
            )
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency}")
        self.latency = latency
        self.verbose = verbose
        self.model = OfflineModel()
        self.stats = ModelStats()
        self.injector = FaultInjector(faults or FaultPlan())
        # Binding here, not in start(), resolves port 0 so base_url is known immediately.
        self._httpd = _HTTPServer(host, port, self)
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{self._httpd.server_address[1]}/v1"
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopped = False

    def serve_forever(self) -> None:
        """Serve until `stop()` (from another thread) or Ctrl-C; used by the CLI."""
        self._started.set()
        # A short poll interval keeps stop() fast; the default 0.5 s adds up across tests.
        self._httpd.serve_forever(poll_interval=0.05)

    def start(self) -> OfflineServer:
        """Serve from a daemon thread; the socket already listens, so requests queue at once."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever, name=f"refine-kit-server-{self.base_url}", daemon=True
            )
            self._thread.start()
            self._started.wait()
        return self

    def stop(self) -> None:
        """Stop accepting, close the listening socket and cut open keep-alive connections."""
        if self._stopped:
            return
        self._stopped = True
        if self._started.is_set():  # shutdown() would wait forever for a loop never started
            self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> OfflineServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data (what `GET /refine-kit/stats` returns)."""
        s = self.stats
        return {
            "requests": s.calls,
            "in_flight": s.in_flight,
            "max_in_flight": s.max_in_flight,
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "answers": self.injector.answers,
            "injected": dict(self.stats.injected),
        }

    def log(self, line: str) -> None:
        """One line to stderr, only when verbose. Callers never pass headers."""
        if self.verbose:
            sys.stderr.write(f"refine_kit server: {line}\n")
            sys.stderr.flush()


class _HTTPServer(ThreadingHTTPServer):
    """The standard library's threaded server, chosen over an ASGI one on purpose.

    The `drop` fault must close a connection without sending any response, which ASGI
    servers do not allow an app to do; a handler thread owns its socket and can.
    """

    daemon_threads = True  # a handler stalled by a `slow` fault never blocks exit
    block_on_close = False

    def __init__(self, host: str, port: int, owner: OfflineServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host up with getfqdn (a DNS query); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections, so a stopped server answers nothing more."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (its timeout fired) is normal here, not a crash.
        self.owner.log(f"connection error: {type(sys.exc_info()[1]).__name__}")


class _Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 with keep-alive, every response with a Content-Length."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 300  # seconds an idle keep-alive connection may hold its thread
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stalls

    def do_GET(self) -> None:
        started = time.monotonic()
        path = self.path.split("?", 1)[0].rstrip("/")  # query strings may hold keys: never log
        self._note = ""
        try:
            status = self._route(path)
        except OSError:  # the client hung up before the answer was written
            self.close_connection = True
            status = "gone"
        except Exception as exc:  # an input the model cannot read: say so and stay up
            status = self._fail(500, f"Offline model error: {type(exc).__name__}", "server_error")
        ms = (time.monotonic() - started) * 1000
        self.server.owner.log(f"{self.command} {path} {status} {ms:.0f}ms{self._note}")

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _route(self, path: str) -> int | str:
        body = self._read_body()
        if body is None:
            return "rejected"
        route = (self.command, path)
        if route == ("POST", "/v1/chat/completions"):
            return self._chat(body)
        if route == ("GET", "/v1/models"):
            return self._send(200, models_payload())
        if route == ("GET", "/refine-kit/stats"):
            return self._send(200, self.server.owner.snapshot())
        return self._fail(404, f"Invalid URL ({self.command} {path})")

    def _read_body(self) -> bytes | None:
        """The request body, or None after refusing an unreadable one (and closing)."""
        length = self.headers.get("Content-Length") or "0"
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or not length.isdigit():
            self.send_error(411, "Send the body with a valid Content-Length (no chunking)")
            return None
        if int(length) > MAX_BODY_BYTES:
            self.send_error(413, f"The request body is over {MAX_BODY_BYTES} bytes")
            return None
        return self.rfile.read(int(length))

    def _chat(self, raw: bytes) -> int | str:
        """One chat completion: the fault plan first, then the offline model's answer."""
        owner = self.server.owner
        body = _parse_chat(raw)
        if isinstance(body, str):
            return self._fail(400, body)
        owner.stats.enter()
        usage = (0, 0)
        try:
            reply = answer_chat(owner.model, owner.injector, body, owner.stats)
            usage = reply.usage
            self._note = f" step={reply.step}" + (f" fault={reply.fault}" if reply.fault else "")
            if reply.drop:  # no status line, no headers: the client sees a disconnect
                self.close_connection = True
                return "dropped"
            if reply.status != 200:
                return self._send(reply.status, reply.payload, reply.headers)
            # The client's own timeout should fire during a stall; the latency is the whole
            # response time, the model's own work included.
            time.sleep(reply.stall + max(0.0, owner.latency - reply.work_seconds))
        finally:
            owner.stats.leave(*usage)
        status = self._send(200, reply.payload)
        owner.injector.answered()  # may SIGKILL this process (crash_after): intended
        return status

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> int:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        return status

    def _fail(self, status: int, message: str, kind: str = "invalid_request_error") -> int:
        return self._send(status, error_payload(message, kind))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors in OpenAI's JSON shape too (the stdlib would send HTML)."""
        self.close_connection = True  # the rest of the stream cannot be trusted
        self._fail(code, message or HTTPStatus(code).phrase)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # do_GET logs one line per request itself, with timing and any fault

    def log_message(self, fmt: str, *args: Any) -> None:
        self.server.owner.log(fmt % args)  # stdlib messages: request line, never headers


def _parse_chat(raw: bytes) -> dict | str:
    """The chat request body, or why it cannot be answered (the SDK never sends these)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return "The request body is not valid JSON"
    if not isinstance(body, dict):
        return "The request body must be a JSON object"
    if body.get("stream"):
        return "stream=true is not supported by the refine_kit offline server; set stream=false"
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "'messages' must be a list of {'role', 'content'} objects"
    if not isinstance(body.get("response_format") or {}, dict):
        return "'response_format' must be an object such as {'type': 'json_object'}"
    return body


def _is_loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    return False  # any other name could resolve anywhere
