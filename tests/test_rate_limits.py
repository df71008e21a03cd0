"""OpenAI-style rate limits on the loopback server: what a request costs, the 429s, the headers.

The limiter's clock is injected, so budgets move only when a test moves time: every number
below is exact, and nothing sleeps. One test runs on the real clock, through the real SDK.
"""

from __future__ import annotations

import threading
from typing import Any

import openai
import pytest
from typer.testing import CliRunner

from refine_kit import prompts as P
from refine_kit.cli import app
from refine_kit.offline.profiles import prompt_tokens
from refine_kit.offline.ratelimit import RateLimiter, RateLimits, reset_duration
from refine_kit.offline.server import OfflineServer
from refine_kit.settings import OFFLINE_MODEL

DRAFT = [
    {"role": "system", "content": P.GENERATOR_SYSTEM_PROMPT},
    {"role": "user", "content": P.draft_prompt("Tidal power")},
]
PROMPT = prompt_tokens(DRAFT)  # what the server counts for DRAFT's prompt
HEADERS = tuple(
    f"x-ratelimit-{what}-{kind}"
    for what in ("limit", "remaining", "reset")
    for kind in ("requests", "tokens")
)

_http = openai.DefaultHttpxClient()  # one pool for the module: a client costs ~0.1 s to build


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def ask(server: OfflineServer, max_tokens: int | None = 100, **extra: Any) -> tuple[int, Any, Any]:
    """One draft request through the SDK (no retries): its status, headers and body."""
    client = openai.OpenAI(
        base_url=server.base_url, api_key="anything", http_client=_http, max_retries=0
    )
    if max_tokens is not None:
        extra["max_tokens"] = max_tokens
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=OFFLINE_MODEL, messages=DRAFT, **extra
        )
    except openai.APIStatusError as exc:
        return exc.status_code, exc.response.headers, exc.response.json()
    answer = raw.parse()
    if extra.get("stream"):
        answer = list(answer)  # read to the end: the connection goes back to the pool
    return 200, raw.headers, answer


def stats(server: OfflineServer) -> dict[str, Any]:
    return _http.get(server.base_url.removesuffix("/v1") + "/refine-kit/stats").json()


# ---------------------------------------------------------------------------------------------
# Over HTTP, on a fake clock


def test_headers_count_down_then_reset_after_a_minute(serving, clock: FakeClock) -> None:
    server = serving(rpm=3, tpm=100_000, clock=clock)
    cost = PROMPT + 100  # the prompt plus the requested maximum, before the answer exists
    status, headers, first = ask(server)
    assert status == 200
    assert {name: headers[name] for name in HEADERS} == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-limit-tokens": "100000",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-remaining-tokens": str(100_000 - cost),
        "x-ratelimit-reset-requests": "20s",  # one request back every 20 s at 3 per minute
        "x-ratelimit-reset-tokens": reset_duration(cost * 60 / 100_000),
    }
    # The first answer returned its unused reservation: it spent its prompt and its answer.
    spent = PROMPT + first.usage.completion_tokens
    _, headers, _ = ask(server)
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-reset-requests"] == "40s"
    assert headers["x-ratelimit-remaining-tokens"] == str(100_000 - spent - cost)
    _, headers, _ = ask(server)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    clock.advance(60)  # a whole minute refills both budgets completely
    _, headers, _ = ask(server)
    assert headers["x-ratelimit-remaining-requests"] == "2"
    assert headers["x-ratelimit-remaining-tokens"] == str(100_000 - cost)


