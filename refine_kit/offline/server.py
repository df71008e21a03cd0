"""The offline model behind a real loopback HTTP endpoint that speaks OpenAI's chat API.

Point any OpenAI client's `base_url` at `OfflineServer(...).base_url` exactly as at vLLM,
Ollama or OpenAI: requests then cross real sockets, so timeouts, dropped connections,
keep-alive and the crash of a serving process behave as they do in production, while the
answers stay the offline model's deterministic ones. Refusals, rate limits, answers, faults
and payloads come from `profiles`, `ratelimit`, `transport` and `faults`; this module only
adds HTTP. Started with `refine-kit serve` (or `OfflineServer(profile="ollama").start()` in Python):

    refine-kit serve --port 8787 --latency 0.2 --rpm 600 --faults '{"rate": 0.1, "crash_after": 30}'

`limit_headers=False` (`--no-limit-headers`) sends no `x-ratelimit-*` headers while still
enforcing `rpm`/`tpm` with 429 and Retry-After, as many gateways and self-hosted proxies do.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import queue
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from refine_kit.offline.faults import FaultInjector, FaultPlan
from refine_kit.offline.model import OfflineModel
from refine_kit.offline.profiles import ApiError, ServerProfile, profile_named
from refine_kit.offline.ratelimit import RateLimiter
from refine_kit.offline.transport import (
    ModelStats,
    OfflineReply,
    admit_chat,
    answer_chat,
    models_payload,
)

MAX_BODY_BYTES = 16 * 1024 * 1024  # far above any report; stops a runaway upload early
WORKERS = 96  # most requests answered at once; more wait their turn in a queue, never reset
BACKLOG = 1024  # connections the kernel holds before accept() (it caps this at somaxconn)
IDLE_SECONDS = 300  # an idle keep-alive connection is closed after this long


class OfflineServer:
    """A loopback OpenAI-compatible server for the offline model, with its own counters.

    Each server has its own `ModelStats` and `FaultInjector`, so tests running several
    servers (or the in-process transport beside one) never share counts or fault dice.

    Not the standard library's ThreadingHTTPServer: it starts a thread per connection, keeps
    it while the connection idles and listens with a backlog of 5, so bursts of clients got
    connection resets. Here a burst waits in a deep backlog, then in a job queue; idle
    keep-alive connections wait in a selector, costing no thread; at most WORKERS threads
    (started as needed) answer. Threads, not asyncio: the `drop` fault closes a connection
    without answering, which a worker owning its socket can do.
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
        profile: str | ServerProfile = "openai",
        rpm: int | None = None,
        tpm: int | None = None,
        limit_headers: bool = True,
        clock: Callable[[], float] = time.monotonic,
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
        self.profile = profile_named(profile)
        self.model = OfflineModel()
        self.stats = ModelStats()
        self.injector = FaultInjector(faults or FaultPlan())
        self.limiter = RateLimiter(rpm, tpm, clock=clock, fixed=self.profile.rate_limits)
        self.limit_headers = limit_headers  # False: x-ratelimit-* never leave this server
        # Binding here, not in start(), resolves port 0 so base_url is known immediately.
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))  # no getfqdn (a DNS query), unlike HTTPServer
            self._socket.listen(BACKLOG)
        except OSError:
            self._socket.close()
            raise
        self._socket.setblocking(False)
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{self._socket.getsockname()[1]}/v1"
        self._jobs: queue.SimpleQueue[_Handler | None] = queue.SimpleQueue()
        self._selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()  # workers and stop() wake the loop
        for end in (self._socket, self._wake_in, self._wake_out):
            end.setblocking(False)
        self._lock = threading.Lock()  # guards the fields below, up to _idle
        self._returned: list[_Handler] = []  # served, kept alive: back to the selector
        self._busy: set[_Handler] = set()  # queued or being served: cut on stop
        self._stopping = self._running = False
        self._workers = self._free_workers = 0  # started; waiting for a job
        self._idle: set[_Handler] = set()  # in the selector (the loop's thread only)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    def serve_forever(self) -> None:
        """Serve until `stop()` (from another thread) or Ctrl-C; used by the CLI.

        New and idle connections wait in the selector; one with bytes goes to a worker,
        which hands it back after answering."""
        with self._lock:
            if self._stopping or self._running:
                return
            self._running = True
        self._started.set()
        self._selector.register(self._socket, selectors.EVENT_READ)
        self._selector.register(self._wake_in, selectors.EVENT_READ)
        swept = time.monotonic()
        try:
            while not self._stopping:
                for key, _ in self._selector.select(timeout=1.0):
                    if key.fileobj is self._socket:
                        self._accept()
                    elif key.fileobj is self._wake_in:
                        with contextlib.suppress(OSError):
                            self._wake_in.recv(4096)
                    else:
                        self._dispatch(key.data)
                with self._lock:
                    returned, self._returned = self._returned, []
                for conn in returned:
                    self._watch(conn)
                if time.monotonic() - swept > 1:
                    swept = time.monotonic()
                    for conn in [c for c in self._idle if c.idle_since < swept - IDLE_SECONDS]:
                        self._unwatch(conn)
                        conn.hang_up()
        finally:
            self._close_all()

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
        with self._lock:
            self._stopping = True
            running = self._running
        if running:  # the loop closes everything; wait for it, briefly
            self._wake()
            self._closed.wait(timeout=2)
        else:
            self._close_all()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> OfflineServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data (`GET /refine-kit/stats`): `requests` counts what
        reached the model, `statuses` every other response (429s too), `rate_limits` (if set)."""
        answers = {"answers": self.injector.answers, "profile": self.profile.name}
        limits = self.limiter.snapshot()
        return self.stats.snapshot() | answers | ({"rate_limits": limits} if limits else {})

    def log(self, line: str) -> None:
        """One line to stderr, only when verbose. Callers never pass headers."""
        if self.verbose:
            sys.stderr.write(f"refine_kit server: {line}\n")
            sys.stderr.flush()

    def _accept(self) -> None:
        while True:  # take the whole burst the kernel queued
            try:
                sock, address = self._socket.accept()
            except OSError as exc:  # none left; or out of descriptors: retry on the next event
                if not isinstance(exc, BlockingIOError | InterruptedError):
                    self.log(f"accept failed: {type(exc).__name__}")
                return
            self._watch(_Handler(sock, address, self))

    def _watch(self, conn: _Handler) -> None:
        self._selector.register(conn.connection, selectors.EVENT_READ, conn)
        self._idle.add(conn)

    def _unwatch(self, conn: _Handler) -> None:
        self._selector.unregister(conn.connection)
        self._idle.discard(conn)

    def _dispatch(self, conn: _Handler) -> None:
        """A watched connection has bytes (or hung up): a worker takes it from here."""
        self._unwatch(conn)
        with self._lock:
            self._busy.add(conn)
            spawn = self._free_workers <= 0 and self._workers < WORKERS
            if spawn:
                self._workers += 1
            else:  # a waiting worker takes it (all busy: the next one free)
                self._free_workers -= 1
        if spawn:
            name = f"refine-kit-worker-{self._workers}-{self.base_url}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        self._jobs.put(conn)

    def _work(self) -> None:
        while (conn := self._jobs.get()) is not None:
            keep = False
            try:
                keep = conn.serve_arrived()
            except Exception as exc:  # the client vanished mid-request: normal, never fatal
                self.log(f"connection error: {type(exc).__name__}")
            with self._lock:
                self._busy.discard(conn)
                self._free_workers += 1
                keep = keep and not self._stopping
                if keep:
                    self._returned.append(conn)
            if keep:
                self._wake()
            else:
                conn.hang_up()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full or closed: a wake-up is pending anyway
            self._wake_out.send(b"!")

    def _close_all(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._stopping = True
            idle, self._idle = [*self._idle, *self._returned], set()
            self._returned, busy, workers = [], list(self._busy), self._workers
        for conn in idle:
            conn.hang_up()
        for conn in busy:  # a worker holds it: make its reads and writes fail at once
            with contextlib.suppress(OSError):
                conn.connection.shutdown(socket.SHUT_RDWR)
        for _ in range(workers):
            self._jobs.put(None)
        for sock in (self._socket, self._wake_in, self._wake_out):
            sock.close()
        self._selector.close()
        self._closed.set()


class _Handler(BaseHTTPRequestHandler):
    """One client connection, over its life: its buffered reader persists between requests.

    HTTP/1.1 with keep-alive; JSON responses carry a Content-Length, streams are chunked.
    """

    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a started request may take to arrive (idle waits cost nothing)
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stalls

    def __init__(self, sock: socket.socket, address: Any, owner: OfflineServer) -> None:
        # Not super().__init__(), which would serve the whole connection at once: workers
        # call handle_one_request() as requests arrive, and idle connections hold no thread.
        self.request, self.client_address, self.owner = sock, address, owner
        self.close_connection = True
        self.idle_since = time.monotonic()
        self.setup()

    def serve_arrived(self) -> bool:
        """Answer the requests that have arrived; True if the connection stays open."""
        while True:
            self.handle_one_request()
            if self.close_connection:
                return False
            if not self._pipelined():
                self.idle_since = time.monotonic()
                return True

    def _pipelined(self) -> bool:
        """Whether another request already waits: bytes read ahead into our buffer never
        wake the selector, so look before handing the connection back."""
        if not isinstance(self.rfile, io.BufferedReader):
            return False
        self.connection.settimeout(0.0)  # peek must not block: an empty socket reads as b""
        try:
            return bool(self.rfile.peek(1))
        except OSError:
            return False
        finally:
            self.connection.settimeout(self.timeout)

    def hang_up(self) -> None:
        with contextlib.suppress(OSError):
            self.finish()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)  # a FIN: a dropped request reads as EOF
        self.connection.close()

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
        self.owner.log(f"{self.command} {path} {status} {ms:.0f}ms{self._note}")

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
            return self._send(200, self.owner.snapshot())
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
        """One chat completion: the profile's checks, rate limits, faults, the model's answer."""
        owner = self.owner
        chat = admit_chat(raw, owner.profile, owner.limiter)
        if isinstance(chat, OfflineReply):  # refused before the model saw it: not a call
            return self._send(chat.status, chat.payload, chat.headers)
        body, ticket = chat
        owner.stats.enter()
        usage = (0, 0)
        try:
            reply = answer_chat(owner.model, owner.injector, body, owner.stats, owner.profile)
            reply.headers |= ticket.headers  # the limiter's real state over any fixed values
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
            owner.limiter.settle(ticket, usage[1])  # the unused output reservation goes back
        status = (
            self._stream(reply) if reply.stream else self._send(200, reply.payload, reply.headers)
        )
        owner.injector.answered()  # may SIGKILL this process (crash_after): intended
        return status

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> int:
        data = json.dumps(payload).encode()
        framing = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        return self._write(status, framing | (headers or {}), [data])

    def _stream(self, reply: OfflineReply) -> int:
        """Server-sent events, one HTTP chunk each, as OpenAI streams a completion."""
        framing = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        chunks = [b"%x\r\n%b\r\n" % (len(event), event) for event in reply.events()]
        headers = framing | {"Transfer-Encoding": "chunked"} | reply.headers
        return self._write(200, headers, [*chunks, b"0\r\n\r\n"])

    def _write(self, status: int, headers: dict[str, str], parts: list[bytes]) -> int:
        self.send_response(status)
        for name, value in headers.items():
            if self.owner.limit_headers or not name.lower().startswith("x-ratelimit-"):
                self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.owner.stats.count_status(status)  # before writing: a client that has the answer
        for part in parts:  # must find it counted
            self.wfile.write(part)
        return status

    def _fail(self, status: int, message: str, kind: str = "invalid_request_error") -> int:
        return self._send(status, self.owner.profile.error_body(ApiError(status, message, kind)))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors in the profile's JSON shape too (the stdlib would send HTML)."""
        self.close_connection = True  # the rest of the stream cannot be trusted
        self._fail(code, message or HTTPStatus(code).phrase)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # do_GET logs one line per request itself, with timing and any fault

    def log_message(self, fmt: str, *args: Any) -> None:
        self.owner.log(fmt % args)  # stdlib messages: request line, never headers


def _is_loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    return False  # any other name could resolve anywhere
