"""Long waits and Ctrl-C, seen as a user sees them: a `refine-kit` process, its terminal, its
files, and the requests counted at a loopback server."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refine_kit.offline.server import OfflineServer
from refine_kit.pacing import Pacer
from refine_kit.settings import OFFLINE_MODEL

TOPICS = ["Tidal power", "Urban beekeeping", "Seed banks", "Heat pumps", "Community fridges"]


def _start(args: list[str], **env: str) -> subprocess.Popen[str]:
    command = [str(Path(sys.executable).parent / "refine-kit"), *args]
    environment = {**os.environ, **env}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )


def _read_until(process: subprocess.Popen[str], pattern: str, seconds: float = 60) -> list[str]:
    """Lines of the process's stderr up to the first that matches `pattern`."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 1)
        if ready:
            line = process.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
            if re.search(pattern, line):
                return seen
    raise AssertionError(f"no line matched {pattern!r}: {''.join(seen)}")


def _interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return out, err


def test_a_long_wait_for_a_rate_limit_says_which_limit_and_what_helps(tmp_path: Path) -> None:
    """The server allows 3,000 tokens a minute and says so in its headers; with the default
    max_tokens each request reserves most of that, so the second waits half a minute. The
    terminal says why at once, and Ctrl-C during the wait still ends cleanly."""
    with OfflineServer(tpm=3000) as server:
        process = _start(
            ["run", "Tidal power", "--base-url", server.base_url, "--model", OFFLINE_MODEL,
             "-o", str(tmp_path), "--no-cache"],
        )  # fmt: skip
        seen = _read_until(process, r"^waiting ")
        out, err = _interrupt(process)
    said = seen[-1]
    assert "for the tokens-per-minute limit (3,000 TPM, the server's)" in said
    assert "a lower --max-tokens (now 2,000) lets more requests through" in said
    assert re.search(r"calls held \d+ s", said)
    assert process.returncode == 130, err
    assert "stopped" in out and "interrupted:" in out
    assert server.stats.calls == 1  # the held request was never sent


def test_a_wait_is_told_once_per_limit_and_again_while_it_lasts() -> None:
    now = [0.0]
    pacer = Pacer(requests_per_minute=2, clock=lambda: now[0])

    async def send(n: int) -> None:
        for _ in range(n):
            await pacer.acquire(tokens=10)

    async def instant(seconds: float) -> None:
        now[0] += seconds

    import asyncio

    from refine_kit import progress
    from refine_kit.pacing import RETELL_AFTER

    told_at: list[float] = []
    real_sleep = asyncio.sleep
    asyncio.sleep = instant  # type: ignore[assignment]  # waits pass on the fake clock
    try:
        with progress.listening(lambda event: told_at.append(now[0])):
            asyncio.run(send(40))  # 2 a minute: every request after the first two waits 30 s
    finally:
        asyncio.sleep = real_sleep
    assert told_at and told_at[0] == 0.0  # the first long wait is told at once
    gaps = [b - a for a, b in zip(told_at, told_at[1:], strict=False)]
    assert all(RETELL_AFTER <= gap <= 2 * RETELL_AFTER for gap in gaps), gaps  # never silent
    assert len(pacer.told) == len(told_at)
    assert pacer.told[0].startswith("calls held 30 s for the requests-per-minute limit (2 RPM")
    quiet = Pacer(requests_per_minute=600, clock=lambda: now[0])
    asyncio.run(quiet.acquire(tokens=10))
    assert quiet.told == []


def test_ctrl_c_keeps_what_finished_and_a_rerun_pays_only_for_the_rest(tmp_path: Path) -> None:
    topics = tmp_path / "topics.txt"
    topics.write_text("\n".join(TOPICS) + "\n")
    out = tmp_path / "out"
    args = ["batch", "--file", str(topics), "-o", str(out), "--no-cache", "-c", "2"]
    with OfflineServer(latency=0.15) as server:
        args += ["--base-url", server.base_url, "--model", OFFLINE_MODEL]
        process = _start(args)
        _read_until(process, r"^done ")
        stdout, stderr = _interrupt(process)
        assert process.returncode == 130, stderr
        manifest = json.loads((out / "manifest.json").read_text())
        counts = manifest["counts"]
        assert counts["succeeded"] >= 1 and counts["interrupted"] >= 1, counts
        assert counts["succeeded"] + counts["failed"] + counts["interrupted"] == len(TOPICS)
        assert re.search(rf"{counts['succeeded']} succeeded, 0 failed, {counts['interrupted']}"
                         r" stopped", stdout)  # fmt: skip
        assert "interrupted: the same command again resumes" in stdout
        saved = sum(line["saved_steps"] for line in manifest["topics"])
        finished_steps = 0
        for line in manifest["topics"]:
            if line["status"] == "succeeded":
                record = json.loads((out / line["folder"] / "record.json").read_text())
                finished_steps += len(record["calls"])
        first = server.stats.calls

        done = subprocess.run(
            [str(Path(sys.executable).parent / "refine-kit"), *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    replayed = int(re.search(r"steps replayed (\d+)", done.stdout).group(1))
    assert replayed == saved + finished_steps  # everything answered before is replayed...
    sent = int(re.search(r"requests sent (\d+)", done.stdout).group(1))
    assert sent == server.stats.calls - first  # ...and only the rest was asked for
    assert json.loads((out / "manifest.json").read_text())["counts"]["succeeded"] == len(TOPICS)


@pytest.mark.parametrize("status", ["succeeded", "interrupted"])
def test_the_manifest_counts_every_status(status: str, tmp_path: Path) -> None:
    from refine_kit.models import TopicOutcome
    from refine_kit.outputs import write_manifest

    outcomes = [TopicOutcome(topic="A", status=status)]  # type: ignore[arg-type]
    path = write_manifest(outcomes, tmp_path, seconds=0, max_concurrency=1, settings={})
    counts = json.loads(path.read_text())["counts"]
    assert counts["topics"] == 1 and counts[status] == 1
