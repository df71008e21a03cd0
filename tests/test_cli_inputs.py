"""Bad input and a hostile environment at the command line: one line, exit 2, advice that works.

Each case is what a workshop participant really meets: a topics file saved by Excel, a
typo in a variable, an output folder that is a file or not writable, a port in use, a
damaged checkpoint file, a second batch in the same folder, a full disk.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
from pathlib import Path

import pytest
from filelock import FileLock
from typer.testing import CliRunner

import refine_kit
from refine_kit import outputs
from refine_kit.cli import app
from refine_kit.tasks import CHECKPOINT_FILE

FAST = ["--latency", "0", "--no-cache"]
runner = CliRunner()


def refine(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def test_a_topics_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    topics = tmp_path / "topics.txt"
    topics.write_bytes("Café culture\n".encode("cp1252"))
    code, output = refine("batch", "--file", str(topics), "-o", str(tmp_path / "out"), *FAST)
    assert code == 2 and "is not UTF-8 text" in error_line(output)


def test_a_byte_order_mark_is_not_part_of_the_first_topic(tmp_path: Path) -> None:
    topics = tmp_path / "topics.txt"
    topics.write_text("Urban beekeeping\n", encoding="utf-8-sig")
    out = tmp_path / "out"
    code, output = refine("batch", "--file", str(topics), "-o", str(out), *FAST)
    assert code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["topics"][0]["topic"] == "Urban beekeeping"


def test_a_fault_plan_variable_that_is_not_json(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("REFINE_KIT_FAULTS", "{rate: 0.2}")
    code, output = refine("run", "Tidal power", "-o", str(tmp_path / "out"), *FAST)
    assert code == 2 and "REFINE_KIT_FAULTS: not valid JSON" in error_line(output)


def test_an_output_folder_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "results"
    target.write_text("not a folder")
    code, output = refine("run", "Tidal power", "-o", str(target), *FAST)
    assert code == 2 and "is a file" in error_line(output)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_an_output_folder_that_cannot_be_written(tmp_path: Path) -> None:
    # /proc refuses new folders even to root (for whom permission bits do not apply).
    code, output = refine("run", "Tidal power", "-o", "/proc/refine-kit-out", *FAST)
    assert code == 2 and "cannot write to /proc/refine-kit-out" in error_line(output)


def test_serve_on_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = refine("serve", "--port", str(port))
    assert code == 2 and f"port {port} on 127.0.0.1 is in use" in error_line(output)


def test_a_damaged_store_is_reported_and_fresh_really_recovers(tmp_path: Path) -> None:
    out = tmp_path / "out"
    store = out / CHECKPOINT_FILE
    store.parent.mkdir(parents=True)
    store.write_bytes(b"SQLite format 3\x00" + b"\x00" * 40)  # a truncated database
    code, output = refine("run", "Tidal power", "-o", str(out), *FAST)
    assert code == 2 and "--fresh" in error_line(output)
    code, output = refine("run", "Tidal power", "-o", str(out), "--fresh", *FAST)
    assert code == 0, output
    assert list(store.parent.glob("checkpoints.sqlite.damaged-*"))  # kept for inspection


def test_one_batch_at_a_time_per_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / CHECKPOINT_FILE.parent).mkdir(parents=True)
    with FileLock(out / CHECKPOINT_FILE.parent / "batch.lock"):  # another batch is running
        code, output = refine("run", "Tidal power", "-o", str(out), *FAST)
    assert code == 2 and "another batch is writing to" in error_line(output)
    assert not (out / "manifest.json").exists()


def test_a_full_disk_fails_the_topics_it_hits_and_still_writes_a_manifest(
    tmp_path: Path, monkeypatch
) -> None:
    real = outputs.write_topic_outputs

    def full_for_tidal(result, root):  # noqa: ANN001, ANN202 - the real function's signature
        if result.topic == "Tidal power":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(result, root)

    monkeypatch.setattr(outputs, "write_topic_outputs", full_for_tidal)
    batch = refine_kit.refine_batch(
        ["Tidal power", "Urban beekeeping"], output_dir=tmp_path, offline_latency=0, cache=False
    )
    tidal, bees = batch.outcomes
    assert tidal.status == "failed" and "No space left on device" in (tidal.error or "")
    assert bees.status == "succeeded"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [t["status"] for t in manifest["topics"]] == ["failed", "succeeded"]


BAD_INPUT = {
    "serve port out of range": (["serve", "--port", "70000"], "--port 70000 is not a TCP port"),
    "serve negative port": (["serve", "--port", "-1"], "--port -1 is not a TCP port"),
    "serve faults not JSON": (["serve", "--faults", "{bad"], "serve: faults:"),
    "lab port out of range": (["lab", "--port", "70000"], "--port 70000 is not a TCP port"),
    "run threshold out of range": (["run", "x", "-t", "11"], "quality_threshold: "),
    "run threshold not a number": (["run", "x", "-t", "abc"], "Invalid value for '--threshold'"),
    "run reasks out of range": (["run", "x", "--reasks", "9"], "reasks: "),
    "run prices not JSON": (["run", "x", "--prices", "{bad"], "prices: not valid JSON"),
    "run prices not a table": (["run", "x", "--prices", '{"m": 1}'], "prices.m: "),
    "run faults out of range": (["run", "x", "--faults", '{"rate": 5}'], "faults.rate: "),
    "run without a topic": (["run"], "Missing argument 'topic'; see 'refine-kit run --help'"),
    "an unknown option": (["batch", "x", "--bogus"], "No such option: --bogus"),
    "an unknown command": (["bogus"], "No such command 'bogus'"),
    "deploy with no config": (["deploy", "--config", "nope.yaml"], "does not exist"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_on_every_command_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    """Run as a user runs it, in a new process: no traceback, no usage block, one line."""
    import subprocess

    args, expected = BAD_INPUT[case]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "refine-kit"), *args],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert expected in lines[0] and ".." not in lines[0]
