"""The LLM client layer: one `openai.AsyncOpenAI` per back-end, and `call_llm`.

The offline model plugs in as the client's HTTP transport, so everything above this module
is identical for offline and real runs. Clients are created lazily because the SDK refuses
to construct one without a key, and a missing key must surface as one clear error at the
first call, not at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import openai
from flyte.errors import NonRecoverableError
from openai._constants import INITIAL_RETRY_DELAY

from refine_kit import replay
from refine_kit.models import LLMReply, Usage
from refine_kit.offline.transport import OfflineTransport
from refine_kit.settings import API_KEY_ENV, LLMConfig

# The offline transport answers before any connection is made; a loopback URL keeps even a
# misconfiguration from ever reaching the network.
OFFLINE_BASE_URL = "http://127.0.0.1:9/offline/v1"

_active_config: contextvars.ContextVar[LLMConfig | None] = contextvars.ContextVar(
    "refine_kit_llm_config", default=None
)
# The batch's limit on requests in flight; tasks started inside `limit_calls` inherit it.
_call_gate: contextvars.ContextVar[asyncio.Semaphore | None] = contextvars.ContextVar(
    "refine_kit_call_gate", default=None
)
# One client per event loop and config: httpx connection pools belong to the loop they run on.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[LLMConfig, openai.AsyncOpenAI]]
_clients = weakref.WeakKeyDictionary()

# Errors that no retry can fix: the request itself or the credentials are wrong.
_PERMANENT_ERRORS = (
    openai.AuthenticationError,
    openai.PermissionDeniedError,
    openai.NotFoundError,
    openai.BadRequestError,
    openai.UnprocessableEntityError,
)


@contextmanager
def llm_session(config: LLMConfig) -> Iterator[LLMConfig]:
    """Make `config` the one `call_llm` uses inside this block (and the traced calls in it)."""
    token = _active_config.set(config)
    try:
        yield config
    finally:
        _active_config.reset(token)


@contextmanager
def limit_calls(max_in_flight: int) -> Iterator[asyncio.Semaphore]:
    """Allow at most `max_in_flight` LLM requests at once inside this block.

    Local Flyte runs child tasks in this process and event loop, and they inherit the
    context, so one semaphore bounds every call of a batch however its topics interleave.
    """
    gate = asyncio.Semaphore(max_in_flight)
    token = _call_gate.set(gate)
    try:
        yield gate
    finally:
        _call_gate.reset(token)


def current_config() -> LLMConfig:
    """The config of the enclosing `llm_session`, or the one the environment describes."""
    config = _active_config.get()
    if config is None:
        from refine_kit.settings import Settings

        config = Settings().llm_config()
    return config


def get_client(config: LLMConfig) -> openai.AsyncOpenAI:
    """The client for `config` on the running event loop, created on first use."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    client = per_loop.get(config)
    if client is None:
        client = per_loop[config] = _make_client(config)
    return client


class _KitAsyncOpenAI(openai.AsyncOpenAI):
    """The SDK client with a configurable first backoff.

    The SDK's own retry loop is kept (it knows which errors are transient and honours
    Retry-After); only its fixed 0.5 s starting delay is scaled, so tests can use 0.
    """

    def __init__(self, *, backoff: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kit_backoff = backoff

    def _calculate_retry_timeout(self, remaining_retries, options, response_headers=None):  # noqa: ANN001, ANN202
        delay = super()._calculate_retry_timeout(remaining_retries, options, response_headers)
        if self._parse_retry_after_header(response_headers) is not None:
            return delay  # the server said how long to wait
        return delay * self._kit_backoff / INITIAL_RETRY_DELAY


_request_count: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "refine_kit_request_count", default=None
)


async def _on_request(request: httpx2.Request) -> None:
    """Count every HTTP request, the client's own retries included."""
    counter = _request_count.get()
    if counter is not None:
        counter[0] += 1
    replay.count_request()


def _make_client(config: LLMConfig) -> openai.AsyncOpenAI:
    common: dict[str, Any] = {
        "timeout": config.request_timeout,
        "max_retries": config.client_max_retries,
        "backoff": config.client_backoff,
    }
    hooks = {"request": [_on_request]}
    if config.backend == "offline":
        transport = OfflineTransport(latency=config.offline_latency, faults=config.faults)
        return _KitAsyncOpenAI(
            api_key="offline",
            base_url=OFFLINE_BASE_URL,
            http_client=httpx2.AsyncClient(transport=transport, event_hooks=hooks),
            **common,
        )
    key = os.environ.get(API_KEY_ENV)
    if not key and not config.base_url:
        raise NonRecoverableError(
            f"No API key: the 'openai' back-end needs {API_KEY_ENV} (on a cluster, the "
            "'openai-api-key' secret). Set it, point base_url at an OpenAI-compatible server, "
            "or use the offline back-end."
        )
    # Local OpenAI-compatible servers (vLLM, Ollama, LM Studio) accept any key.
    return _KitAsyncOpenAI(
        api_key=key or "not-needed",
        base_url=config.base_url,
        http_client=openai.DefaultAsyncHttpxClient(event_hooks=hooks),
        **common,
    )


async def call_llm(prompt: str, system: str, json_mode: bool = False) -> LLMReply:
    """Make one chat completion and return its text with usage and timing.

    Not traced itself: each traced step around it makes exactly one call and validates the
    answer inside the trace, so a retry never replays an answer that failed validation.
    Transient HTTP errors (429, 5xx, timeouts, dropped connections) are retried by the
    OpenAI client with backoff, honouring Retry-After; errors no retry can fix are raised
    as `NonRecoverableError` so Flyte does not retry the task either.
    """
    config = current_config()
    client = get_client(config)
    kwargs: dict = {
        "model": config.model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
    }
    # OpenAI's newer models take max_completion_tokens; compatible servers know max_tokens.
    kwargs["max_tokens" if config.base_url else "max_completion_tokens"] = config.max_tokens
    if json_mode:
        kwargs["response_format"] = {"type": "json_object"}
    counter = [0]
    token = _request_count.set(counter)
    try:
        async with _call_gate.get() or contextlib.nullcontext():
            started = time.time()
            response = await client.chat.completions.create(**kwargs)
            seconds = time.time() - started
    except _PERMANENT_ERRORS as exc:
        raise NonRecoverableError(f"{type(exc).__name__} from the LLM endpoint: {exc}") from exc
    finally:
        _request_count.reset(token)
    usage = response.usage
    if usage:
        replay.count_tokens(usage.prompt_tokens, usage.completion_tokens)
    return LLMReply(
        text=response.choices[0].message.content or "",
        usage=Usage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            total_tokens=usage.total_tokens if usage else 0,
        ),
        model=response.model or config.model,
        started_at=started,
        seconds=seconds,
        requests=max(counter[0], 1),
    )
