"""The pacer: requests wait for rate budget, learn limits from headers, and back off together."""

from __future__ import annotations

import asyncio

import pytest

from refine_kit.pacing import SERVER_LAG, Pacer, estimated_tokens


class FakeClock:
    """Time that moves only when a waiter sleeps: tests see exact waits, instantly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()

    async def sleep(seconds: float) -> None:
        fake.now += seconds

    monkeypatch.setattr("refine_kit.pacing.asyncio.sleep", sleep)
    return fake


def headers(limit_rq: int, left_rq: int, limit_tk: int, left_tk: int) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(limit_rq),
        "x-ratelimit-remaining-requests": str(left_rq),
        "x-ratelimit-limit-tokens": str(limit_tk),
        "x-ratelimit-remaining-tokens": str(left_tk),
    }


def test_stated_requests_per_minute_space_out_requests_once_the_minute_is_spent(clock) -> None:
    pacer = Pacer(requests_per_minute=60, clock=clock)
    starts = []

    async def burst() -> None:
        for _ in range(62):
            await pacer.acquire(tokens=10)
            starts.append(clock.now)

    asyncio.run(burst())
    assert starts[:60] == [0.0] * 60  # a full minute's budget at the start, as providers allow
    # Then one a second, from when the server counted the first (SERVER_LAG after sending).
    lag = SERVER_LAG
    assert starts[60:] == [pytest.approx(1.0 + lag), pytest.approx(2.0 + lag)]


def test_tokens_per_minute_bind_on_prompt_plus_max_tokens(clock) -> None:
    pacer = Pacer(tokens_per_minute=6_000, clock=clock)

    async def two() -> list[float]:
        seen = []
        for _ in range(3):
            await pacer.acquire(tokens=3_000)
            seen.append(clock.now)
        return seen

    assert asyncio.run(two()) == [0.0, 0.0, pytest.approx(30.0 + SERVER_LAG)]


def test_limits_are_learned_from_the_headers_and_a_lower_stated_limit_wins(clock) -> None:
    pacer = Pacer(clock=clock)
    assert not pacer.active
    pacer.learn(200, headers(600, 0, 100_000, 90_000))
    assert pacer.active and pacer.requests and pacer.requests.limit == 600
    asyncio.run(pacer.acquire(tokens=100))
    assert clock.now == pytest.approx(0.1)  # the server said none remained: 600/min refill
    stated = Pacer(requests_per_minute=100, clock=clock)
    stated.learn(200, headers(600, 599, 100_000, 90_000))
    assert stated.requests and stated.requests.limit == 100


def test_requests_still_in_flight_are_not_in_an_answers_count(clock) -> None:
    """An answer's headers count the budget when that request arrived: requests sent after
    it and not answered yet may be missing, so they are taken off what it says remains."""
    pacer = Pacer(clock=clock)

    async def three_sent_then_one_answered() -> None:
        async with pacer.sending(3_000), pacer.sending(3_000), pacer.sending(3_000):
            async with pacer.sending(1_000):
                pass
            pacer.learn(200, headers(600, 5, 100_000, 50_000))  # the fourth one's answer

    asyncio.run(three_sent_then_one_answered())
    assert pacer.requests and pacer.requests.level == 2
    assert pacer.tokens and pacer.tokens.level == 41_000
    assert (pacer.in_flight, pacer.in_flight_tokens) == (0, 0)  # all answered


def test_a_429_pauses_every_call_until_its_retry_after(clock) -> None:
    pacer = Pacer(clock=clock)
    pacer.learn(429, {"retry-after-ms": "1500"})
    assert pacer.active and pacer.rate_limited == 1

    async def three() -> list[float]:
        seen = []
        for _ in range(3):
            await pacer.acquire(tokens=10)
            seen.append(clock.now)
        return seen

    assert asyncio.run(three()) == [pytest.approx(1.5)] * 3  # all wait once, together


def test_a_request_costs_its_prompt_and_its_maximum_output() -> None:
    body = {"messages": [{"content": "x" * 400}, {"content": "y" * 400}], "max_tokens": 2000}
    assert estimated_tokens(body) == 200 + 2 * 4 + 2000  # text, framing, maximum output
    assert estimated_tokens({"messages": [], "max_completion_tokens": 50}) == 50
