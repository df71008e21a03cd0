"""The offline server as strict and as quirky as real ones: refusals, token caps, streaming,
the context window, server profiles and bursts of clients, driven by the real OpenAI SDK.

Latency is 0 throughout; nothing here sleeps. Timings are measured elsewhere, never asserted.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest

from refine_kit import prompts as P
from refine_kit.models import Critique
from refine_kit.offline.faults import FaultInjector, FaultPlan
from refine_kit.offline.model import OfflineModel, count_tokens
from refine_kit.offline.profiles import PROFILES, ServerProfile, profile_named
from refine_kit.offline.server import WORKERS, OfflineServer
from refine_kit.offline.transport import ModelStats, OfflineTransport
from refine_kit.settings import OFFLINE_MODEL

_DRAFT = OfflineModel().complete([{"role": "user", "content": P.draft_prompt("Tidal power")}])
DRAFT = [
    {"role": "system", "content": P.GENERATOR_SYSTEM_PROMPT},
    {"role": "user", "content": P.draft_prompt("Tidal power")},
]
CRITIQUE = [
    {"role": "system", "content": P.CRITIC_SYSTEM_PROMPT},
    {"role": "user", "content": P.critique_prompt(_DRAFT.content)},
]
JSON_OBJECT = {"type": "json_object"}
STRICT_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer"},
        "improvements": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["score", "improvements"],
    "additionalProperties": False,
}

_http = openai.DefaultHttpxClient()  # one pool for the module: a client costs ~0.1 s to build


def sdk(server: OfflineServer, **options: Any) -> openai.OpenAI:
    options.setdefault("max_retries", 0)  # a retry would hide a reset or a refusal
    return openai.OpenAI(base_url=server.base_url, api_key="anything", http_client=_http, **options)


def chat(server: OfflineServer, messages: list[dict[str, Any]] = DRAFT, **extra: Any) -> Any:
    """One completion through the SDK, with its HTTP response (for headers)."""
    raw = sdk(server).chat.completions.with_raw_response.create(
        model=OFFLINE_MODEL, messages=messages, **extra
    )
    return raw.parse(), raw.http_response


def post(server: OfflineServer, body: Any) -> httpx2.Response:
    """A raw POST, for bodies the SDK would never send."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _http.post(server.base_url + "/chat/completions", content=content)


def refusal(call: Callable[[], Any], error: type[openai.APIStatusError]) -> dict[str, Any]:
    """The error body of a call the SDK must see refused with `error`."""
    with pytest.raises(error) as caught:
        call()
    body: dict[str, Any] = caught.value.response.json()
    return body


@pytest.fixture
def server() -> Iterator[OfflineServer]:
    with OfflineServer() as running:
        yield running


# ---------------------------------------------------------------------------------------------
# 1. Bursts of clients: a fixed pool of workers, a deep backlog, no connection resets


@pytest.mark.parametrize("n", [64, 200])
def test_a_burst_of_sdk_clients_gets_no_errors(server: OfflineServer, n: int) -> None:
    client = sdk(server)
    gate = threading.Barrier(n)
    errors: list[BaseException] = []

    def one() -> None:
        gate.wait()
        try:
            client.chat.completions.create(model=OFFLINE_MODEL, messages=DRAFT)
        except BaseException as exc:  # collected: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counted = server.snapshot()
    assert (counted["requests"], counted["statuses"]) == (n, {"200": n})
    assert counted["max_in_flight"] <= WORKERS


def test_a_burst_of_new_connections_is_never_reset(server: OfflineServer) -> None:
    """Each request on its own new connection: what a 5-deep backlog used to reset."""
    host, port = server.base_url.removeprefix("http://").removesuffix("/v1").split(":")
    body = json.dumps({"model": OFFLINE_MODEL, "messages": DRAFT})
    gate = threading.Barrier(200)
    outcomes: list[int | str] = []

    def one() -> None:
        gate.wait()
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request("POST", "/v1/chat/completions", body=body)
            outcomes.append(connection.getresponse().status)
        except OSError as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [200] * 200


