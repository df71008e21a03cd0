"""The loopback OpenAI-compatible server, driven over real sockets by the real OpenAI SDK.

Faults are deterministic: each test picks a seed by replaying the server's own fault dice
on the exact body the SDK sends, so a request fails (or succeeds) on purpose, never by luck.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from typer.testing import CliRunner

from refine_kit import prompts as P
from refine_kit.cli import app
from refine_kit.models import Critique
from refine_kit.offline.faults import FaultInjector, FaultPlan
from refine_kit.offline.model import OfflineModel
from refine_kit.offline.server import OfflineServer
from refine_kit.settings import OFFLINE_MODEL

TOPIC = "Urban beekeeping"
_DRAFT = (
    OfflineModel()
    .complete(
        [
            {"role": "system", "content": P.GENERATOR_SYSTEM_PROMPT},
            {"role": "user", "content": P.draft_prompt(TOPIC)},
        ]
    )
    .content
)
_STEP_PROMPTS = {
    "draft": (P.GENERATOR_SYSTEM_PROMPT, P.draft_prompt(TOPIC)),
    "critique": (P.CRITIC_SYSTEM_PROMPT, P.critique_prompt(_DRAFT)),
    "revise": (P.REVISER_SYSTEM_PROMPT, P.revise_prompt(_DRAFT, ["Add a conclusion"])),
    "summary": (P.SUMMARY_SYSTEM_PROMPT, P.summary_prompt(_DRAFT)),
}


def chat_args(step: str) -> dict[str, Any]:
    """The keyword arguments of one pipeline step's call, which the SDK sends verbatim."""
    system, user = _STEP_PROMPTS[step]
    args: dict[str, Any] = {
        "model": OFFLINE_MODEL,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
    }
    if step == "critique":
        args["response_format"] = {"type": "json_object"}
    return args


# One connection pool for the module: building an HTTP client costs ~0.1 s (its SSL context).
_http = openai.DefaultHttpxClient()


def sdk(server: OfflineServer, **options: Any) -> openai.OpenAI:
    options.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=server.base_url, api_key="anything", http_client=_http, **options)


def stats(server: OfflineServer) -> dict[str, Any]:
    return _http.get(server.base_url.removesuffix("/v1") + "/refine-kit/stats").json()


def plan_failing(
    kind: str, step: str = "draft", *, then_ok: bool = False, **extra: Any
) -> FaultPlan:
    """A plan failing the first request for `step` with `kind` (and, if asked, not its retry)."""
    body = chat_args(step)
    for seed in range(1000):
        plan = FaultPlan(rate=0.5, kinds=(kind,), seed=seed, **extra)
        dice = FaultInjector(plan)
        first = dice.decide(body, step)
        if first is not None and first.kind == kind and not (then_ok and dice.decide(body, step)):
            return plan
    raise AssertionError(f"no seed below 1000 fails {step} with {kind}")


@pytest.fixture
def server() -> Iterator[OfflineServer]:
    with OfflineServer() as running:
        yield running


def serving(**options: Any) -> OfflineServer:
    return OfflineServer(**options).start()


# ---------------------------------------------------------------------------------------------
# Endpoints


@pytest.mark.parametrize("step", ["draft", "critique", "revise", "summary"])
def test_each_step_round_trips_like_the_in_process_model(server: OfflineServer, step: str) -> None:
    args = chat_args(step)
    reply = sdk(server).chat.completions.create(**args)
    expected = OfflineModel().complete(args["messages"], json_mode=step == "critique")
    assert reply.choices[0].message.content == expected.content
    assert reply.model == OFFLINE_MODEL and reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        expected.prompt_tokens,
        expected.completion_tokens,
    )
    assert reply.usage.total_tokens == expected.prompt_tokens + expected.completion_tokens
    if step == "critique":
        assert 1 <= Critique.model_validate_json(expected.content).score <= 10


def test_models_lists_the_offline_model(server: OfflineServer) -> None:
    assert [m.id for m in sdk(server).models.list()] == [OFFLINE_MODEL]


def test_errors_use_openai_error_shape(server: OfflineServer) -> None:
    base = server.base_url
    for response in (_http.get(base + "/nope"), _http.post(base + "/embeddings", json={})):
        assert response.status_code == 404
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    bad = _http.post(base + "/chat/completions", content=b"{not json")
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    odd = _http.post(base + "/chat/completions", json={"messages": "hello"})
    assert odd.status_code == 400 and "messages" in odd.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError, match="'n' must be 1"):
        sdk(server).chat.completions.create(**chat_args("draft"), n=2)
    counted = stats(server)
    assert counted["requests"] == 0  # requests the model never saw are not counted
    assert counted["statuses"] == {"400": 3, "404": 2}


