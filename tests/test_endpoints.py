"""Against real-world endpoints: broken, hostile and quirky servers, checked from outside.

Each failure ends in one clear error naming the URL, the status and the server's reason,
within the documented budget of requests (client_max_retries + 1); what a failed topic
spent is counted; secrets never reach files or the terminal.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from endpoint_stub import Received, Reply, StubEndpoint, completion, error
from typer.testing import CliRunner

import refine_kit
from refine_kit import answers, endpoint, prompts
from refine_kit.cli import app
from refine_kit.errors import LLMOutputError
from refine_kit.offline.model import OfflineModel
from refine_kit.offline.profiles import PROFILES
from refine_kit.offline.server import OfflineServer
from refine_kit.settings import OFFLINE_MODEL

FAST = {
    "backend": "openai",
    "model": "stub-model",
    "client_backoff": 0,
    "retry_backoff": 0,
    "cache": False,
}
FAST_HTTP = {k: v for k, v in FAST.items() if k != "model"}
MODEL = OfflineModel()


@pytest.fixture(autouse=True)
def _forget_endpoints():
    endpoint.forget()  # every test probes its stub afresh
    yield
    endpoint.forget()


def healthy(received: Received, n: int) -> Reply:
    """Answer like a working model (the offline one), whatever was asked."""
    json_mode = "response_format" in received.body
    answer = MODEL.complete(received.body["messages"], json_mode=json_mode)
    return completion(answer.content, **{"prompt_tokens": answer.prompt_tokens})


def run_cli(topic: str, base_url: str, out: Path):  # noqa: ANN201 - typer's Result
    """`refine-kit run TOPIC` against an endpoint, as a user types it."""
    return CliRunner().invoke(
        app, ["run", topic, "--base-url", base_url, "--model", "m", "-o", str(out)]
    )


def kit(
    *args: str, base_url: str, out: Path, model: str = "m", **env: str
) -> subprocess.CompletedProcess[str]:
    """`refine-kit ARGS` in a new process against `base_url`, as a user types it."""
    command = [sys.executable, "-m", "refine_kit.cli", *args, "--base-url", base_url,
               "--model", model, "-o", str(out)]  # fmt: skip
    environment = {**os.environ, **env}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FAILURES = {
    "401": (lambda r, n: error(401, "Incorrect API key provided"), "HTTP 401", "API key"),
    "404 model": (
        lambda r, n: error(404, "The model `stub-model` does not exist", "model_not_found"),
        "HTTP 404",
        "does not serve model",
    ),
    "429": (
        lambda r, n: error(
            429, "Rate limit reached", "rate_limit_exceeded", **{"retry-after": "0"}
        ),
        "HTTP 429",
        "rate-limiting",
    ),
    "500": (lambda r, n: error(500, "The server had an error"), "HTTP 500", "The server had"),
    "200 html": (
        lambda r, n: Reply(
            body=b"<html><body>Sign in</body></html>", headers={"content-type": "text/html"}
        ),
        "HTML page",
        "/v1",
    ),
    "no choices": (
        lambda r, n: Reply(body={"object": "chat.completion", "choices": []}),
        "no message",
        "OpenAI-compatible",
    ),
    "flat error": (
        lambda r, n: Reply(500, {"error": "model runner crashed"}),
        "HTTP 500",
        "runner crashed",
    ),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_a_failing_endpoint_is_one_clear_error_within_the_budget(kind: str, tmp_path: Path) -> None:
    respond, status_words, hint_words = FAILURES[kind]
    with StubEndpoint(respond) as stub:
        batch = refine_kit.refine_batch(
            ["Tidal power"], base_url=stub.base_url, output_dir=tmp_path, **FAST
        )
    error_line = batch.outcomes[0].error or ""
    assert batch.outcomes[0].status == "failed"
    assert stub.base_url in error_line and status_words in error_line and hint_words in error_line
    assert stub.requests <= 3  # client_max_retries + 1, whatever the failure
    assert batch.accounting.requests_sent == stub.requests  # counted, though it failed
    record = json.loads(next(tmp_path.glob("*/record.json")).read_text())
    assert record["accounting"]["requests_sent"] == stub.requests


def test_a_refused_connection_names_the_address_at_once(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    batch = refine_kit.refine_batch(["Tidal power"], base_url=url, output_dir=tmp_path, **FAST)
    message = batch.outcomes[0].error or ""
    assert "could not connect" in message and url in message and "connection refused" in message
    assert batch.accounting.requests_sent == 3


def test_a_server_that_never_answers_times_out_within_the_budget(tmp_path: Path) -> None:
    with StubEndpoint(lambda r, n: Reply(delay=1.0, body={})) as stub:
        batch = refine_kit.refine_batch(
            ["Tidal power"],
            base_url=stub.base_url,
            output_dir=tmp_path,
            request_timeout=0.1,
            **FAST,
        )
    assert "no answer within request_timeout=0.1 s (after 3 requests)" in (
        batch.outcomes[0].error or ""
    )
    assert stub.requests == 3


def test_a_missing_v1_is_pointed_out(tmp_path: Path) -> None:
    def respond(received: Received, n: int) -> Reply:
        return healthy(received, n) if received.path.startswith("/v1/") else error(404, "Not Found")

    with StubEndpoint(respond) as stub:
        root = stub.base_url.removesuffix("/v1")
        batch = refine_kit.refine_batch(["Tidal power"], base_url=root, output_dir=tmp_path, **FAST)
    assert f"try base_url={root}/v1" in (batch.outcomes[0].error or "")
    assert stub.requests == 1  # a 404 is not retried


def test_spend_of_a_failed_topic_matches_the_server(tmp_path: Path) -> None:
    # Drafts are answered (and billed); every critique fails.
    def respond(received: Received, n: int) -> Reply:
        return (
            error(500, "critic down")
            if "response_format" in received.body
            else healthy(received, n)
        )

    with StubEndpoint(respond) as stub:
        batch = refine_kit.refine_batch(
            ["Tidal power", "Urban beekeeping"], base_url=stub.base_url, output_dir=tmp_path, **FAST
        )
    assert len(batch.failed) == 2
    acc = batch.accounting
    answered = sum(1 for r in stub.received if "response_format" not in r.body)
    assert acc.requests_sent == stub.requests and acc.answers_received == answered == 2
    assert acc.prompt_tokens_used > 0 and acc.completion_tokens_used == 2 * 20
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sum(t["requests_sent"] for t in manifest["topics"]) == stub.requests


def test_a_failed_topic_is_counted_alike_in_its_record_the_manifest_and_the_cli(
    tmp_path: Path,
) -> None:
    """`refine-kit batch` in a new process. Every critique request fails (500), so each
    critique spends its whole budget: 3 requests, 2 of them client retries. One topic's first
    critique answer is not a Critique, so it re-asks once first. Every place that reports
    the spend says the same, and it matches what the server received."""
    first_critique_seen: set[str] = set()

    def respond(received: Received, n: int) -> Reply:
        if "response_format" not in received.body:
            return healthy(received, n)
        text = json.dumps(received.body["messages"])
        if "Re-ask topic" in text and "Re-ask topic" not in first_critique_seen:
            first_critique_seen.add("Re-ask topic")
            return completion('{"score": 42}')  # not a Critique: the step asks again
        return error(500, "critic down")

    with StubEndpoint(respond) as stub:
        done = kit(
            "batch", "Tidal power", "Re-ask topic", "--no-cache", "--retries", "0",
            base_url=stub.base_url, out=tmp_path, REFINE_KIT_CLIENT_BACKOFF="0",
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    spent = {}
    for line in manifest["topics"]:
        record = json.loads((tmp_path / line["folder"] / "record.json").read_text())
        assert record["status"] == "failed" and record["accounting"] == line["accounting"]
        acc = spent[line["topic"]] = line["accounting"]
        assert line["total_tokens"] == acc["prompt_tokens_used"] + acc["completion_tokens_used"]
        assert line["total_tokens"] > 0
    # draft, then a critique: 1 + 3 requests; the re-asking topic answers one more first.
    expected = {"Tidal power": (4, 1, 2, 0), "Re-ask topic": (5, 2, 2, 1)}
    for topic, acc in spent.items():
        figures = ("requests_sent", "answers_received", "client_retries", "reasks")
        assert tuple(acc[name] for name in figures) == expected[topic], topic
    assert sum(acc["requests_sent"] for acc in spent.values()) == stub.requests == 9
    tokens = sum(a["prompt_tokens_used"] + a["completion_tokens_used"] for a in spent.values())
    assert "requests sent 9, answers received 3 " in done.stdout
    assert "client retries 4, re-asks 1," in done.stdout
    assert f"tokens used {tokens:,}," in done.stdout


def test_a_failure_is_printed_once_in_clean_sentences(tmp_path: Path) -> None:
    """The server's reason ends in a period; the kit's hint follows it without a second one,
    and the reason is printed once (under the table), not live and again."""

    def limited(received: Received, n: int) -> Reply:
        if "response_format" in received.body:
            return error(429, "Rate limit exceeded.", "rate_limit_exceeded", **{"retry-after": "0"})
        return healthy(received, n)

    with StubEndpoint(limited) as stub:
        done = kit("run", "Tidal power", "--no-cache", "--retries", "0",
                   base_url=stub.base_url, out=tmp_path)  # fmt: skip
    shown = done.stdout + done.stderr
    assert done.returncode == 1, shown
    assert shown.count("Rate limit exceeded") == 1, shown
    assert "Rate limit exceeded. The endpoint kept rate-limiting" in shown
    assert ".." not in shown and "failed Tidal power (reason below)" in shown


def test_a_host_name_that_does_not_resolve_is_named(tmp_path: Path) -> None:
    """A typo in the host is not 'is the server running?'. The lookup is failed in the child
    process itself, so no query leaves the machine."""
    script = (
        "import socket, sys\n"
        "def lookup(*args, **kwargs):\n"
        "    raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')\n"
        "socket.getaddrinfo = lookup\n"
        "from refine_kit.cli import app\n"
        "sys.argv[0] = 'refine-kit'\n"
        "app()\n"
    )
    command = [
        sys.executable, "-c", script, "run", "Tidal power", "--base-url",
        "http://llm.exmaple.internal:8000/v1", "--model", "m", "-o", str(tmp_path),
        "--no-cache", "--retries", "0",
    ]  # fmt: skip
    env = {**os.environ, "REFINE_KIT_CLIENT_BACKOFF": "0"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    shown = done.stdout + done.stderr
    assert done.returncode == 1, shown
    assert "the host name did not resolve" in shown
    assert "check the host name 'llm.exmaple.internal' in base_url" in shown
    assert "is the server running" not in shown


def test_a_price_is_estimated_only_where_it_is_known(tmp_path: Path) -> None:
    """`gpt-4o-mini` on a loopback server is not OpenAI's gpt-4o-mini: its price is unknown
    until the user states one; the manifest records only settings that applied."""

    def run(out: str, **env: str) -> tuple[str, dict]:
        done = kit("run", "Tidal power", base_url=stub.base_url, out=tmp_path / out,
                   model="gpt-4o-mini", **env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout, json.loads((tmp_path / out / "manifest.json").read_text())

    with StubEndpoint(healthy) as stub:
        shown, manifest = run("unpriced")
        assert "estimated cost unknown" in shown
        assert "offline_latency" not in manifest["settings"]
        assert "faults" not in manifest["settings"]
        shown, _ = run("priced", REFINE_KIT_PRICES='{"gpt-4o-mini": [1000000, 0]}')
        record = json.loads(next((tmp_path / "priced").glob("*/record.json")).read_text())
        cost = record["accounting"]["prompt_tokens_used"]  # $1 per prompt token, as stated
        assert f"estimated cost ${cost:.4f}" in shown


def test_the_critic_is_told_the_topic(tmp_path: Path) -> None:
    """A server that writes the same draft whatever the topic: each critique request names
    its own topic, so the two are different questions (and the critic can say it is off)."""
    same_draft = MODEL.complete(
        [
            {"role": "system", "content": prompts.GENERATOR_SYSTEM_PROMPT},
            {"role": "user", "content": prompts.draft_prompt("Heat pumps in cold climates")},
        ]
    ).content

    def one_draft(received: Received, n: int) -> Reply:
        if "response_format" in received.body:
            return healthy(received, n)
        return completion(same_draft)

    topics = ["Heat pumps in cold climates", "Urban beekeeping"]
    with StubEndpoint(one_draft) as stub:
        done = kit("batch", *topics, "--no-cache", "-n", "1", base_url=stub.base_url, out=tmp_path)
    assert done.returncode == 0, done.stderr
    first_critiques = {}
    for received in stub.received:
        if "response_format" in received.body:
            user = received.body["messages"][-1]["content"]
            topic = next(t for t in topics if f"{prompts.TOPIC_LINE} {t}" in user)
            first_critiques.setdefault(topic, user)
    assert set(first_critiques) == set(topics)
    assert first_critiques[topics[0]] != first_critiques[topics[1]]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    scores = {line["topic"]: line["score"] for line in manifest["topics"]}
    assert scores["Urban beekeeping"] <= 3 < scores["Heat pumps in cold climates"]


def test_a_key_echoed_by_the_server_reaches_no_file_and_no_terminal(
    tmp_path: Path, monkeypatch
) -> None:
    canary = "sk-canary-4f2b9d7e1a0c"
    monkeypatch.setenv("OPENAI_API_KEY", canary)

    def respond(received: Received, n: int) -> Reply:
        auth = received.headers.get("authorization", "")
        return error(401, f"Incorrect API key provided: {auth}. Header was Authorization: {auth}")

    with StubEndpoint(respond) as stub:
        result = run_cli("Tidal power", stub.base_url, tmp_path)
    assert result.exit_code == 1 and "HTTP 401" in result.output
    assert canary not in result.output and canary[3:] not in result.output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert canary[3:].encode() not in path.read_bytes(), path
    assert stub.received[0].headers["authorization"] == f"Bearer {canary}"  # it was sent


def test_url_credentials_are_used_but_never_written(tmp_path: Path) -> None:
    with StubEndpoint(healthy) as stub:
        url = stub.base_url.replace("http://", "http://alice:s3cr3t-pw@")
        batch = refine_kit.refine_batch(["Tidal power"], base_url=url, output_dir=tmp_path, **FAST)
    assert batch.outcomes[0].status == "succeeded"
    assert stub.received[0].headers["authorization"].startswith("Basic ")
    for path in [*tmp_path.rglob("*"), endpoint.state_file()]:
        if path.is_file():
            assert b"s3cr3t-pw" not in path.read_bytes(), path
    assert stub.base_url in endpoint.state_file().read_text()  # remembered by its bare URL
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["settings"]["endpoint"] == stub.base_url


def test_url_credentials_echoed_in_any_form_reach_no_file_and_no_terminal(tmp_path: Path) -> None:
    """`refine-kit run` in a new process, against a server that echoes what it received:
    httpx sends URL credentials as `Authorization: Basic base64(user:pass)`, and neither the
    base64, the pair nor the password may be printed or written."""
    import base64

    password = "s3cr3t-pw-71c"
    encoded = base64.b64encode(f"alice:{password}".encode()).decode()

    def echo(received: Received, n: int) -> Reply:
        auth = received.headers.get("authorization", "")
        token = auth.partition(" ")[2]
        return error(401, f"Bad credentials in {auth} (token {token}; pair alice:{password}).")

    with StubEndpoint(echo) as stub:
        url = stub.base_url.replace("http://", f"http://alice:{password}@")
        done = kit("run", "Tidal power", "--no-cache", "--retries", "0", base_url=url, out=tmp_path)
    assert stub.received[0].headers["authorization"] == f"Basic {encoded}"  # sent as Basic
    assert done.returncode == 1 and "HTTP 401" in done.stderr + done.stdout
    for secret in (encoded, encoded.rstrip("="), password, f"alice:{password}"):
        assert secret not in done.stdout + done.stderr, secret
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), (secret, path)
    record = json.loads(next(tmp_path.glob("*/record.json")).read_text())
    assert "Basic ***" in record["error"]  # what was echoed is still readable, masked


def test_a_gateways_own_retry_hint_is_honoured(tmp_path: Path) -> None:
    """litellm's 429 says how long to wait in `llm_provider-retry-after` and sends no
    Retry-After; the retry must wait that long (not the kit's own 1 s pause), measured at
    the server, from a `refine-kit run` process."""
    import time

    seen: list[float] = []

    def litellm(received: Received, n: int) -> Reply:
        seen.append(time.monotonic())
        if n == 1:
            body = {"error": {"message": "Rate limit exceeded.", "type": "None", "code": "429"}}
            return Reply(status=429, body=body, headers={"llm_provider-retry-after": "1.6"})
        return healthy(received, n)

    with StubEndpoint(litellm) as stub:
        done = kit(
            "run", "Tidal power", "--no-cache", "-n", "1", base_url=stub.base_url, out=tmp_path
        )
    assert done.returncode == 0, done.stderr
    assert seen[1] - seen[0] >= 1.5, seen[1] - seen[0]
    assert "client retries 1" in done.stdout


def test_openai_base_url_is_honoured_and_keys_the_cache(tmp_path: Path, monkeypatch) -> None:
    with StubEndpoint(healthy) as first, StubEndpoint(healthy) as second:
        monkeypatch.setenv("OPENAI_BASE_URL", first.base_url)
        settings = {"model": "stub-model", "client_backoff": 0, "output_dir": tmp_path}
        a = refine_kit.refine("Tidal power", **settings)  # backend auto: the URL chooses openai
        assert a.endpoint == first.base_url and first.requests > 0
        monkeypatch.setenv("OPENAI_BASE_URL", second.base_url)
        b = refine_kit.refine("Tidal power", **settings)
        assert b.endpoint == second.base_url and second.requests == first.requests  # not cached
        record = json.loads(next(tmp_path.glob("*/record.json")).read_text())
        assert record["endpoint"] == second.base_url
        assert all("max_tokens" in r.body for r in first.received)  # not OpenAI: max_tokens


def test_structured_output_steps_down_and_remembers_what_works(tmp_path: Path) -> None:
    def no_response_format(received: Received, n: int) -> Reply:
        if "response_format" in received.body:
            kind = received.body["response_format"]["type"]
            return error(400, f"response_format type '{kind}' is not supported")
        return healthy(received, n)

    with StubEndpoint(no_response_format) as stub:
        refine_kit.refine("Tidal power", base_url=stub.base_url, output_dir=tmp_path, **FAST)
        first_run = stub.requests
        shapes = [r.body.get("response_format", {}).get("type") for r in stub.received]
        refine_kit.refine("Urban beekeeping", base_url=stub.base_url, output_dir=tmp_path, **FAST)
    assert shapes.count("json_schema") == 1 and shapes.count("json_object") == 1  # paid once
    second_run = stub.received[first_run:]
    assert all("response_format" not in r.body for r in second_run)


def _remembered(url: str, model: str, mode: str, age: timedelta = timedelta(0)) -> None:
    """Leave `endpoints.json` as an earlier run (another process) would have left it."""
    learned = (datetime.now(timezone.utc) - age).isoformat()
    entry = {f"{model} @ {url}": {"structured": mode, "learned_at": learned}}
    endpoint.state_file().parent.mkdir(parents=True, exist_ok=True)
    endpoint.state_file().write_text(json.dumps(entry))


def test_the_next_process_starts_with_the_shape_an_earlier_run_found(tmp_path: Path) -> None:
    """Counted at the server across two `refine-kit` processes: the refusals are paid once."""
    with OfflineServer(profile="no-response-format") as server:
        command = [
            sys.executable, "-m", "refine_kit.cli", "run", "Tidal power",
            "--base-url", server.base_url, "--model", OFFLINE_MODEL, "--no-cache",
        ]  # fmt: skip
        refused = []
        for run in ("first", "second"):  # separate folders: nothing replayed from checkpoints
            before = server.snapshot()["statuses"]
            out = ["-o", str(tmp_path / run)]
            done = subprocess.run([*command, *out], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            after = server.snapshot()["statuses"]
            refused.append(sum(n - before.get(s, 0) for s, n in after.items() if str(s) != "200"))
    assert refused == [2, 0]
    remembered = json.loads(endpoint.state_file().read_text())
    assert remembered[f"{OFFLINE_MODEL} @ {server.base_url}"]["structured"] == "instructions"
    refine_kit.reset()
    assert not endpoint.state_file().exists()  # reset forgets on disk too


def test_a_remembered_shape_sends_every_critique_at_once(tmp_path: Path) -> None:
    """No probe on an endpoint an earlier run used: the first critiques go out together."""
    topics = ["Tidal power", "Urban beekeeping", "Heat pumps", "Community fridges"]
    critiques = threading.Barrier(len(topics), timeout=10)
    together: list[bool] = []

    def answer_critiques_once_all_arrived(received: Received, n: int) -> Reply:
        if "response_format" in received.body and len(together) < len(topics):
            try:
                critiques.wait()
                together.append(True)
            except threading.BrokenBarrierError:
                together.append(False)
        return healthy(received, n)

    with StubEndpoint(answer_critiques_once_all_arrived) as stub:
        _remembered(stub.base_url, "stub-model", "json_schema")
        batch = refine_kit.refine_batch(
            topics, base_url=stub.base_url, output_dir=tmp_path, max_concurrency=4, **FAST
        )
    assert len(batch.succeeded) == len(topics)
    assert together == [True] * len(topics)


@pytest.mark.parametrize("memory", ["refused now", "too old", "unreadable"])
def test_a_memory_that_no_longer_holds_is_found_out_again(memory: str, tmp_path: Path) -> None:
    def refuses_json_schema(received: Received, n: int) -> Reply:
        if received.body.get("response_format", {}).get("type") == "json_schema":
            return error(400, "response_format type 'json_schema' is not supported")
        return healthy(received, n)

    with StubEndpoint(refuses_json_schema) as stub:
        if memory == "refused now":  # the server was swapped since
            _remembered(stub.base_url, "stub-model", "json_schema")
        elif memory == "too old":  # a week is trusted, not more
            _remembered(stub.base_url, "stub-model", "instructions", age=timedelta(days=8))
        else:
            endpoint.state_file().parent.mkdir(parents=True, exist_ok=True)
            endpoint.state_file().write_text("{not json")
        url = stub.base_url
        result = refine_kit.refine("Tidal power", base_url=url, output_dir=tmp_path, **FAST)
    shapes = [r.body.get("response_format", {}).get("type") for r in stub.received]
    assert shapes.count("json_schema") == 1 and "json_object" in shapes
    assert result.score >= 1
    remembered = json.loads(endpoint.state_file().read_text())
    assert remembered[f"stub-model @ {stub.base_url}"]["structured"] == "json_object"


def test_the_critique_asks_for_its_strict_schema(tmp_path: Path) -> None:
    with StubEndpoint(healthy) as stub:
        refine_kit.refine("Tidal power", base_url=stub.base_url, output_dir=tmp_path, **FAST)
    formats = [r.body["response_format"] for r in stub.received if "response_format" in r.body]
    schema = formats[0]["json_schema"]
    assert formats[0]["type"] == "json_schema" and schema["strict"] is True
    assert schema["schema"]["additionalProperties"] is False
    assert schema["schema"]["required"] == ["score", "strengths", "improvements", "summary"]


def test_a_refused_token_parameter_is_swapped_once(tmp_path: Path) -> None:
    def reasoning_model(received: Received, n: int) -> Reply:
        if "max_tokens" in received.body:
            return error(400, "Unsupported parameter: 'max_tokens'", "unsupported_parameter")
        return healthy(received, n)

    with StubEndpoint(reasoning_model) as stub:
        result = refine_kit.refine(
            "Tidal power", base_url=stub.base_url, output_dir=tmp_path, **FAST
        )
    assert sum("max_tokens" in r.body for r in stub.received) == 1
    assert result.requests_sent == len(result.calls) + 1


def test_first_drafts_on_a_new_endpoint_do_not_wait_for_each_other(tmp_path: Path) -> None:
    """Only the structured-output probe holds other calls back; the drafts go out at once."""
    topics = ["Tidal power", "Urban beekeeping", "Heat pumps", "Community fridges"]
    drafts = threading.Barrier(len(topics), timeout=10)
    together: list[bool] = []

    def answer_drafts_once_all_arrived(received: Received, n: int) -> Reply:
        if received.body["messages"][-1]["content"].startswith(prompts.draft_prompt("")):
            try:
                drafts.wait()  # every topic's first draft is in flight at once
                together.append(True)
            except threading.BrokenBarrierError:
                together.append(False)
        return healthy(received, n)

    with StubEndpoint(answer_drafts_once_all_arrived) as stub:
        batch = refine_kit.refine_batch(
            topics, base_url=stub.base_url, output_dir=tmp_path, max_concurrency=4, **FAST
        )
    assert len(batch.succeeded) == len(topics)
    assert together[: len(topics)] == [True] * len(topics)


def test_a_truncated_report_is_an_error_and_a_truncated_critique_is_asked_again(
    tmp_path: Path,
) -> None:
    def cut_drafts(received: Received, n: int) -> Reply:
        if "response_format" in received.body:
            return healthy(received, n)
        return completion("# Heat pumps\n\nHeat pumps move", finish_reason="length")

    with StubEndpoint(cut_drafts) as stub:
        batch = refine_kit.refine_batch(
            ["Heat pumps"], base_url=stub.base_url, output_dir=tmp_path, **FAST
        )
    assert "cut at the token limit" in (batch.outcomes[0].error or "")
    assert stub.requests == 1  # a longer answer needs a larger max_tokens, not a retry

    critiques = 0

    def cut_first_critique(received: Received, n: int) -> Reply:
        nonlocal critiques
        if "response_format" in received.body:
            critiques += 1
            if critiques == 1:
                return completion(None, finish_reason="length")
        return healthy(received, n)

    with StubEndpoint(cut_first_critique) as stub:
        result = refine_kit.refine(
            "Heat pumps", base_url=stub.base_url, output_dir=tmp_path / "b", **FAST
        )
    assert result.accounting.reasks == 1


@pytest.mark.parametrize(
    "wrapped",
    [
        '```json\n{"score": 7, "strengths": [], "improvements": ["a"], "summary": "s"}\n```',
        '<think>The draft is thin. {"score": 2}? No.</think>\n{"score": 7, "strengths": [], '
        '"improvements": ["a"], "summary": "s"}',
        'Here is my assessment: {"score": 7, "strengths": [], "improvements": ["a"], '
        '"summary": "s"} I hope this helps.',
    ],
)
def test_a_valid_critique_is_found_in_any_wrapping(wrapped: str) -> None:
    assert answers.json_object(wrapped)["score"] == 7


def test_json_that_is_not_valid_is_still_refused() -> None:
    with pytest.raises(LLMOutputError, match="not valid JSON"):
        answers.json_object('```json\n{"score": 7, "strengths": [\n```')
    with pytest.raises(LLMOutputError, match="no JSON object"):
        answers.json_object("I would give it a seven.")
    assert (
        answers.markdown_answer("<think>plan</think>\n```markdown\n# T\n\nBody\n```")
        == "# T\n\nBody"
    )


def test_hostile_text_from_an_endpoint_is_printed_as_plain_text(tmp_path: Path) -> None:
    hostile = "boom \x1b]0;pwned\x07\x1b[2J [/] [link=https://example.invalid]click[/link]"

    with StubEndpoint(lambda r, n: error(400, hostile)) as stub:
        result = run_cli("Markup [/] in a topic", stub.base_url, tmp_path)
    assert result.exit_code == 1, result.output  # failed topic, not a crash (MarkupError)
    assert "\x1b" not in result.output and "[link=https://example.invalid]" in result.output
    assert "Markup [/] in a topic" in result.output


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_server_profile_completes_every_topic(profile: str, tmp_path: Path) -> None:
    topics = ["Heat pumps in cold climates", "Urban beekeeping", "Four-day work weeks"]
    with OfflineServer(profile=profile) as server:
        batch = refine_kit.refine_batch(
            topics, base_url=server.base_url, model=OFFLINE_MODEL, output_dir=tmp_path, **FAST_HTTP
        )
        statuses = server.snapshot()["statuses"]
    assert len(batch.succeeded) == 3, [o.error for o in batch.failed]
    refused = sum(n for status, n in statuses.items() if str(status) != "200")
    # A refused request shape is paid once per endpoint, not once per topic.
    expected = {"json-mode-only": 1, "no-response-format": 2}.get(profile, 0)
    assert refused == expected, statuses
    assert batch.accounting.requests_sent == sum(statuses.values())