def test_idle_keep_alive_connections_hold_no_worker(server: OfflineServer) -> None:
    """More idle connections than workers: new requests, and the idle ones, still served."""
    host, port = server.base_url.removeprefix("http://").removesuffix("/v1").split(":")
    idle = [http.client.HTTPConnection(host, int(port), timeout=5) for _ in range(WORKERS + 30)]

    def models(conn: http.client.HTTPConnection) -> int:
        conn.request("GET", "/v1/models")
        response = conn.getresponse()
        response.read()
        return response.status

    try:
        assert [models(conn) for conn in idle] == [200] * len(idle)  # now idle, kept alive
        assert sdk(server).models.list().data[0].id == OFFLINE_MODEL
        sockets = [conn.sock for conn in idle]
        assert [models(conn) for conn in idle] == [200] * len(idle)
        assert [conn.sock for conn in idle] == sockets  # the same connections, reused
        server.stop()  # cuts every idle connection
        assert all(isinstance(s, socket.socket) and s.recv(1) == b"" for s in sockets)
    finally:
        for conn in idle:
            conn.close()


# ---------------------------------------------------------------------------------------------
# 2. What OpenAI refuses, refused in OpenAI's shape


def test_an_unknown_or_missing_model_is_404_model_not_found(server: OfflineServer) -> None:
    client = sdk(server)
    body = refusal(
        lambda: client.chat.completions.create(model="gpt-nope", messages=DRAFT),
        openai.NotFoundError,
    )
    assert body["error"]["code"] == "model_not_found" and "gpt-nope" in body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    missing = post(server, {"messages": DRAFT})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    announced = [m.id for m in client.models.list()]
    assert chat(server)[0].model in announced


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": ["user"], "content": "hi"}]}, "messages[0].role"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": ["json_object"]}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "Critique"}}},
            "response_format.json_schema.schema",
        ),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": "many"}, "max_completion_tokens"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_requests_openai_rejects_are_400(
    server: OfflineServer, extra: dict[str, Any], param: str
) -> None:
    args = {"model": OFFLINE_MODEL, "messages": DRAFT, **extra}
    body = refusal(lambda: sdk(server).chat.completions.create(**args), openai.BadRequestError)
    assert body["error"]["param"] == param and body["error"]["type"] == "invalid_request_error"
    assert server.snapshot()["requests"] == 0  # refused before any model work


def test_strict_schemas_are_checked_as_openai_does(server: OfflineServer) -> None:
    def critique_as(schema: dict[str, Any]) -> Any:
        spec = {"name": "Critique", "strict": True, "schema": schema}
        return chat(server, CRITIQUE, response_format={"type": "json_schema", "json_schema": spec})

    for loose in (
        {**STRICT_SCHEMA, "additionalProperties": True},
        {**STRICT_SCHEMA, "required": []},
    ):
        body = refusal(lambda: critique_as(loose), openai.BadRequestError)  # noqa: B023
        assert body["error"]["code"] == "invalid_json_schema"
    reply, _ = critique_as(STRICT_SCHEMA)
    Critique.model_validate_json(reply.choices[0].message.content)  # json_schema: JSON back


