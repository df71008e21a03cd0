"""OpenAI's rate limits for the loopback server: requests and tokens per minute, enforced.

A client that paces itself and one that only retries 429s look alike against a server that
never refuses. `OfflineServer(rpm=..., tpm=...)` (`refine-kit serve --rpm --tpm`) refuses as
OpenAI does, so pacing, Retry-After handling and the cost of a large `max_tokens` can be
measured on loopback. The rules, as OpenAI documents its limits:

- A chat request costs 1 request and an estimate of its tokens made before it runs: the
  prompt as the server counts it plus the requested maximum output (`max_completion_tokens`
  or `max_tokens`, else DEFAULT_MAX_OUTPUT). A large `max_tokens` spends budget even when the
  answer is short.
- Each limit is a budget that holds at most its per-minute limit and refills continuously at
  limit/60 per second (a token bucket, full at start). A request runs only when both budgets
  hold its cost, and then both are charged.
- A refused request (429) is charged nothing, so its Retry-After is exact: the time until both
  budgets hold its cost (others may still get there first).
- After the answer, the unused part of the output reservation (requested maximum minus the
  completion tokens sent; all of it when the call failed) goes back to the token budget, as
  Azure OpenAI documents for its reservations. The prompt's estimate is never returned.
- A request whose estimate is above the token limit itself can never run: 429 "Request too
  large", without Retry-After (waiting cannot help).

`RateLimits` is the stateless stand-in that profiles send when no limit is set: the same
headers, valued as if each request were alone in its minute.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The output a request reserves when it names no maximum (OpenAI reserves a large default).
DEFAULT_MAX_OUTPUT = 4096
_EPSILON = 1e-9  # float refills land a hair under whole numbers: never refuse for that


def reset_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in headers and messages: `6ms`, `1.5s`, `6m0s`."""
    ms = max(0, round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:g}s"
    minutes, rest = divmod(round(ms / 1000), 60)
    return f"{minutes}m{rest}s"


def limit_headers(kind: str, limit: int, remaining: int, reset: float) -> dict[str, str]:
    """One limit's three `x-ratelimit-*` headers (`kind`: "requests" or "tokens")."""
    return {
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": str(remaining),
        f"x-ratelimit-reset-{kind}": reset_duration(reset),
    }


@dataclass(frozen=True)
class RateLimits:
    """OpenAI's `x-ratelimit-*` headers, nothing enforced: stateless (deterministic), as if
    each request were the only one in its minute, yet shaped and valued like OpenAI's."""

    requests_per_minute: int = 10_000
    tokens_per_minute: int = 2_000_000

    def headers(self, estimated_tokens: int) -> dict[str, str]:
        """The headers for one request costing `estimated_tokens` (prompt + max output)."""
        rpm, tpm = self.requests_per_minute, self.tokens_per_minute
        spent = min(estimated_tokens, tpm)
        return limit_headers("requests", rpm, rpm - 1, 60 / rpm) | limit_headers(
            "tokens", tpm, tpm - spent, 60 * spent / tpm
        )


class _Budget:
    """One limit as a bucket: holds up to `limit`, refills `limit / 60` per second."""

    __slots__ = ("kind", "label", "limit", "rate", "level", "stamp")

    def __init__(self, kind: str, label: str, limit: int, now: float) -> None:
        self.kind, self.label, self.limit = kind, label, limit
        self.rate = limit / 60
        self.level, self.stamp = float(limit), now

    def refill(self, now: float) -> None:
        if now > self.stamp:  # a clock that steps back refills nothing
            self.level = min(self.limit, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, cost: float) -> float:
        """Seconds until the budget holds `cost` (0: it does now)."""
        return max(0.0, (cost - self.level - _EPSILON) / self.rate)

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.level + _EPSILON))

    def headers(self) -> dict[str, str]:
        reset = max(0.0, (self.limit - self.level - _EPSILON) / self.rate)
        return limit_headers(self.kind, self.limit, self.remaining, reset)


@dataclass(frozen=True)
class Ticket:
    """The limiter's verdict on one request: admitted (charged), or refused and why."""

    cost: int  # the estimated tokens: prompt + reserved output
    reserved: int  # the output part, the most `settle` may return
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-*, and Retry-After
    refused: str | None = None  # the limit that refused: "requests" or "tokens"
    message: str = ""  # OpenAI's wording of the refusal

    @property
    def admitted(self) -> bool:
        return self.refused is None


