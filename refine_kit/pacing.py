"""Pacing a run's requests to the provider's rate limits, instead of guessing a concurrency.

Providers limit requests per minute (RPM) and tokens per minute (TPM), whichever binds
first, and count a request's tokens before running it: its prompt plus the maximum output
it asks for. A fixed `max_concurrency` either leaves a tier's limits unused or runs into
storms of 429s. The `Pacer` keeps one budget per limit for the whole run, refilled
continuously (capacity: one minute's limit), and lets a request go only when both budgets
can pay for it; every call of every topic waits in one queue, so calls stay in flight as
the limits allow, up to `max_concurrency`.

Limits come from the settings (`requests_per_minute`, `tokens_per_minute`) and from the
`x-ratelimit-*` headers OpenAI and gateways such as litellm send with every answer; each
answer re-synchronises the budgets with what the server says remains. A 429 pauses every
call of the run until its `Retry-After`, rather than each call backing off on its own.
`PacedTransport` applies all this to every HTTP request, the client's retries included.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx2

from refine_kit import progress
from refine_kit.retries import retry_after

# Providers tokenise; a few characters per token is close enough to pace by, and the
# server's own count corrects the budget with every answer.
CHARS_PER_TOKEN = 4
MESSAGE_FRAMING_TOKENS = 4  # each message's role and separators, as OpenAI counts them
#: How much later than we send it a server may count a request (a new connection, a busy
#: event loop): a budget that leaves full starts refilling that much later, so the request
#: that first waits for the refill does not reach the server a few milliseconds early.
SERVER_LAG = 0.05
_EPSILON = 1e-9
#: A wait for a limit this long is told to the user (why, how long, what would help)...
LONG_WAIT = 3.0
#: ...again at most this often while the same limit keeps binding.
RETELL_AFTER = 30.0


def estimated_tokens(body: Mapping[str, object]) -> int:
    """What a provider charges a chat request before it runs: prompt plus maximum output."""
    messages = body.get("messages")
    chars = framing = 0
    if isinstance(messages, list):
        chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
        framing = MESSAGE_FRAMING_TOKENS * len(messages)
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return chars // CHARS_PER_TOKEN + framing + (limit if isinstance(limit, int) else 0)


@dataclass
class _Budget:
    """One limit's budget: refilled continuously, at most one minute's worth."""

    limit: float
    level: float
    refills_from: float = 0.0  # no refill before this time (see SERVER_LAG)

    def refill(self, since: float, now: float) -> None:
        seconds = max(0.0, now - max(since, self.refills_from))
        self.level = min(self.limit, self.level + seconds * self.limit / 60)

    def charge(self, amount: float, now: float) -> None:
        if self.level >= self.limit:  # leaving full: the server refills from when it counts
            self.refills_from = now + SERVER_LAG
        self.level -= amount

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` is affordable (a request larger than the limit waits for
        a full budget, as providers let such a request through on an empty minute)."""
        needed = min(amount, self.limit) - self.level
        if needed <= _EPSILON:  # float refills land a hair under whole numbers
            return 0.0
        return max(0.0, self.refills_from - now) + needed * 60 / self.limit


