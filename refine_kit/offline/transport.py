"""The offline model served as an HTTP transport under `openai.AsyncOpenAI`.

Offline runs therefore go through the real SDK: request building, JSON mode, response
parsing, retries and usage accounting are the same code paths a real endpoint uses. There is
no "mock mode" branch anywhere in the pipeline.

`read_chat` (or `admit_chat`, which adds rate limits) and `answer_chat` are the back-end the
loopback server shares: what a server refuses before any model work, then the answer as a
`ServerProfile`'s server gives it (token cap, `finish_reason`, rate-limit headers, streamed
chunks).

`offline_stats` counts, for the whole process, what every offline transport received: a
real server's counters outlive each client too, and notebooks, tests and benchmarks read
them to show what the "server" saw (`refine_kit.reset()` zeroes them). A transport is made
per run, with its own fault injector, so a fault plan counts from zero in every run.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx2

from refine_kit.offline.faults import FaultInjector, FaultPlan, corrupt_critique
from refine_kit.offline.model import OfflineModel, count_tokens
from refine_kit.offline.profiles import (
    OPENAI,
    SERVED_MODELS,
    ApiError,
    ServerProfile,
    check_chat,
    profile_named,
    prompt_tokens,
    requested_limit,
)
from refine_kit.offline.ratelimit import RateLimiter, Ticket

STREAM_PIECE_CHARS = 256  # content per streamed chunk: a few chunks for a report


@dataclass
class ModelStats:
    """What the model saw, counted where the work happens (not where the pipeline thinks it does).

    Tests and benchmarks read these numbers to check the in-flight limit and the number of
    calls actually paid for.
    """

    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    injected: dict[str, int] = field(default_factory=dict)  # faults by kind
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP responses by status code
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self) -> None:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] = self.injected.get(kind, 0) + 1

    def count_status(self, status: int) -> None:
        with self._lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def leave(self, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        with self._lock:
            self.in_flight -= 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data; `statuses` counts responses by status code."""
        with self._lock:
            return {
                "requests": self.calls,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "injected": dict(self.injected),
                "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
            }

    def reset(self) -> None:
        with self._lock:
            self.calls = self.in_flight = self.max_in_flight = 0
            self.prompt_tokens = self.completion_tokens = 0
            self.injected = {}
            self.statuses = {}


#: Every offline transport in this process counts here: what a server would count, for tests,
#: benchmarks and notebooks (`refine_kit.reset()` zeroes it).
offline_stats = ModelStats()