class RateLimiter:
    """Requests and tokens per minute for one server, as OpenAI enforces them (see above).

    Thread-safe: one lock around a few float operations per request. Deterministic given
    `clock` (seconds, monotonic), which tests replace. With neither limit set it admits
    everything and adds no headers, so a profile's own (fixed, or none) stay as they are;
    with one set, the other's headers come from `fixed` when the profile sends them.
    """

    def __init__(
        self,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        fixed: RateLimits | None = None,
    ) -> None:
        for name, value in (("rpm", requests_per_minute), ("tpm", tokens_per_minute)):
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive number per minute, got {value!r}")
        self._clock, self._fixed, self._lock = clock, fixed, threading.Lock()
        now = clock()
        self._requests = (
            _Budget("requests", "requests per min (RPM)", requests_per_minute, now)
            if requests_per_minute
            else None
        )
        self._tokens = (
            _Budget("tokens", "tokens per min (TPM)", tokens_per_minute, now)
            if tokens_per_minute
            else None
        )
        self._budgets = [b for b in (self._requests, self._tokens) if b is not None]
        self.admitted = 0
        self.refused: dict[str, int] = {}  # by the limit that refused ("too_large" apart)
        self.tokens_charged = self.tokens_returned = 0

    @property
    def active(self) -> bool:
        return bool(self._budgets)

    def admit(self, prompt_tokens: int, max_output: int | None) -> Ticket:
        """Charge one request costing `prompt_tokens` + `max_output` (None: the default), or
        refuse it, charging nothing; either way with the headers for the state it leaves."""
        reserved = DEFAULT_MAX_OUTPUT if max_output is None else max_output
        cost = prompt_tokens + reserved
        if not self.active:
            return Ticket(cost, reserved)
        with self._lock:
            self._refill()
            tokens = self._tokens
            if tokens is not None and cost > tokens.limit:
                self.refused["too_large"] = self.refused.get("too_large", 0) + 1
                message = (
                    f"Request too large for {tokens.label}: Limit {tokens.limit}, Requested "
                    f"{cost}. The input or output tokens must be reduced in order to run "
                    "successfully."
                )
                return Ticket(cost, reserved, self._headers(cost), "tokens", message)
            need = {"requests": 1, "tokens": cost}
            waits = [(budget.wait(need[budget.kind]), budget) for budget in self._budgets]
            wait, binding = max(waits, key=lambda pair: pair[0])  # the longer wait names it
            if wait <= 0:
                for budget in self._budgets:
                    budget.level -= need[budget.kind]
                self.admitted += 1
                self.tokens_charged += cost if tokens is not None else 0
                return Ticket(cost, reserved, self._headers(cost))
            self.refused[binding.kind] = self.refused.get(binding.kind, 0) + 1
            used = binding.limit - binding.remaining
            message = (
                f"Rate limit reached for {binding.label}: Limit {binding.limit}, Used {used}, "
                f"Requested {need[binding.kind]}. Please try again in {reset_duration(wait)}."
            )
            # Rounded up (past float noise): a client that waits this long finds the budget.
            ms = math.ceil(wait * 1000 - 1e-6)
            retry = {"retry-after": str(math.ceil(ms / 1000)), "retry-after-ms": str(ms)}
            return Ticket(cost, reserved, self._headers(cost) | retry, binding.kind, message)

    def settle(self, ticket: Ticket, completion_tokens: int) -> None:
        """Return the part of an admitted request's output reservation it did not use."""
        tokens = self._tokens
        if tokens is None or not ticket.admitted:
            return
        unused = max(0, ticket.reserved - max(0, completion_tokens))
        with self._lock:
            tokens.refill(self._clock())
            tokens.level = min(tokens.limit, tokens.level + unused)
            self.tokens_returned += unused

    def headers(self) -> dict[str, str]:
        """The headers for an answer that charged nothing (a request refused as invalid)."""
        if not self.active:
            return {}
        with self._lock:
            self._refill()
            return self._headers(0)

    def _refill(self) -> None:
        now = self._clock()
        for budget in self._budgets:
            budget.refill(now)

    def _headers(self, cost: int) -> dict[str, str]:
        """Every limit's headers: the enforced ones' real state, the others' fixed values."""
        headers = self._fixed.headers(cost) if self._fixed is not None else {}
        for budget in self._budgets:
            headers |= budget.headers()
        return headers

    def snapshot(self) -> dict[str, Any] | None:
        """The limits, what remains now, and the counts so far (None: no limit is set)."""
        if not self.active:
            return None
        with self._lock:
            self._refill()
            requests, tokens = self._requests, self._tokens
            return {
                "requests_per_minute": requests.limit if requests else None,
                "tokens_per_minute": tokens.limit if tokens else None,
                "remaining_requests": requests.remaining if requests else None,
                "remaining_tokens": tokens.remaining if tokens else None,
                "admitted": self.admitted,
                "refused": dict(self.refused),
                "tokens_charged": self.tokens_charged,
                "tokens_returned": self.tokens_returned,
            }