def test_stats_count_chat_requests_and_tokens(server: OfflineServer) -> None:
    client = sdk(server)
    replies = [client.chat.completions.create(**chat_args(s)) for s in ("draft", "summary")]
    client.models.list()
    counted = stats(server)
    assert counted == {
        "requests": 2,
        "in_flight": 0,
        "max_in_flight": 1,
        "prompt_tokens": sum(r.usage.prompt_tokens for r in replies),
        "completion_tokens": sum(r.usage.completion_tokens for r in replies),
        "answers": 2,
        "injected": {},
        "statuses": {"200": 3},  # the two answers and the model list, not this snapshot
        "profile": "openai",
    }
    assert server.stats.calls == 2


def test_latency_is_the_whole_response_time(monkeypatch) -> None:
    """The server sleeps the latency less the model's own work. Shown by the sleeps it asks
    for, not by an upper bound on the response time, which a busy machine stretches."""
    from refine_kit.offline import server as server_module

    slept: list[float] = []

    class RecordingTime:  # the server module's `time`, its sleeps recorded
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def sleep(self, seconds: float) -> None:
            slept.append(seconds)
            time.sleep(seconds)

    monkeypatch.setattr(server_module, "time", RecordingTime())
    with serving(latency=0.05) as server:
        client = sdk(server)
        for step in ("draft", "critique"):
            started = time.monotonic()
            client.chat.completions.create(**chat_args(step))
            assert time.monotonic() - started >= 0.05  # never sooner than the latency
    assert len(slept) == 2 and all(0 <= s < 0.05 for s in slept), slept  # the work counted


def test_concurrent_requests_are_served_at_once() -> None:
    n = 4
    with serving(latency=0.2) as server:
        client = sdk(server)
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda _: client.chat.completions.create(**chat_args("draft")), range(n)))
        assert stats(server)["max_in_flight"] == n  # in parallel, not one after another


def test_keep_alive_framing_and_oversized_bodies_over_a_raw_socket(server: OfflineServer) -> None:
    host, port = server.base_url.removeprefix("http://").removesuffix("/v1").split(":")
    with socket.create_connection((host, int(port)), timeout=2) as conn:
        get = f"GET /v1/models HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        conn.sendall(get * 2)  # two requests on one connection: both must be answered
        stream = conn.makefile("rb")
        for _ in range(2):
            assert stream.readline().startswith(b"HTTP/1.1 200")
            headers = dict(line.decode().split(": ", 1) for line in iter(stream.readline, b"\r\n"))
            body = json.loads(stream.read(int(headers["Content-Length"])))
            assert body["data"][0]["id"] == OFFLINE_MODEL
        huge = b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"
        conn.sendall(huge)
        assert stream.readline().startswith(b"HTTP/1.1 413")
        assert b"Connection: close" in b"".join(iter(stream.readline, b"\r\n"))


# ---------------------------------------------------------------------------------------------
# Faults over real HTTP


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("429", openai.RateLimitError),
        ("500", openai.InternalServerError),
        ("503", openai.InternalServerError),
    ],
)
def test_http_faults_return_their_status(kind: str, error: type[openai.APIStatusError]) -> None:
    with serving(faults=plan_failing(kind)) as server:
        with pytest.raises(error) as caught:
            sdk(server).chat.completions.create(**chat_args("draft"))
        response = caught.value.response
        assert response.status_code == int(kind)
        assert "injected" in response.json()["error"]["message"]
        if kind in ("429", "503"):
            assert response.headers["retry-after"] == "1"
            assert response.headers["retry-after-ms"] == "10"
        counted = stats(server)
        assert (counted["requests"], counted["answers"], counted["injected"]) == (1, 0, {kind: 1})


def test_hard_fault_is_not_retried_by_the_sdk() -> None:
    with serving(faults=FaultPlan(step="draft", nth=1)) as server:
        client = sdk(server, max_retries=2)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(**chat_args("draft"))
        assert caught.value.response.headers["x-should-retry"] == "false"
        assert stats(server)["requests"] == 1
        assert client.chat.completions.create(**chat_args("draft")).choices[0].message.content


def test_drop_closes_the_connection_without_a_response() -> None:
    with serving(faults=plan_failing("drop")) as server:
        with pytest.raises(openai.APIConnectionError) as caught:
            sdk(server).chat.completions.create(**chat_args("draft"))
        assert not isinstance(caught.value, openai.APITimeoutError)
        assert stats(server)["injected"] == {"drop": 1}