def completion_payload(
    model: str, content: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """A `chat.completion` object shaped exactly like the OpenAI API's."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def run_offline_chat(model: OfflineModel, body: dict[str, Any]) -> dict[str, Any]:
    """Answer one `/chat/completions` request body with the offline model."""
    answer = model.complete(body.get("messages", []), json_mode=is_json_mode(body))
    return completion_payload(
        body.get("model", ""), answer.content, answer.prompt_tokens, answer.completion_tokens
    )


def is_json_mode(body: dict[str, Any]) -> bool:
    return (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")


def stream_events(payload: dict[str, Any], include_usage: bool = False) -> list[bytes]:
    """A completion as OpenAI streams it: server-sent `chat.completion.chunk` events.

    The role first, the content in a few pieces, an empty delta with the finish reason,
    then (only if asked, as OpenAI does) a chunk with the usage and no choices, and `[DONE]`.
    """
    choice = payload["choices"][0]
    content = choice["message"]["content"] or ""
    head = {k: payload[k] for k in ("id", "created", "model")}
    head |= {"object": "chat.completion.chunk", "system_fingerprint": None}
    tail = {"usage": None} if include_usage else {}  # OpenAI's chunks say usage: null then

    def event(data: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        change = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return event({**head, "choices": [change], **tail})

    pieces = range(0, len(content), STREAM_PIECE_CHARS)
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": content[i : i + STREAM_PIECE_CHARS]}) for i in pieces]
    events.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        events.append(event({**head, "choices": [], "usage": payload["usage"]}))
    return [*events, b"data: [DONE]\n\n"]


@dataclass
class OfflineReply:
    """What the offline back-end does with one chat request.

    Shared by the in-process transport and the loopback server: they differ only in how
    they wait (async or blocking) and how they put the reply on the wire.
    """

    step: str
    fault: str | None = None  # the injected fault's kind, for logs
    status: int = 200
    payload: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    stall: float = 0.0  # seconds to hold the request first (the client may time out)
    work_seconds: float = 0.0  # the model's own time, counted against the latency
    stream: bool = False  # answer as server-sent events (see `events`)
    include_usage: bool = False  # streamed: end with a usage chunk

    @property
    def usage(self) -> tuple[int, int]:
        usage = self.payload.get("usage") or {}
        return usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)

    def events(self) -> list[bytes]:
        """The streamed form of the payload."""
        return stream_events(self.payload, self.include_usage)


def read_chat(raw: bytes, profile: ServerProfile = OPENAI) -> dict[str, Any] | OfflineReply:
    """The request body if `profile`'s server would answer it, else its refusal.

    Called before the model sees anything, so refused requests cost no model work and are
    not counted as calls. Linear in the request's size (see `check_chat`).
    """
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        error: ApiError | None = ApiError(400, "The request body is not valid JSON")
    else:
        error = check_chat(body, profile)
    if error is None:
        return dict(body)  # check_chat made sure it is a JSON object
    return OfflineReply("rejected", status=error.status, payload=profile.error_body(error))


def admit_chat(
    raw: bytes, profile: ServerProfile, limiter: RateLimiter
) -> tuple[dict[str, Any], Ticket] | OfflineReply:
    """`read_chat`, then the rate limits: the body and its ticket (settle it after the
    answer), or the refusal. Neither an invalid request nor a 429 is charged anything."""
    body = read_chat(raw, profile)
    if isinstance(body, OfflineReply):
        body.headers = limiter.headers()  # what is left (nothing when no limit is set)
        return body
    ticket = limiter.admit(prompt_tokens(body["messages"]), requested_limit(body, profile))
    if ticket.admitted:
        return body, ticket
    error = ApiError(429, ticket.message, ticket.refused or "", code="rate_limit_exceeded")
    payload = profile.error_body(error)
    return OfflineReply("rate_limited", status=429, payload=payload, headers=ticket.headers)


def answer_chat(
    model: OfflineModel,
    injector: FaultInjector,
    body: dict[str, Any],
    stats: ModelStats,
    profile: ServerProfile = OPENAI,
) -> OfflineReply:
    """Apply the fault plan to one request `read_chat` let through, then answer it as
    `profile`'s server would: its model's quirks, the token cap, its headers."""
    heard = body if profile.passes_json_mode else {**body, "response_format": None}
    step = model.step_of(body["messages"], json_mode=is_json_mode(heard))
    plan = injector.plan
    fault = injector.decide(body, step)
    kind = fault.kind if fault is not None else None
    if kind is not None:
        stats.count_fault(kind)
    if kind == "drop":
        return OfflineReply(step, kind, drop=True)
    prompt, limit = prompt_tokens(body["messages"]), requested_limit(body, profile)
    cap = profile.context_window - prompt  # the room the window leaves for the answer
    cap = cap if limit is None else min(cap, limit)
    headers = {}
    if profile.rate_limits is not None:  # what providers charge: the prompt plus max output
        headers = profile.rate_limits.headers(prompt + (limit or 0))
    status = fault.http_status() if fault is not None else None
    if fault is not None and status is not None:
        said = fault.error_body()["error"]  # reworded and reshaped as this server's error
        error = ApiError(status, said["message"], said["type"], said["param"], said["code"])
        headers |= fault.headers(plan)
        return OfflineReply(step, kind, status, profile.error_body(error), headers)
    started = time.monotonic()
    payload = run_offline_chat(model, heard)
    content = payload["choices"][0]["message"]["content"]
    if kind in ("bad_json", "bad_critique"):  # a broken answer, still HTTP 200
        content = corrupt_critique(kind, content, plan.seed + stats.calls)
    _finish(payload, profile.rewrite(content, step), cap)
    return OfflineReply(
        step,
        kind,
        payload=payload,
        headers=headers,
        stall=plan.slow_seconds if kind == "slow" else 0.0,
        work_seconds=time.monotonic() - started,
        stream=bool(body.get("stream")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
    )


def _finish(payload: dict[str, Any], content: str, cap: int) -> None:
    """Put the final content in the payload, cut at `cap` tokens as a server's limit cuts it.

    A cut answer ends with `finish_reason: "length"`, and the usage counts what was sent.
    """
    choice = payload["choices"][0]
    if count_tokens(content) > cap:
        content, choice["finish_reason"] = content[: _longest_prefix(content, cap)], "length"
    choice["message"]["content"] = content
    usage = payload["usage"]
    usage["completion_tokens"] = count_tokens(content)
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]


def _longest_prefix(text: str, tokens: int) -> int:
    """The length of the longest prefix of `text` within `tokens` (by the model's count).

    A binary search, so it holds for any count that grows with the text, not only 4 chars.
    """
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if count_tokens(text[:mid]) <= tokens else (low, mid - 1)
    return low


class OfflineTransport(httpx2.AsyncBaseTransport):
    """Serves `/chat/completions` and `/models` from the offline model, after a set latency.

    With a fault plan it misbehaves the way real endpoints do, deterministically; with a
    server profile it refuses and answers as that server does (the default is OpenAI's).
    """

    def __init__(
        self,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        stats: ModelStats = offline_stats,
        profile: str | ServerProfile = "openai",
    ) -> None:
        self.latency = latency
        self.stats = stats
        self.profile = profile_named(profile)
        self.model = OfflineModel()
        self.injector = FaultInjector(faults or FaultPlan())

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._respond(request)
        self.stats.count_status(response.status_code)
        return response

    async def _respond(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "GET" and path.endswith("/models"):
            return httpx2.Response(200, json=models_payload(), request=request)
        if request.method != "POST" or not path.endswith("/chat/completions"):
            error = ApiError(404, f"Invalid URL ({request.method} {path})")
            return httpx2.Response(404, json=self.profile.error_body(error), request=request)
        body = read_chat(await request.aread(), self.profile)
        if isinstance(body, OfflineReply):  # refused before the model saw it: not a call
            return httpx2.Response(body.status, json=body.payload, request=request)
        injector = self.injector
        self.stats.enter()
        usage = (0, 0)
        try:
            reply = answer_chat(self.model, injector, body, self.stats, self.profile)
            usage = reply.usage
            if reply.drop:
                raise httpx2.RemoteProtocolError("Server disconnected without sending a response")
            if reply.stall:
                await self._stall(reply.stall, request)
            # The latency is the whole response time, the model's own work included.
            if reply.status == 200 and self.latency > reply.work_seconds:
                await asyncio.sleep(self.latency - reply.work_seconds)
        finally:
            self.stats.leave(*usage)
        if reply.status != 200:
            return httpx2.Response(reply.status, headers=reply.headers, json=reply.payload)
        injector.answered()
        if reply.stream:
            headers = {"content-type": "text/event-stream; charset=utf-8", **reply.headers}
            content = b"".join(reply.events())
            return httpx2.Response(200, headers=headers, content=content, request=request)
        return httpx2.Response(200, headers=reply.headers, json=reply.payload, request=request)

    @staticmethod
    async def _stall(seconds: float, request: httpx2.Request) -> None:
        """Hold a request; past the client's read timeout, fail it as a timeout.

        A custom transport is not subject to httpx's network timeouts, so the stall honours
        the client's read timeout itself.
        """
        timeout = (request.extensions.get("timeout") or {}).get("read")
        if timeout is None or seconds < timeout:
            await asyncio.sleep(seconds)
            return
        await asyncio.sleep(timeout)
        raise httpx2.ReadTimeout("The read operation timed out", request=request)


def models_payload() -> dict[str, Any]:
    """The `/models` listing: the models the offline back-end serves."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "refine-kit"}
            for name in SERVED_MODELS
        ],
    }
