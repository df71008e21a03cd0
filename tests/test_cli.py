"""The `refine-kit` command, run in-process through Typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refine_kit.cli import RUN_OPTIONS, app

runner = CliRunner()


def test_run_one_topic_prints_a_results_table(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "Lighthouses", "-o", str(tmp_path), "-t", "7"])
    assert result.exit_code == 0, result.output
    assert "refine_kit results" in result.output and "Lighthouses" in result.output
    assert "1 succeeded, 0 failed" in result.output
    assert (tmp_path / "manifest.json").exists()


def test_batch_reads_topics_from_arguments_and_a_file(tmp_path: Path) -> None:
    topics = tmp_path / "topics.txt"
    topics.write_text("# a comment\nSeed banks\n\nCoral reefs\n")
    result = runner.invoke(
        app, ["batch", "Bike lanes", "--file", str(topics), "-o", str(tmp_path / "out"), "-c", "2"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [t["topic"] for t in manifest["topics"]] == ["Bike lanes", "Seed banks", "Coral reefs"]
    assert manifest["max_concurrency"] == 2


def test_bad_options_exit_2_with_the_field_named(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "Tides", "-t", "42", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "quality_threshold" in result.output
    result = runner.invoke(app, ["batch", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "topics" in result.output


def test_a_failed_topic_makes_the_exit_status_non_zero(tmp_path: Path, monkeypatch) -> None:
    from refine_kit.offline import transport as offline_transport

    real = offline_transport.run_offline_chat

    def fail_one(model, body):
        if any("Broken topic" in m["content"] for m in body["messages"]):
            raise RuntimeError("model exploded")
        return real(model, body)

    monkeypatch.setattr(offline_transport, "run_offline_chat", fail_one)
    result = runner.invoke(
        app,
        [
            "batch",
            "Broken topic",
            "Fine topic",
            "-o",
            str(tmp_path),
            "--no-cache",
            "--retries",
            "0",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "1 succeeded, 1 failed" in result.output


@pytest.mark.notebooks  # starts JupyterLab
def test_lab_starts_jupyterlab_on_the_notebooks_even_as_root(tmp_path) -> None:
    import os
    import select
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    pytest.importorskip("jupyterlab")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path)}
    # JupyterLab's own options pass through after `--` (a token fixed for a workshop room).
    lab = ["lab", "--no-browser", "--port", str(port), "--", "--IdentityProvider.token=room-42"]
    process = subprocess.Popen(
        [sys.executable, "-m", "refine_kit", *lab],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    seen = []
    try:
        while True:
            ready, _, _ = select.select([process.stdout], [], [], 60)
            line = process.stdout.readline() if ready else ""
            seen.append(line)
            if not line or f"127.0.0.1:{port}/lab" in line:
                break
        status = f"http://127.0.0.1:{port}/api/status?token="
        for _ in range(100):  # the URL is printed a moment before every route answers
            try:
                with urllib.request.urlopen(status + "room-42", timeout=10) as answer:
                    assert answer.status == 200  # the token given after -- is the server's
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        else:
            raise AssertionError("JupyterLab never answered")
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(status + "wrong", timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert any(f"127.0.0.1:{port}/lab" in line for line in seen), "".join(seen)
    with socket.socket() as s:  # stopping the command stopped the server: nothing left behind
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_the_progress_bar_counts_llm_steps_as_they_finish() -> None:
    from refine_kit.progress import ProgressEvent
    from refine_kit.terminal import StepCount

    steps = StepCount(topics=2)
    seen = []
    chain = ["draft", "critique", "revise", "critique", "summary"]
    for step in chain:
        steps.see(ProgressEvent(topic="A", kind="step", step=step))
        seen.append((steps.done, steps.total))
    steps.see(ProgressEvent(topic="A", kind="succeeded", score=8))
    assert seen == [(0, 6), (1, 6), (2, 8), (3, 8), (4, 8)]
    assert (steps.done, steps.total) == (5, 8)
    steps.see(ProgressEvent(topic="B", kind="succeeded", score=8))  # from the cache
    assert steps.done == steps.total == 8


def test_version_and_one_offline_latency_default() -> None:
    import subprocess
    import sys

    from refine_kit.settings import default
    from refine_kit.version import __version__

    done = subprocess.run(
        [sys.executable, "-m", "refine_kit", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == f"refine-kit {__version__}"
    # `serve` answers at the offline model's own pace unless told otherwise, as `run` does.
    for command in ("serve", "run"):
        shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert f"[default: {default('offline_latency')}]" in shown, command


def test_the_offline_notice_is_a_paragraph_of_its_own_in_summary_md(tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    from refine_kit.offline.phrases import OFFLINE_NOTICE

    result = runner.invoke(app, ["run", "Tidal power", "-o", str(tmp_path), "--latency", "0"])
    assert result.exit_code == 0, result.output
    summary = next(tmp_path.glob("*/summary.md")).read_text()
    paragraphs = [t for t in MarkdownIt().parse(summary) if t.type == "inline"]
    assert paragraphs[-1].content == OFFLINE_NOTICE
    assert len(paragraphs) >= 3  # the heading, the summary itself, then the notice


def test_the_newer_settings_are_options_too(tmp_path: Path) -> None:
    """reasks, client_backoff, retry_backoff and prices reach the run from the command line."""
    prices = json.dumps({"refine-kit-offline": [1000, 2000]})
    result = runner.invoke(
        app,
        ["run", "Tidal power", "-o", str(tmp_path), "--latency", "0", "--no-cache"]
        + ["--reasks", "0", "--client-backoff", "0", "--retry-backoff", "0", "--prices", prices],
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "manifest.json").read_text())["settings"]
    assert (settings["reasks"], settings["client_backoff"]) == (0, 0)
    assert "estimated cost $0.0000" not in result.output  # the price given was applied


def test_every_option_hands_its_value_to_its_setting(monkeypatch) -> None:
    """Each option of `run` sets the setting of the same name (nothing is dropped or renamed)."""
    import click
    import typer.main

    from refine_kit import settings as settings_module
    from refine_kit.errors import ConfigError

    given: dict[str, object] = {}

    def stop_here(settings=None, **overrides):  # noqa: ANN001, ANN003, ANN202
        given.update(overrides)
        raise ConfigError("stopped before the run")

    monkeypatch.setattr(settings_module, "load_settings", stop_here)
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    for option in command.params:
        if not isinstance(option, click.Option) or option.name not in RUN_OPTIONS:
            continue
        if option.is_flag:
            value = []
        elif option.metavar == "JSON":
            value = ["{}"]
        elif isinstance(option.type, click.Choice):
            value = [str(option.type.choices[-1])]
        else:
            value = ["7"]  # an int, a float, a name or a path alike
        given.clear()
        result = runner.invoke(app, ["run", "Tides", option.opts[0], *value])
        assert result.exit_code == 2 and "stopped before the run" in result.output, result.output
        assert given.get(option.name) is not None, option.opts[0]


def test_help_loads_no_pipeline(tmp_path: Path) -> None:
    """`refine-kit --help` (and each command's) stays fast: no Flyte, SDK, Rich or
    pydantic-settings, though the run options are made from the settings' declarations."""
    import subprocess
    import sys

    heavy = ("flyte", "openai", "rich", "pydantic_settings")
    for command in ([], ["run"], ["batch"]):
        probe = (
            "import sys; from refine_kit.cli import app\n"
            f"try: app({[*command, '--help']!r})\n"
            "except SystemExit: pass\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path
        )
        assert done.stdout.strip().splitlines()[-1] == "[]", (command, done.stdout, done.stderr)
