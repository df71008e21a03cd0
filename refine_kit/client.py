"""The LLM client layer: the run's `openai.AsyncOpenAI`, and `call_llm`.

The offline model plugs in as the client's HTTP transport, so everything above this module
is identical for offline and real runs. The client is created lazily, once per run (see
`context.py`), because the SDK refuses to construct one without a key, and a missing key
must surface as one clear error at the first call, not at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import openai
from pydantic import BaseModel

from refine_kit import context, diagnosis, endpoint
from refine_kit.context import RunContext
from refine_kit.diagnosis import NOT_A_COMPLETION, NOT_A_COMPLETION_CODE
from refine_kit.endpoint import API_KEY_ENV, API_KEY_SECRET
from refine_kit.errors import EndpointError, RetryableEndpointError
from refine_kit.models import LLMReply, Usage
from refine_kit.pacing import PacedTransport, Pacer
from refine_kit.retries import RetryingTransport
from refine_kit.settings import LLMConfig, Settings

# The offline transport answers before any connection is made; a loopback URL keeps even a
# misconfiguration from ever reaching the network.
OFFLINE_BASE_URL = "http://127.0.0.1:9/offline/v1"

# The SDK's own pool size; the transport is built here only to check answers (see below).
_CONNECTION_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)


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
        if shared.pacer is None:  # one pacer per run: its limits and 429 pauses are shared
            shared.pacer = Pacer(ctx.config.requests_per_minute, ctx.config.tokens_per_minute)
        shared.client = _make_client(ctx.config, shared.pacer)
        shared.client_loop = loop
    return shared.client


def _count_attempt(attempt: int) -> None:
    """Count every HTTP request in the topic's ledger as it is sent, retries included."""
    ctx = context.current()
    if ctx is not None:
        ctx.ledger.requests += 1
        if attempt > 1:
            ctx.ledger.client_retries += 1


def _transport(inner: httpx2.AsyncBaseTransport, config: LLMConfig, pacer: Pacer) -> Any:
    """What every request goes through, outermost first: the one retry budget, the check
    that a 200 is a chat completion, and the pacing under the provider's rate limits."""
    return RetryingTransport(
        ChatResponseCheck(PacedTransport(inner, pacer)),
        retries=config.client_max_retries,
        backoff=config.client_backoff,
        on_attempt=_count_attempt,
    )


#: A model that answers in place of every back-end (see `refine_kit.testing`); None: none.
_scripted_model: httpx2.AsyncBaseTransport | None = None


def use_model(transport: httpx2.AsyncBaseTransport | None) -> None:
    """Answer every chat request of this process's runs with `transport` (tests), or stop.

    Process-wide on purpose: Flyte runs a local batch on a thread of its own.
    """
    global _scripted_model
    _scripted_model = transport


def _make_client(config: LLMConfig, pacer: Pacer) -> openai.AsyncOpenAI:
    # Retries happen in the transport (see retries.py), so the SDK makes one request a call.
    common: dict[str, Any] = {"timeout": config.request_timeout, "max_retries": 0}
    if _scripted_model is not None:
        return openai.AsyncOpenAI(
            api_key="scripted",
            base_url=endpoint.with_credentials(config.base_url or OFFLINE_BASE_URL),
            http_client=httpx2.AsyncClient(transport=_transport(_scripted_model, config, pacer)),
            **common,
        )
    if config.backend == "offline":
        from refine_kit.offline.transport import OfflineTransport  # the back-end is chosen here

        transport = OfflineTransport(latency=config.offline_latency, faults=config.faults)
        return openai.AsyncOpenAI(
            api_key="offline",
            base_url=OFFLINE_BASE_URL,
            http_client=httpx2.AsyncClient(transport=_transport(transport, config, pacer)),
            **common,
        )
    key = os.environ.get(API_KEY_ENV)
    if not key and endpoint.is_openai(config.base_url):
        raise EndpointError(
            f"No API key: the 'openai' back-end needs {API_KEY_ENV} (on a cluster, the "
            f"{API_KEY_SECRET!r} secret). Set it, point base_url at an OpenAI-compatible server, "
            "or use the offline back-end."
        )
    network = httpx2.AsyncHTTPTransport(limits=_CONNECTION_LIMITS)
    # Always an explicit URL: the SDK must not re-read OPENAI_BASE_URL behind the settings.
    url = endpoint.with_credentials(config.base_url) if config.base_url else endpoint.shown(None)
    # Local OpenAI-compatible servers (vLLM, Ollama, LM Studio) accept any key.
    return openai.AsyncOpenAI(
        api_key=key or "not-needed",
        base_url=url,
        http_client=openai.DefaultAsyncHttpxClient(transport=_transport(network, config, pacer)),
        **common,
    )


