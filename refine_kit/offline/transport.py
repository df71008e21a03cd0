"""The offline model served as an HTTP transport under `openai.AsyncOpenAI`.

Offline runs therefore go through the real SDK: request building, JSON mode, response
parsing, retries and usage accounting are the same code paths a real endpoint uses. There is
no "mock mode" branch anywhere in the pipeline.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx2

from refine_kit.offline.faults import FaultInjector, FaultPlan, corrupt_critique
from refine_kit.offline.model import OfflineModel
from refine_kit.settings import OFFLINE_MODEL


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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self) -> None:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] = self.injected.get(kind, 0) + 1

    def leave(self, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        with self._lock:
            self.in_flight -= 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def reset(self) -> None:
        with self._lock:
            self.calls = self.in_flight = self.max_in_flight = 0
            self.prompt_tokens = self.completion_tokens = 0
            self.injected = {}


#: Every offline transport in this process counts here: what a server would count, for tests,
#: benchmarks and notebooks (`refine_kit.reset()` zeroes it).
offline_stats = ModelStats()


def completion_payload(
    model: str, content: str, prompt_tokens: int, completion_tokens: int
) -> dict:
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


def run_offline_chat(model: OfflineModel, body: dict) -> dict:
    """Answer one `/chat/completions` request body with the offline model."""
    answer = model.complete(body.get("messages", []), json_mode=is_json_mode(body))
    return completion_payload(
        body.get("model", ""), answer.content, answer.prompt_tokens, answer.completion_tokens
    )


def is_json_mode(body: dict) -> bool:
    return (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")


@dataclass
class OfflineReply:
    """What the offline back-end does with one chat request.

    Shared by the in-process transport and the loopback server: they differ only in how
    they wait (async or blocking) and how they put the reply on the wire.
    """

    step: str
    fault: str | None = None  # the injected fault's kind, for logs
    status: int = 200
    payload: dict = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    stall: float = 0.0  # seconds to hold the request first (the client may time out)
    work_seconds: float = 0.0  # the model's own time, counted against the latency

    @property
    def usage(self) -> tuple[int, int]:
        usage = self.payload.get("usage") or {}
        return usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)


def answer_chat(
    model: OfflineModel, injector: FaultInjector, body: dict, stats: ModelStats
) -> OfflineReply:
    """Apply the fault plan to one request, then answer it with the offline model."""
    step = model.step_of(body.get("messages", []), json_mode=is_json_mode(body))
    plan = injector.plan
    fault = injector.decide(body, step)
    kind = fault.kind if fault is not None else None
    if kind is not None:
        stats.count_fault(kind)
    if kind == "drop":
        return OfflineReply(step, kind, drop=True)
    status = fault.http_status() if fault is not None else None
    if fault is not None and status is not None:
        return OfflineReply(step, kind, status, fault.error_body(), fault.headers(plan))
    started = time.monotonic()
    payload = run_offline_chat(model, body)
    if kind in ("bad_json", "bad_critique"):  # a broken answer, still HTTP 200
        message = payload["choices"][0]["message"]
        message["content"] = corrupt_critique(kind, message["content"], plan.seed + stats.calls)
    return OfflineReply(
        step,
        kind,
        payload=payload,
        stall=plan.slow_seconds if kind == "slow" else 0.0,
        work_seconds=time.monotonic() - started,
    )


class OfflineTransport(httpx2.AsyncBaseTransport):
    """Serves `/chat/completions` and `/models` from the offline model, after a set latency.

    With a fault plan it misbehaves the way real endpoints do, deterministically.
    """

    def __init__(
        self,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        stats: ModelStats = offline_stats,
    ) -> None:
        self.latency = latency
        self.stats = stats
        self.model = OfflineModel()
        self.injector = FaultInjector(faults or FaultPlan())

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "GET" and path.endswith("/models"):
            return httpx2.Response(200, json=models_payload(), request=request)
        if request.method != "POST" or not path.endswith("/chat/completions"):
            return httpx2.Response(404, json=error_payload("not found", "invalid_request_error"))
        body = json.loads(await request.aread())
        injector = self.injector
        self.stats.enter()
        usage = (0, 0)
        try:
            reply = answer_chat(self.model, injector, body, self.stats)
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
        return httpx2.Response(200, json=reply.payload, request=request)

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


def models_payload() -> dict:
    """The `/models` listing: the one model the offline back-end serves."""
    return {
        "object": "list",
        "data": [{"id": OFFLINE_MODEL, "object": "model", "created": 0, "owned_by": "refine-kit"}],
    }


def error_payload(
    message: str, kind: str, param: str | None = None, code: str | None = None
) -> dict:
    """An error body in the OpenAI API's shape."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
