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

from refine_kit.faults import FaultInjector, FaultPlan, corrupt_critique
from refine_kit.offline_model import OfflineModel
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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self) -> None:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        with self._lock:
            self.in_flight -= 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def reset(self) -> None:
        with self._lock:
            self.calls = self.in_flight = self.max_in_flight = 0
            self.prompt_tokens = self.completion_tokens = 0


#: Every offline transport in this process counts here.
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


_injectors: dict[FaultPlan, FaultInjector] = {}
_injectors_lock = threading.Lock()


def injector_for(plan: FaultPlan) -> FaultInjector:
    """One injector per plan per process, so `nth` and `crash_after` count every request."""
    with _injectors_lock:
        return _injectors.setdefault(plan, FaultInjector(plan))


def reset_injectors() -> None:
    """Forget fault counters (tests start each scenario from zero)."""
    with _injectors_lock:
        _injectors.clear()


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
        self.faults = faults or FaultPlan()

    @property
    def injector(self) -> FaultInjector:
        # Looked up per request: clients outlive a `reset_injectors()` between scenarios.
        return injector_for(self.faults)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "GET" and path.endswith("/models"):
            return httpx2.Response(200, json=models_payload(), request=request)
        if request.method != "POST" or not path.endswith("/chat/completions"):
            return httpx2.Response(404, json=_error("not found", "invalid_request_error"))
        body = json.loads(await request.aread())
        step = self.model.step_of(body.get("messages", []), json_mode=is_json_mode(body))
        self.stats.enter()
        usage = (0, 0)
        try:
            injector = self.injector
            fault = injector.decide(body, step)
            if fault is not None and fault.kind in ("drop", "slow"):
                await self._fail_connection(fault.kind, request)
            if fault is not None and fault.http_status():
                return httpx2.Response(
                    fault.http_status(), headers=fault.headers(self.faults), json=fault.error_body()
                )
            # The latency is the whole response time, the model's own work included.
            started = time.monotonic()
            payload = run_offline_chat(self.model, body)
            if fault is not None and fault.kind in ("bad_json", "bad_critique"):  # HTTP 200
                message = payload["choices"][0]["message"]
                message["content"] = corrupt_critique(
                    fault.kind, message["content"], self.faults.seed + self.stats.calls
                )
            usage = (payload["usage"]["prompt_tokens"], payload["usage"]["completion_tokens"])
            remaining = self.latency - (time.monotonic() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
        finally:
            self.stats.leave(*usage)
        injector.answered()
        return httpx2.Response(200, json=payload, request=request)

    async def _fail_connection(self, kind: str, request: httpx2.Request) -> None:
        """A dropped connection, or a stall the client gives up on: both are transport errors.

        A custom transport is not subject to httpx's network timeouts, so the stall honours
        the client's read timeout itself.
        """
        if kind == "drop":
            raise httpx2.RemoteProtocolError("Server disconnected without sending a response")
        timeout = (request.extensions.get("timeout") or {}).get("read")
        stall = self.faults.slow_seconds
        if timeout is None or stall < timeout:
            await asyncio.sleep(stall)
            return
        await asyncio.sleep(timeout)
        raise httpx2.ReadTimeout("The read operation timed out", request=request)


def models_payload() -> dict:
    """The `/models` listing: the one model the offline back-end serves."""
    return {
        "object": "list",
        "data": [{"id": OFFLINE_MODEL, "object": "model", "created": 0, "owned_by": "refine-kit"}],
    }


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