def test_slow_outlasts_the_client_timeout() -> None:
    with serving(faults=plan_failing("slow", slow_seconds=0.5)) as server:
        with pytest.raises(openai.APITimeoutError):  # no answer within 0.2 s: the stall held
            sdk(server, timeout=0.2).chat.completions.create(**chat_args("draft"))
        counted = stats(server)
        assert (counted["requests"], counted["injected"]) == (1, {"slow": 1})  # one, no retry


@pytest.mark.parametrize("kind", ["bad_json", "bad_critique"])
def test_broken_critiques_arrive_with_status_200(kind: str) -> None:
    with serving(faults=plan_failing(kind, "critique")) as server:
        reply = sdk(server).chat.completions.create(**chat_args("critique"))
        content = reply.choices[0].message.content or ""
        with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
            Critique.model_validate_json(content)
        if kind == "bad_critique":
            json.loads(content)  # still JSON: only the fields are wrong
        assert stats(server)["injected"] == {kind: 1}


def test_sdk_retry_recovers_from_429_honouring_retry_after(caplog) -> None:
    caplog.set_level(logging.INFO, logger="openai")  # the SDK logs each wait before a retry
    with serving(faults=plan_failing("429", then_ok=True)) as server:
        reply = sdk(server, max_retries=2).chat.completions.create(**chat_args("draft"))
        # Retry-After-Ms says 10 ms (Retry-After, 1 s); the SDK's own first backoff is 0.5 s
        # or more. The wait it chose, as it logs it, not the time it took: that varies.
        retry = re.compile(r"Retrying request.* in ([\d.]+) seconds")
        waits = [float(m[1]) for r in caplog.records if (m := retry.search(r.getMessage()))]
        assert waits == [0.01], caplog.text
        assert reply.choices[0].message.content
        counted = stats(server)
        assert (counted["requests"], counted["answers"], counted["injected"]) == (2, 1, {"429": 1})


# ---------------------------------------------------------------------------------------------
# The command line, in a subprocess (crash_after would kill the test process itself)


def launch(*options: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `refine-kit serve` on a free port; return it and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "refine_kit", "serve", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    ready, _, _ = select.select([process.stdout], [], [], 20)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("refine_kit offline server on http://127.0.0.1:"):
        process.kill()
        raise AssertionError(f"server did not start: {line!r} {process.communicate()[1]}")
    return process, line.split(" on ", 1)[1].split()[0]


def test_crash_after_kills_the_serving_process() -> None:
    process, url = launch("--faults", '{"crash_after": 2}', "--latency", "0")
    try:
        client = openai.OpenAI(base_url=url, api_key="anything", max_retries=0, http_client=_http)
        for step in ("draft", "critique"):
            assert client.chat.completions.create(**chat_args(step)).choices[0].message.content
        assert process.wait(timeout=5) == -signal.SIGKILL
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(**chat_args("summary"))
    finally:
        process.kill()
        process.communicate()


def test_verbose_log_never_shows_the_api_key() -> None:
    canary = "sk-canary-0123456789abcdef"
    faults = json.dumps({"step": "draft", "nth": 1})  # from REFINE_KIT_FAULTS: no fault options
    process, url = launch("--verbose", env={"REFINE_KIT_FAULTS": faults})
    try:
        client = openai.OpenAI(base_url=url, api_key=canary, max_retries=0, http_client=_http)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(**chat_args("draft"))
        client.chat.completions.create(**chat_args("draft"))
        _http.get(url + "/nope", headers={"Authorization": f"Bearer {canary}"})
        time.sleep(0.3)  # the server logs each line just after answering: let the last one land
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=5)
    lines = stderr.splitlines()
    assert [line.split()[2:5] for line in lines] == [
        ["POST", "/v1/chat/completions", "500"],
        ["POST", "/v1/chat/completions", "200"],
        ["GET", "/v1/nope", "404"],
    ]
    assert "fault=hard" in lines[0]
    assert canary not in stderr and "authorization" not in stderr.lower()


# ---------------------------------------------------------------------------------------------
# Local use only


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.com"])
def test_refuses_a_non_loopback_host(host: str) -> None:
    with pytest.raises(ValueError, match=host):
        OfflineServer(host)
    result = CliRunner().invoke(app, ["serve", "--host", host])
    assert result.exit_code == 2 and host in result.output


def test_a_stopped_server_answers_nothing(server: OfflineServer) -> None:
    client = sdk(server)
    client.models.list()  # leaves a keep-alive connection open
    server.stop()
    with pytest.raises(openai.APIConnectionError):
        client.models.list()
