"""One permanently failing endpoint, per failure kind: requests made and seconds to the error.

Runs one topic with the default retry settings (client_backoff 0.5 s, task_retries 3)
against a loopback stub that always fails the same way, counts the requests that reached
it and times the run until the error. A timeout uses request_timeout=2 s so the run is
short; scale by request_timeout / 2 for other values.

    .venv/bin/python bench/bench_failures.py
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from endpoint_stub import Reply, StubEndpoint, error  # noqa: E402

import refine_kit  # noqa: E402

HTML = Reply(
    body=b"<html><body>Please sign in</body></html>", headers={"content-type": "text/html"}
)
KINDS = {
    "refused connection": None,
    "401": error(401, "Incorrect API key provided"),
    "429 with Retry-After 1 s": error(429, "Rate limit reached", **{"retry-after": "1"}),
    "500": error(500, "The server had an error"),
    "timeout (request_timeout 2 s)": Reply(delay=3.0, body={}),
    "200 HTML page": HTML,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(reply: Reply | None, timeout: float) -> tuple[int, float, str]:
    settings = {"backend": "openai", "model": "stub-model", "cache": False}
    with tempfile.TemporaryDirectory() as out:
        if reply is None:
            url = f"http://127.0.0.1:{free_port()}/v1"
            started = time.perf_counter()
            batch = refine_kit.refine_batch(
                ["Tidal power"], base_url=url, output_dir=out, request_timeout=timeout, **settings
            )
            return batch.accounting.requests_sent, time.perf_counter() - started, _error(batch)
        with StubEndpoint(lambda r, n: reply) as stub:
            started = time.perf_counter()
            batch = refine_kit.refine_batch(
                ["Tidal power"],
                base_url=stub.base_url,
                output_dir=out,
                request_timeout=timeout,
                **settings,
            )
            return stub.requests, time.perf_counter() - started, _error(batch)


def _error(batch: refine_kit.BatchResult) -> str:
    return (batch.outcomes[0].error or "")[:90]


def main() -> None:
    # Pay Flyte's start-up once, outside the measurements: each row times only its failure.
    with tempfile.TemporaryDirectory() as out:
        refine_kit.refine("Warm-up", output_dir=out, backend="offline", offline_latency=0)
    rows = []
    for kind, reply in KINDS.items():
        requests, seconds, message = measure(reply, timeout=2.0)
        rows.append((kind, requests, seconds, message))
    print(f"{'failure':32} {'requests':>8} {'seconds':>8}  error")
    for kind, requests, seconds, message in rows:
        print(f"{kind:32} {requests:8d} {seconds:8.1f}  {message}")


if __name__ == "__main__":
    main()