def test_a_burst_over_rpm_gets_429_with_an_exact_retry_after(serving, clock: FakeClock) -> None:
    server = serving(rpm=5, clock=clock)  # one request every 12 s
    assert [ask(server)[0] for _ in range(5)] == [200] * 5
    status, headers, body = ask(server)
    assert status == 429
    assert body["error"] == {
        "message": "Rate limit reached for requests per min (RPM): Limit 5, Used 5, Requested 1. "
        "Please try again in 12s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("12", "12000")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    clock.advance(11.9995)  # not yet: Retry-After rounds up, never down
    status, headers, _ = ask(server)
    assert (status, headers["retry-after"], headers["retry-after-ms"]) == (429, "1", "1")
    clock.advance(0.0005)
    assert ask(server)[0] == 200
    counted = stats(server)
    assert counted["statuses"] == {"200": 6, "429": 2}
    assert counted["requests"] == 6  # a refused request never reached the model
    assert counted["rate_limits"]["refused"] == {"requests": 2}
    assert counted["rate_limits"]["admitted"] == 6


def test_tpm_binds_on_a_large_max_tokens(serving, clock: FakeClock) -> None:
    server = serving(tpm=4_000, clock=clock)
    status, headers, _ = ask(server, max_tokens=3_000)  # the reservation, not the answer
    assert status == 200
    assert headers["x-ratelimit-remaining-tokens"] == str(4_000 - PROMPT - 3_000)
    status, headers, body = ask(server, max_tokens=8_000)  # more than a minute's budget
    assert status == 429 and body["error"]["type"] == "tokens"
    assert body["error"]["message"].startswith(
        f"Request too large for tokens per min (TPM): Limit 4000, Requested {PROMPT + 8_000}."
    )
    assert "retry-after" not in headers  # no wait makes it fit
    # Without max_tokens the server reserves its default, which does not fit either.
    status, _, body = ask(server, max_tokens=None)
    assert status == 429 and "Request too large" in body["error"]["message"]
    assert ask(server, max_tokens=100)[0] == 200  # the same prompt with a small cap: fine
    assert stats(server)["rate_limits"]["refused"] == {"too_large": 2}


def test_the_budget_refills_continuously(serving, clock: FakeClock) -> None:
    server = serving(rpm=2, clock=clock)  # one request back every 30 s
    assert [ask(server)[0] for _ in range(3)] == [200, 200, 429]
    clock.advance(15)
    status, headers, _ = ask(server)
    assert (status, headers["retry-after"]) == (429, "15")
    clock.advance(15)
    assert ask(server)[0] == 200
    clock.advance(90)  # full again, and no fuller: the budget holds one minute's worth
    snapshot = stats(server)["rate_limits"]
    assert snapshot["remaining_requests"] == 2 and snapshot["requests_per_minute"] == 2
    # An invalid request is charged nothing, yet its answer shows the state too.
    response = _http.post(server.base_url + "/chat/completions", content=b"{}")
    assert response.status_code == 400
    assert response.headers["x-ratelimit-remaining-requests"] == "2"
    assert response.headers["x-ratelimit-reset-requests"] == "0ms"


def test_the_unused_reservation_goes_back_after_the_answer(clock: FakeClock) -> None:
    limiter = RateLimiter(tokens_per_minute=10_000, clock=clock)
    first = limiter.admit(100, 6_000)
    assert first.admitted
    second = limiter.admit(100, 6_000)  # 6,100 wanted, 3,900 left: 13.2 s of refill away
    assert second.refused == "tokens"
    assert (second.headers["retry-after"], second.headers["retry-after-ms"]) == ("14", "13200")
    assert limiter.admit(100, 500).admitted  # a small max_tokens still fits
    limiter.settle(first, completion_tokens=1_000)  # 5,000 of its 6,000 come back
    assert limiter.admit(100, 6_000).admitted
    limiter.settle(second, completion_tokens=0)  # a refused request had nothing to return
    assert limiter.snapshot() == {
        "requests_per_minute": None,
        "tokens_per_minute": 10_000,
        "remaining_tokens": 10_000 - 6_100 - 600 - 6_100 + 5_000,
        "remaining_requests": None,
        "admitted": 3,
        "refused": {"tokens": 1},
        "tokens_charged": 6_100 + 600 + 6_100,
        "tokens_returned": 5_000,
    }


def test_concurrent_requests_never_overspend(clock: FakeClock) -> None:
    limiter = RateLimiter(requests_per_minute=100, tokens_per_minute=1_000_000, clock=clock)
    verdicts: list[bool] = []
    lock = threading.Lock()

    def burst() -> None:
        mine = [limiter.admit(10, 10).admitted for _ in range(50)]
        with lock:
            verdicts.extend(mine)

    threads = [threading.Thread(target=burst) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verdicts.count(True) == 100 and len(verdicts) == 800


def test_no_limits_keep_each_profiles_own_headers(serving) -> None:
    fixed = ask(serving())[1]  # openai: the stateless values, as before
    assert fixed["x-ratelimit-limit-requests"] == str(RateLimits().requests_per_minute)
    assert not any(n.startswith("x-ratelimit") for n in ask(serving(profile="ollama"))[1])
    # With limits set, even a profile that sends none sends the real state.
    limited = ask(serving(profile="ollama", rpm=50, tpm=90_000))[1]
    assert all(name in limited for name in HEADERS)
    assert limited["x-ratelimit-remaining-requests"] == "49"
    # One limit set: the other keeps the profile's fixed value.
    mixed = ask(serving(rpm=50))[1]
    assert mixed["x-ratelimit-remaining-requests"] == "49"
    assert mixed["x-ratelimit-limit-tokens"] == str(RateLimits().tokens_per_minute)
    assert "rate_limits" not in stats(serving())


def test_a_proxy_enforces_the_limits_without_headers(serving, clock: FakeClock) -> None:
    """`limit_headers=False`: the same limits, refused with 429 and Retry-After only."""
    server = serving(rpm=2, tpm=100_000, limit_headers=False, clock=clock)
    answers = [ask(server), ask(server, stream=True), ask(server, max_tokens=0), ask(server)]
    assert [status for status, _, _ in answers] == [200, 200, 400, 429]
    for _, headers, _ in answers:
        assert not [name for name in headers if name.lower().startswith("x-ratelimit")]
    _, headers, body = answers[-1]
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("30", "30000")
    assert body["error"]["code"] == "rate_limit_exceeded"
    clock.advance(30)
    assert ask(server)[0] == 200
    counted = stats(server)
    assert counted["statuses"] == {"200": 3, "400": 1, "429": 1}
    assert counted["rate_limits"]["refused"] == {"requests": 1}
    # Without limits, the openai profile's fixed headers are dropped too.
    assert not any(n.startswith("x-ratelimit") for n in ask(serving(limit_headers=False))[1])


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.0, "0ms"), (0.012, "12ms"), (1, "1s"), (1.5, "1.5s"), (59.9999, "1m0s"), (360, "6m0s")],
)
def test_durations_are_written_as_openai_writes_them(seconds: float, shown: str) -> None:
    assert reset_duration(seconds) == shown


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rpm must be a positive"):
        OfflineServer(rpm=0)
    result = CliRunner().invoke(app, ["serve", "--port", "0", "--tpm", "-5"])
    assert result.exit_code == 2 and "tpm must be a positive" in result.output