class Pacer:
    """The run's shared view of its rate limits; every request asks it before it is sent."""

    def __init__(
        self,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._stated = (requests_per_minute, tokens_per_minute)
        self.requests = (
            _Budget(requests_per_minute, requests_per_minute) if requests_per_minute else None
        )
        self.tokens = _Budget(tokens_per_minute, tokens_per_minute) if tokens_per_minute else None
        self._stamp = clock()
        self._paused_until = 0.0
        self._queue = asyncio.Lock()
        self.waited = 0.0  # seconds spent waiting for budget, for accounting and tests
        self.rate_limited = 0  # 429s seen
        self.told: list[str] = []  # what the user was told about long waits
        self._told_at: tuple[str, float] | None = None  # (which limit, when)
        # Sent and not answered yet: an answer's headers were counted before these arrived.
        self.in_flight = 0
        self.in_flight_tokens = 0

    @property
    def active(self) -> bool:
        """Whether requests must ask first: limits are known, or a 429 paused the run."""
        limited = self.requests is not None or self.tokens is not None
        return limited or self._paused_until > self._clock()

    async def acquire(self, tokens: int, max_output: int = 0) -> None:
        """Wait until the run's budgets can pay for one request of `tokens` tokens (of which
        `max_output` is the answer's cap, reserved whole)."""
        if not self.active:
            return
        async with self._queue:  # first come, first served: no request starves
            while True:
                wait, binding = self._wait(tokens)
                if wait <= 0:
                    if self.requests is not None:
                        self.requests.charge(1, self._stamp)
                    if self.tokens is not None:
                        self.tokens.charge(min(tokens, self.tokens.limit), self._stamp)
                    return
                if wait >= LONG_WAIT:
                    self._tell(wait, binding, tokens, max_output)
                self.waited += wait
                await asyncio.sleep(wait)

    def _tell(self, wait: float, binding: str, tokens: int, max_output: int) -> None:
        """Say why calls are held, for how long, and what would help: once per limit, and
        again every RETELL_AFTER seconds while it binds, so a long batch is never silent."""
        now = self._clock()
        if self._told_at is not None:
            told, at = self._told_at
            if told == binding and now - at < RETELL_AFTER:
                return
        self._told_at = (binding, now)
        message = self.why(wait, binding, tokens, max_output)
        self.told.append(message)
        progress.publish("", "waiting", message=message)

    def why(self, wait: float, binding: str, tokens: int, max_output: int) -> str:
        """The words for a wait: which limit binds, how long, what would help."""
        held = f"calls held {wait:.0f} s"
        if binding == "pause":
            return (
                f"{held}: the server answered 429 (rate limited) and asked for a pause; "
                "stating your tier's limits (--rpm/--tpm) paces calls so that it need not"
            )
        source = "stated" if self._stated[0 if binding == "requests" else 1] else "the server's"
        if binding == "requests":
            limit = self.requests.limit if self.requests else 0
            return (
                f"{held} for the requests-per-minute limit ({limit:,.0f} RPM, {source}); "
                "a higher tier's limit is the only way to go faster"
            )
        limit = self.tokens.limit if self.tokens else 0
        text = (
            f"{held} for the tokens-per-minute limit ({limit:,.0f} TPM, {source}): each "
            f"request reserves its prompt plus max_tokens, {tokens:,} tokens here"
        )
        if max_output > tokens - max_output:  # the cap, not the prompt, is most of the cost
            text += f"; a lower --max-tokens (now {max_output:,}) lets more requests through"
        return text

    @asynccontextmanager
    async def sending(self, tokens: int, max_output: int = 0) -> AsyncIterator[None]:
        """Wait for budget, then count the request as in flight until its answer is back."""
        await self.acquire(tokens, max_output)
        self.in_flight += 1
        self.in_flight_tokens += tokens
        try:
            yield
        finally:
            self.in_flight -= 1
            self.in_flight_tokens -= tokens

    def _wait(self, tokens: int) -> tuple[float, str]:
        """Seconds until a request of `tokens` may go, and which limit holds it longest."""
        now = self._clock()
        self._refill(now)
        waits = [(self._paused_until - now, "pause")]
        if self.requests is not None:
            waits.append((self.requests.wait_for(1, now), "requests"))
        if self.tokens is not None:
            waits.append((self.tokens.wait_for(tokens, now), "tokens"))
        return max(waits)

    def _refill(self, now: float) -> None:
        for budget in (self.requests, self.tokens):
            if budget is not None:
                budget.refill(self._stamp, now)
        self._stamp = now

    def learn(self, status: int, headers: Mapping[str, str]) -> None:
        """Take the limits and what remains from an answer; a 429 pauses the whole run."""
        now = self._clock()
        self._refill(now)
        self.requests = self._synced(
            self.requests, headers, "requests", self._stated[0], self.in_flight
        )
        self.tokens = self._synced(
            self.tokens, headers, "tokens", self._stated[1], self.in_flight_tokens
        )
        if status == 429:
            self.rate_limited += 1
            pause = retry_after(headers)
            if pause is None:  # no advice: until the emptier budget has refilled a little
                pause = 1.0
            self._paused_until = max(self._paused_until, now + pause)

    @staticmethod
    def _synced(
        budget: _Budget | None,
        headers: Mapping[str, str],
        kind: str,
        stated: int | None,
        unseen: int,
    ) -> _Budget | None:
        """The budget as the server counted it, less what is in flight (`unseen`): those
        requests may have arrived after this answer's count."""
        limit_text = headers.get(f"x-ratelimit-limit-{kind}")
        remaining_text = headers.get(f"x-ratelimit-remaining-{kind}")
        if limit_text is None or remaining_text is None:
            return budget
        try:
            limit, remaining = float(limit_text), float(remaining_text)
        except ValueError:
            return budget
        if limit <= 0:
            return budget
        if stated:  # a stated limit lower than the server's (a shared key, a budget) wins
            limit = min(limit, stated)
        return _Budget(limit=limit, level=min(remaining, limit) - unseen)


class PacedTransport(httpx2.AsyncBaseTransport):
    """Sends each chat request when the run's pacer allows it, and teaches it every answer."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, pacer: Pacer) -> None:
        self.inner = inner
        self.pacer = pacer

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if not request.url.path.endswith("/chat/completions"):
            return await self.inner.handle_async_request(request)
        try:
            body = json.loads(request.content)
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        tokens = estimated_tokens(body)
        cap = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        async with self.pacer.sending(tokens, cap if isinstance(cap, int) else 0):
            response = await self.inner.handle_async_request(request)
        self.pacer.learn(response.status_code, response.headers)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
