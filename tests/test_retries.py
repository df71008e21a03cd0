"""The one retry budget, under the SDK: what is sent again, after how long, and how often."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx2
import pytest

from refine_kit.retries import MAX_RETRY_AFTER, RetryingTransport, is_transient

PACKAGE = Path(__file__).resolve().parent.parent / "refine_kit"


def send(answers: list[object], retries: int = 2) -> tuple[int, list[int], list[float]]:
    """Send one request through the transport; answers are statuses, headers or errors."""
    attempts: list[int] = []
    slept: list[float] = []
    script = iter(answers)

    def handler(request: httpx2.Request) -> httpx2.Response:
        answer = next(script)
        if isinstance(answer, Exception):
            raise answer
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return httpx2.Response(status, headers=headers, json={})

    transport = RetryingTransport(httpx2.MockTransport(handler), retries=retries, backoff=0.5,
                                  on_attempt=attempts.append)  # fmt: skip

    async def run() -> int:
        async def no_sleep(seconds: float) -> None:
            slept.append(seconds)

        real, asyncio.sleep = asyncio.sleep, no_sleep  # type: ignore[assignment]
        try:
            request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
            return (await transport.handle_async_request(request)).status_code
        finally:
            asyncio.sleep = real  # type: ignore[assignment]

    return asyncio.run(run()), attempts, slept


def test_transient_answers_are_sent_again_within_the_budget() -> None:
    status, attempts, _ = send([503, 429, 200])
    assert status == 200 and attempts == [1, 2, 3]
    status, attempts, _ = send([500, 500, 500, 200])
    assert status == 500 and attempts == [1, 2, 3]  # budget: retries + 1 requests


def test_a_dropped_connection_is_retried_and_the_last_error_raised() -> None:
    status, attempts, _ = send([httpx2.RemoteProtocolError("dropped"), 200])
    assert status == 200 and attempts == [1, 2]
    with pytest.raises(httpx2.ConnectError):
        send([httpx2.ConnectError("refused")] * 3)


def test_the_server_says_how_long_and_whether() -> None:
    _, _, slept = send([(429, {"retry-after-ms": "1500", "retry-after": "2"}), 200])
    assert slept == [1.5]
    _, _, slept = send([(429, {"llm_provider-retry-after": "0.7"}), 200])  # litellm's name
    assert slept == [0.7]
    _, attempts, _ = send([(500, {"x-should-retry": "false"})])
    assert attempts == [1]
    _, attempts, _ = send([(400, {"x-should-retry": "true"}), 200])
    assert attempts == [1, 2]
    too_long = {"retry-after": str(MAX_RETRY_AFTER + 1)}
    assert not is_transient(httpx2.Response(429, headers=too_long))


def test_without_advice_the_backoff_doubles_from_the_setting() -> None:
    _, _, slept = send([500, 500, 200])
    assert 0.375 <= slept[0] <= 0.5 and 0.75 <= slept[1] <= 1.0  # with up to 25% jitter


def test_the_kit_uses_no_private_module_of_the_sdk_or_httpx() -> None:
    private = re.compile(r"^\s*(from|import) (openai|httpx2)\._", re.M)
    offenders = [p.name for p in PACKAGE.rglob("*.py") if private.search(p.read_text())]
    assert offenders == []
