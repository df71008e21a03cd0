"""One retry budget per LLM call, under the OpenAI SDK: `RetryingTransport`.

The SDK's own retries are turned off and this transport does the same job with public
means: tenacity (a well-kept retry library) around each HTTP request. A transient failure
(408, 409, 429, 5xx, a dropped connection, a timeout, a 200 that is not a chat completion,
which the check below this layer turns into a 502) is sent again after the server's
`Retry-After` when it gives one, else after an exponential backoff with jitter that starts
at the `client_backoff` setting. A server's `x-should-retry` header is obeyed either way.
One call makes at most `retries + 1` requests; what still fails goes up to the SDK, which
raises the matching `openai` error for the kit to explain.

Each attempt is counted in the topic's ledger as it is sent, so a call that fails in the
end still reports every request and retry it made.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import httpx2
import tenacity

#: Statuses worth sending again, as the OpenAI SDK and most clients treat them.
TRANSIENT_STATUSES = frozenset({408, 409, 429})
#: The longest backoff between attempts when the server gives no Retry-After.
MAX_BACKOFF = 8.0
#: A Retry-After above this is not waited for: the failure is reported instead.
MAX_RETRY_AFTER = 120.0


#: Where servers say how long to wait, in the order read: OpenAI sends the first two, and
#: litellm's gateway only the last (seconds), which clients that know only Retry-After miss.
RETRY_AFTER_HEADERS = (
    ("retry-after-ms", 1000.0),
    ("retry-after", 1.0),
    ("llm_provider-retry-after", 1.0),
)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's wait in seconds, from whichever of its wait headers it sent.

    One reading for both the retry of a call and the pacer's pause of the whole run."""
    for name, scale in RETRY_AFTER_HEADERS:
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def is_transient(response: httpx2.Response) -> bool:
    """Whether sending the same request again may get a better answer."""
    advice = response.headers.get("x-should-retry")
    if advice in ("true", "false"):
        return advice == "true"
    wait = retry_after(response.headers)
    if wait is not None and wait > MAX_RETRY_AFTER:
        return False  # the server asks for longer than a call should wait
    return response.status_code in TRANSIENT_STATUSES or response.status_code >= 500


class RetryingTransport(httpx2.AsyncBaseTransport):
    """Sends each request up to `retries + 1` times while its failure is transient."""

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        *,
        retries: int,
        backoff: float,
        on_attempt: Callable[[int], None] = lambda attempt: None,
    ) -> None:
        self.inner = inner
        self.retries = retries
        self.backoff = backoff
        self.on_attempt = on_attempt  # attempt number, 1 for the first request

    def _wait(self, state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            answer: httpx2.Response = outcome.result()
            server_says = retry_after(answer.headers)
            if server_says is not None:
                return server_says
        delay = min(self.backoff * 2.0 ** (state.attempt_number - 1), MAX_BACKOFF)
        return delay * (1 - 0.25 * random.random())  # jitter, as the SDK's own backoff has

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=(
                tenacity.retry_if_exception_type(httpx2.TransportError)
                | tenacity.retry_if_result(is_transient)
            ),
            before_sleep=self._discard,
            retry_error_callback=self._last_answer,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                self.on_attempt(attempt.retry_state.attempt_number)
                response = await self.inner.handle_async_request(request)
            outcome = attempt.retry_state.outcome
            if outcome is not None and not outcome.failed:
                attempt.retry_state.set_result(response)  # so `is_transient` can judge it
        return response

    @staticmethod
    async def _discard(state: tenacity.RetryCallState) -> None:
        """Close a failed answer before sending again: its connection goes back to the pool."""
        if state.outcome is not None and not state.outcome.failed:
            await state.outcome.result().aclose()

    @staticmethod
    def _last_answer(state: tenacity.RetryCallState) -> httpx2.Response:
        """Out of attempts on a transient answer: hand it up for the SDK to report."""
        assert state.outcome is not None
        answer: httpx2.Response = state.outcome.result()  # an error is raised again (reraise)
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()