def test_serve_passes_the_limits_on(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[OfflineServer] = []
    monkeypatch.setattr(OfflineServer, "serve_forever", lambda self: served.append(self))
    result = CliRunner().invoke(app, ["serve", "--port", "0", "--rpm", "600", "--tpm", "100000"])
    assert result.exit_code == 0, result.output
    quiet = ["serve", "--port", "0", "--rpm", "6", "--no-limit-headers"]
    assert CliRunner().invoke(app, quiet).exit_code == 0
    try:
        limits = served[0].snapshot()["rate_limits"]
        assert (limits["requests_per_minute"], limits["tokens_per_minute"]) == (600, 100_000)
        assert served[0].limit_headers and not served[1].limit_headers
        assert served[1].snapshot()["rate_limits"]["requests_per_minute"] == 6
    finally:
        for server in served:
            server.stop()


# ---------------------------------------------------------------------------------------------
# Over real HTTP, on the real clock, through the SDK


def test_every_answer_carries_the_headers_through_the_sdk(serving) -> None:
    server = serving(rpm=4, tpm=200_000)
    answers = [ask(server), ask(server, stream=True), ask(server, max_tokens=0)]
    answers += [ask(server) for _ in range(3)]  # the fourth valid request is one too many
    assert [status for status, _, _ in answers] == [200, 200, 400, 200, 200, 429]
    for _, headers, _ in answers:
        assert all(name in headers for name in HEADERS), dict(headers)
    remaining = [int(h["x-ratelimit-remaining-requests"]) for _, h, _ in answers]
    assert remaining[:2] == [3, 2] and remaining[-3:] == [1, 0, 0]  # refills ~0.07 per second
    status, headers, body = answers[-1]
    assert float(headers["retry-after-ms"]) > 0 and int(headers["retry-after"]) >= 1
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert stats(server)["statuses"]["429"] == 1
