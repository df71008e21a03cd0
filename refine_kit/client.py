"""The LLM client layer: the run's `openai.AsyncOpenAI`, and `call_llm`.

The offline model plugs in as the client's HTTP transport, so everything above this module
is identical for offline and real runs. The client is created lazily, once per run (see
`context.py`), because the SDK refuses to construct one without a key, and a missing key
must surface as one clear error at the first call, not at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import openai
from flyte.errors import NonRecoverableError
from openai._constants import INITIAL_RETRY_DELAY

from refine_kit import context
from refine_kit.context import RunContext
from refine_kit.models import LLMReply, Usage
from refine_kit.settings import API_KEY_ENV, API_KEY_SECRET, LLMConfig, Settings

# The offline transport answers before any connection is made; a loopback URL keeps even a
# misconfiguration from ever reaching the network.
OFFLINE_BASE_URL = "http://127.0.0.1:9/offline/v1"

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
    """Make `config` the one `call_llm` uses inside this block (and the traced calls in it).

    For calling the traced steps by hand, outside `refine`; the pipeline opens its own runs.
    """
    with context.use(RunContext(config=config)):
        yield config


def current_config() -> LLMConfig:
    """The config of the current run, or the one the environment describes."""
    ctx = context.current()
    return ctx.config if ctx is not None else Settings().llm_config()


def get_client(ctx: RunContext) -> openai.AsyncOpenAI:
    """The run's client, created on first use on the running event loop.

    httpx connection pools belong to the loop they were made on; a run that moves to
    another loop (it should not) gets a client of its own there.
    """
    loop = asyncio.get_running_loop()
    shared = ctx.resources
    if shared.client is None or shared.client_loop is not loop:
        shared.client, shared.client_loop = _make_client(ctx.config), loop
    return shared.client


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


async def _on_request(request: httpx2.Request) -> None:
    """Count every HTTP request in the topic's ledger, the client's own retries included."""
    ctx = context.current()
    if ctx is not None:
        ctx.ledger.requests += 1


def _make_client(config: LLMConfig) -> openai.AsyncOpenAI:
    common: dict[str, Any] = {
        "timeout": config.request_timeout,
        "max_retries": config.client_max_retries,
        "backoff": config.client_backoff,
    }
    hooks = {"request": [_on_request]}
    if config.backend == "offline":
        from refine_kit.offline.transport import OfflineTransport  # the back-end is chosen here

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
            f"{API_KEY_SECRET!r} secret). Set it, point base_url at an OpenAI-compatible server, "
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
    as `NonRecoverableError` so Flyte does not retry the task either. Outside any run (a
    step called by hand) the call gets a short run of its own, configured from `Settings`.
    """
    ctx = context.current()
    if ctx is None:
        async with context.run(Settings().llm_config()):
            return await call_llm(prompt, system, json_mode)
    config = ctx.config
    client = get_client(ctx)
    kwargs: dict[str, Any] = {
        "model": config.model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
    }
    # OpenAI's newer models take max_completion_tokens; compatible servers know max_tokens.
    kwargs["max_tokens" if config.base_url else "max_completion_tokens"] = config.max_tokens
    if json_mode:
        kwargs["response_format"] = {"type": "json_object"}
    try:
        async with ctx.gate or contextlib.nullcontext():
            started = time.time()
            raw = await client.chat.completions.with_raw_response.create(**kwargs)
            seconds = time.time() - started
    except _PERMANENT_ERRORS as exc:
        raise NonRecoverableError(f"{type(exc).__name__} from the LLM endpoint: {exc}") from exc
    response = raw.parse()
    usage = response.usage
    if usage:
        ctx.ledger.count_tokens(usage.prompt_tokens, usage.completion_tokens)
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
        requests=raw.retries_taken + 1,
    )
