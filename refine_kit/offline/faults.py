"""Deterministic fault injection for the offline model, in-process or over loopback HTTP.

One small `FaultPlan` says what goes wrong; a `FaultInjector` applies it to each request the
offline back-end receives and decides, from counters and a seeded hash (never from the clock
or a global random state), whether and how that request fails. Same plan, same requests:
same faults.

Fault kinds and the layer meant to absorb each:

| kind           | what the client sees                          | absorbed by                |
|----------------|-----------------------------------------------|----------------------------|
| `429`          | HTTP 429 with Retry-After                     | OpenAI client retry        |
| `500`, `503`   | HTTP 500 / 503 (503 with Retry-After)         | OpenAI client retry        |
| `drop`         | the connection closes without a response      | OpenAI client retry        |
| `slow`         | no answer before the client's timeout         | OpenAI client retry        |
| `bad_json`     | a critique that is not valid JSON             | re-ask inside the step     |
| `bad_critique` | a critique with score 11 or a missing field   | re-ask inside the step     |

`step` + `nth` fails one chosen call hard (HTTP 500 marked not-retryable), which escapes
the client and the re-ask and so exercises the task retry and checkpoint replay.
`crash_after` kills the serving process after that many answers, like a power cut.
"""

# No `from __future__ import annotations`: FaultPlan crosses task boundaries (see models.py).
import hashlib
import json
import os
import signal
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from refine_kit.models import BoundaryModel, Step

FaultKind = Literal["429", "500", "503", "drop", "slow", "bad_json", "bad_critique"]
ALL_FAULTS: tuple[FaultKind, ...] = (
    "429",
    "500",
    "503",
    "drop",
    "slow",
    "bad_json",
    "bad_critique",
)
_CRITIQUE_ONLY = {"bad_json", "bad_critique"}


class FaultPlan(BoundaryModel):
    """What should go wrong. The empty plan injects nothing.

    Settable from Python (`FaultPlan(rate=0.2)`), the CLI's `--faults` option or the
    `REFINE_KIT_FAULTS` variable, both holding the plan as JSON (`{"rate": 0.2, "seed": 7}`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float = Field(default=0.0, ge=0, le=0.9, description="Share of requests faulted")
    kinds: tuple[FaultKind, ...] = Field(default=ALL_FAULTS, min_length=1)
    seed: int = Field(default=0, description="Changes which requests are faulted")
    step: Step | None = Field(default=None, description="With nth: the step whose call fails")
    nth: int | None = Field(default=None, ge=1, description="Fail the nth call of `step`, once")
    crash_after: int | None = Field(
        default=None, ge=1, description="Kill the serving process after this many answers"
    )
    retry_after: float = Field(default=0.01, ge=0, le=60, description="Retry-After seconds")
    slow_seconds: float = Field(default=2.0, gt=0, le=600, description="How long 'slow' stalls")

    @property
    def active(self) -> bool:
        return bool(self.rate or self.nth or self.crash_after)

    @classmethod
    def from_env(cls, value: str | None = None) -> "FaultPlan":
        raw = os.environ.get("REFINE_KIT_FAULTS", "") if value is None else value
        return cls.model_validate_json(raw) if raw.strip() else cls()


class Fault(BaseModel):
    """The injector's verdict on one request."""

    kind: FaultKind | Literal["hard"]

    def http_status(self) -> int | None:
        return {"429": 429, "500": 500, "503": 503, "hard": 500}.get(self.kind)

    def headers(self, plan: FaultPlan) -> dict[str, str]:
        """Retry-After in milliseconds too: the OpenAI client reads that header first."""
        if self.kind in ("429", "503"):
            return {
                "retry-after": str(max(1, round(plan.retry_after))),
                "retry-after-ms": str(round(plan.retry_after * 1000)),
            }
        if self.kind == "hard":
            return {"x-should-retry": "false"}
        return {}

    def error_body(self) -> dict[str, Any]:
        messages = {
            "429": ("Rate limit reached (injected)", "rate_limit_exceeded"),
            "500": ("The server had an error (injected)", "server_error"),
            "503": ("The server is overloaded (injected)", "server_error"),
            "hard": ("The server failed this call (injected)", "server_error"),
        }
        message, code = messages[self.kind]
        return {"error": {"message": message, "type": code, "param": None, "code": code}}


class FaultInjector:
    """Applies a plan to a stream of requests. Thread-safe; one per transport or server.

    A run's transport lives as long as the run, so `nth` and `crash_after` count the
    requests of one run (its task retries included), and every run starts from zero.
    """

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.answers = 0
        self._step_calls: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def decide(self, body: dict[str, Any], step: str) -> Fault | None:
        """Whether this request fails, and how. Counts every request it is shown."""
        plan = self.plan
        if not plan.active:
            return None
        with self._lock:
            self._step_calls[step] = n = self._step_calls.get(step, 0) + 1
            if plan.step == step and plan.nth == n:
                return Fault(kind="hard")
            if not plan.rate:
                return None
            # The k-th sighting of the same request rolls fresh dice, so a retry can succeed.
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            self._seen[digest] = k = self._seen.get(digest, 0) + 1
            roll = hashlib.sha256(f"{plan.seed}:{digest}:{k}".encode()).digest()
            if int.from_bytes(roll[:4], "big") / 2**32 >= plan.rate:
                return None
            kinds = [k for k in plan.kinds if step == "critique" or k not in _CRITIQUE_ONLY]
            if not kinds:  # e.g. only broken-critique faults, and this is not a critique
                return None
            return Fault(kind=kinds[roll[4] % len(kinds)])

    def answered(self) -> None:
        """Call after each successful answer; carries out `crash_after`."""
        with self._lock:
            self.answers += 1
            crash = self.plan.crash_after is not None and self.answers >= self.plan.crash_after
        if crash:
            os.kill(os.getpid(), signal.SIGKILL)


def corrupt_critique(kind: str, content: str, seed: int) -> str:
    """Turn a valid critique into the kind of broken answer real models sometimes give."""
    if kind == "bad_json":
        return content[: max(1, len(content) // 2)]  # cut off mid-object
    data = json.loads(content)
    if seed % 2:
        data["score"] = 11
    else:
        data.pop("improvements", None)
    return json.dumps(data)