class ChatResponseCheck(httpx2.AsyncBaseTransport):
    """Turns a 200 that is not a chat completion into a 502 the client retries and reports.

    A wrong port or a login proxy answers 200 with an HTML page; a broken server answers
    `choices: []`. Left alone, the SDK hands such a body on and the kit fails later with an
    AttributeError or IndexError. Caught here, it is a server fault like any 5xx: retried
    within the budget, then reported with what came back instead.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if response.status_code != 200 or not request.url.path.endswith("/chat/completions"):
            return response
        body = await response.aread()
        problem = _not_a_completion(response.headers.get("content-type", ""), body)
        if problem is None:
            return response
        error = {"message": problem, "type": "server_error", "code": NOT_A_COMPLETION_CODE}
        return httpx2.Response(NOT_A_COMPLETION, json={"error": error}, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _not_a_completion(content_type: str, body: bytes) -> str | None:
    """Why a 200 body is not a chat completion, or None when it is one."""
    try:
        data = json.loads(body)
    except ValueError:
        kind = "an HTML page" if b"<html" in body[:2000].lower() else content_type or "no JSON"
        return f"the endpoint answered HTTP 200 with {kind}, not a chat completion"
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return "the endpoint answered HTTP 200 with JSON that is not a chat completion"
    if not data["choices"] or not isinstance(data["choices"][0].get("message"), dict):
        return "the endpoint answered a chat completion with no message in it"
    return None


#: One chat message as the API takes it: {"role": "system" | "user" | "assistant", "content"}.
Message = dict[str, str]


async def call_llm(
    prompt: str,
    system: str,
    json_mode: bool = False,
    *,
    schema: type[BaseModel] | None = None,
) -> LLMReply:
    """Make one chat completion from a system and a user prompt (the tutorial's call).

    Not traced itself: each traced step around it makes exactly one call and validates the
    answer inside the trace, so a retry never replays an answer that failed validation.
    See `chat` for the conversation form, the structured-output ladder and the retries.
    """
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    return await chat(messages, json_mode=json_mode, schema=schema)


async def chat(
    messages: list[Message],
    *,
    json_mode: bool = False,
    schema: type[BaseModel] | None = None,
) -> LLMReply:
    """Make one chat completion of a whole conversation; return text, usage and timing.

    `json_mode` asks for a JSON answer, as `schema`'s JSON schema where the server allows;
    a server that refuses a `response_format` is asked again one rung down (`json_schema` ->
    `json_object` -> the prompt's own instructions) and the rung that works is remembered.

    Retries have one budget: transient failures (429, 5xx, dropped connections, timeouts,
    a 200 that is not a chat completion) are retried here by the OpenAI client, honouring
    Retry-After, so one call makes at most `client_max_retries + 1` requests. What still
    fails is an `EndpointError` naming the URL, status and the server's reason, and Flyte
    does not retry it. Only a failure the server marks `x-should-retry: false` is left to
    the task retry. Outside any run (a step called by hand) the call opens a short run.
    """
    ctx = context.current()
    if ctx is None:
        async with context.run(Settings().llm_config()):
            return await chat(messages, json_mode=json_mode, schema=schema)
    config = ctx.config
    url = OFFLINE_BASE_URL if config.backend == "offline" else endpoint.shown(config.base_url)
    remember = config.backend != "offline"  # the offline model's shape is known; no file
    caps = endpoint.capabilities(url, config.model, remember=remember)
    client = get_client(ctx)
    before = ctx.ledger.requests
    # While this endpoint's structured-output shape is unknown, one critique at a time finds
    # it out, so a refusal is paid once, not once per topic that starts at the same moment.
    async with _probing(ctx, caps, json_mode):
        raw, started, seconds, mode, tokens = await _create(
            ctx, client, caps, url, messages, json_mode, schema, before
        )
        if mode is not None:
            endpoint.learn_structured(url, config.model, mode, remember=remember)
        if caps.token_parameter is None:
            caps.token_parameter = tokens
    response = raw.parse()
    usage = _plausible_usage(response.usage)
    ctx.ledger.answers += 1
    ctx.ledger.count_tokens(usage.prompt_tokens, usage.completion_tokens)
    choice = response.choices[0]
    return LLMReply(
        text=choice.message.content or "",
        usage=usage,
        model=response.model or config.model,
        started_at=started,
        seconds=seconds,
        requests=ctx.ledger.requests - before,
        finish_reason=choice.finish_reason or "stop",
    )


@contextlib.asynccontextmanager
async def _probing(
    ctx: RunContext, caps: endpoint.Capabilities, json_mode: bool
) -> AsyncIterator[None]:
    """Hold the run's probe lock while the endpoint's structured-output shape is unknown.

    The first critique to take it probes; the others wait, then find the answer known and
    let go before sending, so they run side by side again. Servers often refuse a mode, and
    the ladder may take two refusals. The wait is one answer long, and only on an endpoint
    no run has used lately: the shape found is remembered across runs (`endpoint`).

    The token parameter is not worth a wait: it is guessed from the URL and rarely refused,
    and waiting would hold every topic's first draft for a whole answer; a refusal costs
    each call then in flight one quick 400.
    """

    def known() -> bool:
        return not json_mode or caps.structured is not None

    if known():
        yield
        return
    lock = ctx.resources.probe_lock()
    await lock.acquire()
    if known():
        lock.release()
        yield
        return
    try:
        yield
    finally:
        lock.release()


async def _create(
    ctx: RunContext,
    client: openai.AsyncOpenAI,
    caps: endpoint.Capabilities,
    url: str,
    messages: list[Message],
    json_mode: bool,
    schema: type[BaseModel] | None,
    before: int,
) -> tuple[Any, float, float, endpoint.StructuredMode | None, endpoint.TokenParameter]:
    """Send the request, stepping down the request shapes this endpoint refuses."""
    config = ctx.config
    # The shapes to try are kept here and published (by the caller) only once one works, so
    # a concurrent call never picks up a half-finished step down the ladder.
    mode = (caps.structured or endpoint.STRUCTURED_LADDER[0]) if json_mode else None
    tokens: endpoint.TokenParameter = caps.token_parameter or (
        "max_completion_tokens" if endpoint.is_openai(config.base_url) else "max_tokens"
    )
    swapped_tokens = caps.token_parameter is not None
    while True:
        kwargs: dict[str, Any] = {"model": config.model, "messages": messages}
        kwargs[tokens] = config.max_tokens
        if mode is not None and (shape := endpoint.response_format(mode, schema)) is not None:
            kwargs["response_format"] = shape
        try:
            async with ctx.gate or contextlib.nullcontext():
                started = time.time()
                raw = await client.chat.completions.with_raw_response.create(**kwargs)
                seconds = time.time() - started
        except openai.BadRequestError as exc:
            if mode is not None and mode != "instructions" and diagnosis.is_format_refusal(exc):
                mode = endpoint.STRUCTURED_LADDER[endpoint.STRUCTURED_LADDER.index(mode) + 1]
                continue  # the same question, in a shape this server accepts
            if not swapped_tokens and diagnosis.refused_parameter(exc, tokens):
                tokens = (
                    "max_tokens" if tokens == "max_completion_tokens" else "max_completion_tokens"
                )
                swapped_tokens = True
                continue
            raise _failure(exc, url, config, ctx.ledger.requests - before) from None
        except openai.APIError as exc:
            raise _failure(exc, url, config, ctx.ledger.requests - before) from None
        return raw, started, seconds, mode, tokens


def _failure(exc: openai.APIError, url: str, config: LLMConfig, requests: int) -> Exception:
    """The error for a failed call: permanent, unless the server asked for a later retry."""
    message = diagnosis.explain(
        exc, url=url, model=config.model, timeout=config.request_timeout, requests=requests
    )
    response = getattr(exc, "response", None)
    if response is not None and response.headers.get("x-should-retry") == "false":
        return RetryableEndpointError(message)
    return EndpointError(message)


# A usage figure above this is not a real answer's: a broken server's, priced at nothing.
_MAX_PLAUSIBLE_TOKENS = 10_000_000


def _plausible_usage(usage: Any) -> Usage:
    """The answer's token counts, or zeros when the server's figures cannot be real."""
    if usage is None:
        return Usage()
    counts = (usage.prompt_tokens, usage.completion_tokens)
    if any(not isinstance(n, int) or not 0 <= n <= _MAX_PLAUSIBLE_TOKENS for n in counts):
        return Usage()
    return Usage(prompt_tokens=counts[0], completion_tokens=counts[1], total_tokens=sum(counts))