def test_unreadable_bodies_are_400_never_500(server: OfflineServer) -> None:
    nested = post(server, b'{"model": "m", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert nested.status_code == 400 and "not valid JSON" in nested.json()["error"]["message"]
    assert post(server, [1, 2]).status_code == 400
    assert server.snapshot()["statuses"] == {"400": 2}


# ---------------------------------------------------------------------------------------------
# 3. The token cap, and 5. the context window


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_the_token_limit_cuts_the_answer(server: OfflineServer, param: str) -> None:
    full, _ = chat(server)
    cut, _ = chat(server, **{param: 50})
    text = cut.choices[0].message.content
    assert full.choices[0].message.content.startswith(text) and count_tokens(text) == 50
    assert cut.choices[0].finish_reason == "length" and full.choices[0].finish_reason == "stop"
    assert (cut.usage.completion_tokens, cut.usage.prompt_tokens) == (50, full.usage.prompt_tokens)
    assert cut.usage.total_tokens == cut.usage.prompt_tokens + 50
    roomy, _ = chat(server, **{param: 10_000})
    assert roomy.choices[0].message.content == full.choices[0].message.content


def test_a_prompt_beyond_the_context_window_is_refused_before_model_work(
    server: OfflineServer,
) -> None:
    huge = [{"role": "user", "content": "Write a report on: " + "tide " * 250_000}]  # ~1.25 MB
    body = refusal(lambda: chat(server, huge), openai.BadRequestError)
    assert body["error"]["code"] == "context_length_exceeded"
    assert "maximum context length is 32768 tokens" in body["error"]["message"]
    window = server.profile.context_window
    body = refusal(lambda: chat(server, max_tokens=window), openai.BadRequestError)
    assert body["error"]["code"] == "context_length_exceeded"
    assert f"{window} in the completion" in body["error"]["message"]
    assert server.snapshot()["requests"] == 0


# ---------------------------------------------------------------------------------------------
# 4. Streaming, read by the SDK's own streaming clients


def test_the_sync_sdk_reads_a_stream(server: OfflineServer) -> None:
    full, _ = chat(server)
    stream = sdk(server).chat.completions.create(
        model=OFFLINE_MODEL, messages=DRAFT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content and len(chunks) > 4
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage == full.usage
    assert all(c.usage is None for c in chunks[:-1])
    assert server.snapshot()["statuses"] == {"200": 2}


def test_the_async_sdk_reads_a_stream_cut_at_the_limit(server: OfflineServer) -> None:
    async def read() -> list[Any]:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="anything", max_retries=0
        ) as client:
            stream = await client.chat.completions.create(
                model=OFFLINE_MODEL, messages=DRAFT, stream=True, max_tokens=40
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(read())
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert count_tokens(text) == 40 and chunks[-1].choices[0].finish_reason == "length"
    assert all(c.usage is None for c in chunks)  # no usage chunk unless asked for


def test_the_in_process_transport_streams_and_refuses_as_its_profile() -> None:
    async def run(profile: str, **extra: Any) -> Any:
        transport = OfflineTransport(stats=ModelStats(), profile=profile)
        async with openai.AsyncOpenAI(
            base_url="http://127.0.0.1:9/offline/v1",  # never dialled: the transport answers
            api_key="offline",
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=transport),
        ) as client:
            reply = await client.chat.completions.create(
                model=OFFLINE_MODEL, messages=CRITIQUE, **extra
            )
            return [c async for c in reply] if extra.get("stream") else reply

    chunks = asyncio.run(run("openai", stream=True, response_format=JSON_OBJECT))
    Critique.model_validate_json("".join(c.choices[0].delta.content or "" for c in chunks))
    with pytest.raises(openai.BadRequestError) as caught:
        asyncio.run(run("lmstudio", response_format=JSON_OBJECT))
    assert caught.value.body == "'response_format.type' must be 'json_schema' or 'text'"


# ---------------------------------------------------------------------------------------------
# 6. Server profiles


def test_every_profile_is_named_and_described() -> None:
    assert set(PROFILES) == {
        "openai", "lmstudio", "ollama", "fenced", "reasoning", "no-json-mode", "vllm",
        "json-mode-only", "no-response-format",
    }  # fmt: skip
    assert all(isinstance(p, ServerProfile) and p.summary for p in PROFILES.values())
    with pytest.raises(ValueError, match="lmstudio"):
        profile_named("llamafile")
    with pytest.raises(ValueError, match="unknown server profile"):
        OfflineServer(profile="llamafile")


def test_openai_sends_rate_limit_headers(server: OfflineServer) -> None:
    reply, response = chat(server, max_tokens=100)
    headers = response.headers
    assert int(headers["x-ratelimit-remaining-requests"]) < int(
        headers["x-ratelimit-limit-requests"]
    )
    spent = int(headers["x-ratelimit-limit-tokens"]) - int(headers["x-ratelimit-remaining-tokens"])
    assert spent > 100  # the prompt plus the requested maximum, as providers estimate it
    assert headers["x-ratelimit-reset-requests"].endswith("ms")


def test_lmstudio_refuses_json_object_flat_and_takes_json_schema(
    serving: Callable[..., OfflineServer],
) -> None:
    server = serving(profile="lmstudio")
    body = refusal(
        lambda: chat(server, CRITIQUE, response_format=JSON_OBJECT), openai.BadRequestError
    )
    assert body == {"error": "'response_format.type' must be 'json_schema' or 'text'"}
    fmt = {"type": "json_schema", "json_schema": {"name": "Critique", "schema": STRICT_SCHEMA}}
    reply, response = chat(server, CRITIQUE, response_format=fmt)
    Critique.model_validate_json(reply.choices[0].message.content)
    assert "x-ratelimit-limit-requests" not in response.headers
    other = refusal(lambda: chat(server, messages=[]), openai.BadRequestError)
    assert set(other["error"]) == {"message", "type", "param", "code"}  # others: OpenAI's shape


def test_ollama_is_flat_headerless_and_knows_only_max_tokens(
    serving: Callable[..., OfflineServer],
) -> None:
    server = serving(profile="ollama")
    client = openai.OpenAI(base_url=server.base_url, api_key="ollama", http_client=_http)
    body = refusal(
        lambda: client.chat.completions.create(model="llama3", messages=DRAFT),
        openai.NotFoundError,
    )
    assert body == {"error": 'model "llama3" not found, try pulling it first'}
    reply, response = chat(server, max_completion_tokens=20)  # not a field Ollama knows
    assert reply.choices[0].finish_reason == "stop"
    assert not any(name.startswith("x-ratelimit") for name in response.headers)
    assert chat(server, max_tokens=20)[0].choices[0].finish_reason == "length"


def test_ollama_reshapes_injected_faults_too(serving: Callable[..., OfflineServer]) -> None:
    body = {"model": OFFLINE_MODEL, "messages": DRAFT}
    seed = next(
        s
        for s in range(1000)
        if FaultInjector(FaultPlan(rate=0.5, kinds=("500",), seed=s)).decide(body, "draft")
    )
    server = serving(profile="ollama", faults=FaultPlan(rate=0.5, kinds=("500",), seed=seed))
    assert post(server, body).json() == {"error": "The server had an error (injected)"}


def test_vllm_errors_are_flat_with_numeric_codes(serving: Callable[..., OfflineServer]) -> None:
    server = serving(profile="vllm")
    client = sdk(server)
    body = refusal(
        lambda: client.chat.completions.create(model="Qwen/Qwen3-8B", messages=DRAFT),
        openai.NotFoundError,
    )
    assert body == {
        "object": "error",
        "message": "The model `Qwen/Qwen3-8B` does not exist.",
        "type": "NotFoundError",
        "param": None,
        "code": 404,
    }
    body = refusal(lambda: chat(server, max_tokens=40_000), openai.BadRequestError)
    assert (body["code"], body["type"]) == (400, "BadRequestError")
    assert "maximum context length" in body["message"]
    for param in ("max_tokens", "max_completion_tokens"):
        assert chat(server, **{param: 10})[0].usage.completion_tokens == 10


def test_fenced_wraps_critiques_in_a_json_fence(serving: Callable[..., OfflineServer]) -> None:
    plain, fenced = serving(), serving(profile="fenced")
    reply, _ = chat(fenced, CRITIQUE, response_format=JSON_OBJECT)
    content = reply.choices[0].message.content
    before, _, rest = content.partition("```json\n")
    assert before.strip().endswith(":") and rest.endswith("\n```")
    expected = chat(plain, CRITIQUE, response_format=JSON_OBJECT)[0].choices[0].message.content
    assert rest.removesuffix("\n```") == expected
    with pytest.raises(ValueError):
        Critique.model_validate_json(content)  # what a client must cope with
    assert chat(fenced)[0].choices[0].message.content == chat(plain)[0].choices[0].message.content


def test_reasoning_thinks_first_in_every_answer(serving: Callable[..., OfflineServer]) -> None:
    plain, reasoning = serving(), serving(profile="reasoning")
    for messages, extra in ((DRAFT, {}), (CRITIQUE, {"response_format": JSON_OBJECT})):
        content = chat(reasoning, messages, **extra)[0].choices[0].message.content
        thought, end, answer = content.partition("</think>\n\n")
        assert content.startswith("<think>\n") and end and thought.count(". ") >= 2
        assert answer == chat(plain, messages, **extra)[0].choices[0].message.content


def test_no_json_mode_ignores_response_format(serving: Callable[..., OfflineServer]) -> None:
    plain, server = serving(), serving(profile="no-json-mode")
    reply, _ = chat(server, CRITIQUE, response_format={"type": "xml"})  # not even checked
    content = reply.choices[0].message.content
    assert content.startswith("Here is my assessment: {")
    assert content.endswith("} I hope this helps.")
    inner = content.removeprefix("Here is my assessment: ").removesuffix(" I hope this helps.")
    expected = chat(plain, CRITIQUE, response_format=JSON_OBJECT)[0].choices[0].message.content
    assert inner == expected and 1 <= Critique.model_validate_json(inner).score <= 10


# ---------------------------------------------------------------------------------------------
# 7. Counters a test can read


def test_stats_count_responses_by_status(server: OfflineServer) -> None:
    chat(server)
    _http.get(server.base_url + "/models")
    post(server, {"model": "nope", "messages": DRAFT})
    post(server, {"model": OFFLINE_MODEL, "messages": []})
    _http.get(server.base_url + "/nowhere")
    counted = _http.get(server.base_url.removesuffix("/v1") + "/refine-kit/stats").json()
    assert counted["statuses"] == {"200": 2, "400": 1, "404": 2}
    assert (counted["requests"], counted["profile"]) == (1, "openai")
    assert server.snapshot()["statuses"]["200"] == 3  # the stats answer itself, once sent
