"""A scripted model for tests: a function from a chat request to its answer, under the real SDK.

Tests of the kit's machinery (the loop, retries, replay, the cache, accounting) should not
depend on what the offline model happens to write: editing one of its sentences, or a
prompt, must not break a test about checkpoints. `ScriptedModel` takes a handler, in the
spirit of httpx's `MockTransport` and pydantic-ai's `FunctionModel`, and answers every
chat request of every run in this process with what the handler returns, through the same
SDK, pacing, retry budget and answer checks as a real endpoint:

    def answer(request: ScriptedRequest) -> str:
        if request.step == "critique":
            return '{"score": 9, "strengths": [], "improvements": [], "summary": "ok"}'
        return f"# A report\\n\\nOn {request.user}."

    with ScriptedModel(answer) as model:
        refine_kit.refine("Tidal power", cache=False)
    assert model.requests[0].step == "draft"

A handler may also return an `httpx2.Response` (a 429, a 500, a login page) or raise an
`httpx2.TransportError` (a dropped connection). The handler runs on the event loop: it
answers at once, so it suits tests of what is asked, not of how many calls overlap. Flyte's
cache does not know which model answered: give such runs `cache=False` or topics of their own.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx2

from refine_kit import client, prompts

_STEP_OF_SYSTEM = {
    prompts.GENERATOR_SYSTEM_PROMPT: "draft",
    prompts.CRITIC_SYSTEM_PROMPT: "critique",
    prompts.REVISER_SYSTEM_PROMPT: "revise",
    prompts.SUMMARY_SYSTEM_PROMPT: "summary",
}


@dataclass(frozen=True)
class ScriptedRequest:
    """One chat request as the model received it."""

    body: dict[str, Any]
    number: int  # 1 for the first request the model received

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def system(self) -> str:
        return next((m["content"] for m in self.messages if m.get("role") == "system"), "")

    @property
    def user(self) -> str:
        """The first user message: the question (a re-ask adds turns after it)."""
        return next((m["content"] for m in self.messages if m.get("role") == "user"), "")

    @property
    def step(self) -> str | None:
        """Which pipeline step asked ("draft", "critique", "revise", "summary"), if any."""
        return _STEP_OF_SYSTEM.get(self.system)

    @property
    def json_mode(self) -> bool:
        return "response_format" in self.body


Handler = Callable[[ScriptedRequest], "str | httpx2.Response"]


@dataclass
class ScriptedModel:
    """Answers every chat request in this process with `handler`, while the block is open."""

    handler: Handler
    prompt_tokens: int = 10
    completion_tokens: int = 20
    requests: list[ScriptedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __enter__(self) -> ScriptedModel:
        client.use_model(httpx2.MockTransport(self._answer))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        client.use_model(None)

    def _answer(self, request: httpx2.Request) -> httpx2.Response:
        if not request.url.path.endswith("/chat/completions"):
            return httpx2.Response(404, json={"error": {"message": "not found"}})
        with self._lock:  # calls arrive from several topics at once
            scripted = ScriptedRequest(
                body=json.loads(request.content), number=len(self.requests) + 1
            )
            self.requests.append(scripted)
        answer = self.handler(scripted)
        if isinstance(answer, httpx2.Response):
            return answer
        return httpx2.Response(200, json=self._completion(answer, scripted))

    def _completion(self, content: str, request: ScriptedRequest) -> dict[str, Any]:
        usage = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(request.body.get("model", "scripted")),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {**usage, "total_tokens": sum(usage.values())},
        }
