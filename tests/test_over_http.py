"""The pipeline against the loopback server: real HTTP, real processes, real SIGKILLs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import refine_kit
from refine_kit import endpoint
from refine_kit.offline.server import OfflineServer
from refine_kit.outputs import read_record, topic_folder_name

TOPICS = [f"Crash resume topic {i}: municipal composting" for i in range(12)]
LIMIT = 4
CANARY = "sk-canary-7f3e1d9c2b4a"


@pytest.fixture
def server():
    with OfflineServer(latency=0.02) as running:
        yield running


def _batch_command(server: OfflineServer, out: Path, topics_file: Path) -> list[str]:
    return [
        sys.executable, "-m", "refine_kit.cli", "batch", "--file", str(topics_file),
        "-o", str(out), "--base-url", server.base_url, "--model", "refine-kit-offline",
        "--concurrency", str(LIMIT), "--no-cache", "--retries", "0",
    ]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return {**env, "REFINE_KIT_CLIENT_BACKOFF": "0", **extra}


def test_in_flight_limit_holds_over_real_http(server: OfflineServer, tmp_path: Path) -> None:
    topics = [f"HTTP limit {i}" for i in range(10)]
    batch = refine_kit.refine_batch(
        topics, output_dir=tmp_path, base_url=server.base_url, model="refine-kit-offline",
        max_concurrency=3, cache=False,
    )  # fmt: skip
    assert len(batch.succeeded) == 10
    assert server.stats.max_in_flight == 3
    assert batch.accounting.requests_sent == server.stats.calls


def test_killed_batch_resumes_without_paying_twice(server: OfflineServer, tmp_path: Path) -> None:
    topics_file = tmp_path / "topics.txt"
    topics_file.write_text("\n".join(TOPICS) + "\n")

    done = subprocess.run(
        _batch_command(server, tmp_path / "baseline", topics_file),
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    uninterrupted = server.stats.calls

    for share in (0.3, 0.7):
        out = tmp_path / f"killed-at-{share}"
        before = server.stats.calls
        child = subprocess.Popen(
            _batch_command(server, out, topics_file),
            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while server.stats.calls - before < share * uninterrupted:
            assert child.poll() is None and time.monotonic() < deadline, "batch ended too early"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        first = server.stats.calls - before

        again = subprocess.run(
            _batch_command(server, out, topics_file),
            env=_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        second = server.stats.calls - before - first
        # Only calls in flight at the kill can be paid twice.
        assert first + second <= uninterrupted + LIMIT, (share, first, second, uninterrupted)
        assert second < uninterrupted
        for topic in TOPICS:
            record = read_record(out / topic_folder_name(topic))
            assert record["status"] == "succeeded" and record["report"].startswith("# ")
            assert (out / topic_folder_name(topic) / "report.html").stat().st_size > 0


def test_an_api_key_never_reaches_outputs_logs_or_stores(
    server: OfflineServer, tmp_path: Path
) -> None:
    topics_file = tmp_path / "topics.txt"
    topics_file.write_text("Canary topic one\nCanary topic two\n")
    out = tmp_path / "out"
    started = time.time()
    done = subprocess.run(
        [*_batch_command(server, out, topics_file), "--verbose", "--backend", "openai"],
        env=_env(OPENAI_API_KEY=CANARY), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert CANARY not in done.stdout + done.stderr
    flyte_dir = Path(os.environ["FLYTECTL_CONFIG"]).parent
    scanned = 0
    for root in (out, flyte_dir, Path("/tmp/flyte"), endpoint.state_file().parent):
        for path in root.rglob("*") if root.exists() else ():
            if path.is_file() and path.stat().st_mtime >= started - 1:
                assert CANARY.encode() not in path.read_bytes(), path
                scanned += 1
    assert scanned >= 8  # the topic files, the manifest and the checkpoint store at least
