"""The README's sample output is what the demo really prints.

Runs the command `scripts/demo.sh` runs (read from the script, so the two cannot drift),
at 80 columns, and compares its table and summary line with the block in the README.
Only what varies from run to run is left out: seconds and the output folder.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from refine_kit.cli import app

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- demo-output:"


def demo_arguments() -> list[str]:
    script = (ROOT / "scripts" / "demo.sh").read_text().replace("\\\n", " ")
    line = next(line for line in script.splitlines() if "refine-kit" in line and "exec" in line)
    words = shlex.split(line.split("refine-kit", 1)[1])
    return [w for w in words if w != "$@"]


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(MARK) :]
    return after.split("```\n", 1)[1].split("\n```", 1)[0]


def normalised(output: str) -> list[str]:
    """The output's lines with run-dependent parts (seconds, folder, finishing order) blanked."""
    lines: list[str] = []
    for line in output.splitlines():
        line = re.sub(r"\b\d+\.\d s\b", "N s", line)  # wall time in the summary
        line = re.sub(r"files in \S+", "files in FOLDER", line)
        line = re.sub(r"(ok|cached|failed)(\s.*?)\s+\d+\.\d+\s*$", r"\1\2 N.N", line.rstrip())
        lines.append(line.rstrip())
    done = sorted(line for line in lines if line.startswith("done "))  # topics finish in any order
    return done + [line for line in lines if line and not line.startswith("done ")]


def test_the_readme_shows_what_the_demo_prints(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    arguments = demo_arguments()
    assert arguments[:3] == ["batch", "--file", "examples/topics.txt"]
    arguments[arguments.index("--output-dir") + 1] = str(tmp_path / "refine_outputs")
    result = CliRunner(env={"COLUMNS": "80"}).invoke(
        app, [*arguments, "--latency", "0", "--no-cache"]
    )
    assert result.exit_code == 0, result.output
    assert normalised(result.output) == normalised(readme_block())


# Every `refine-kit` command in the README's shell blocks is run here, in the README's order,
# in a folder laid out like a fresh clone, or named below with why it cannot run offline.
NOT_RUN_HERE = {
    "refine-kit lab": "starts JupyterLab; tests/test_cli.py starts it and stops it",
    "--model llama3.1": "needs an Ollama server",
    "OPENAI_API_KEY=sk-...": "needs an OpenAI key",
    "deploy --config": "needs a Flyte cluster",
    "--cluster config.yaml": "needs a Flyte cluster",
}


def readme_commands() -> list[str]:
    """The `refine-kit` lines of the README's bash blocks, without their comments."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if "refine-kit" in line.split("#")[0] and not line.startswith("#"):
                commands.append(line)
    return commands


class Clone:
    """A folder laid out like a fresh clone (the examples, an empty Flyte cache) and a shell
    in it, as a user has after the README's setup, with `refine-kit` on PATH."""

    def __init__(self, folder: Path) -> None:
        import os
        import shutil
        import sys

        self.folder = folder
        shutil.copytree(ROOT / "examples", folder / "examples")
        (folder / "flyte").mkdir()
        (folder / "flyte" / "config.yaml").write_text("{}\n")
        venv_bin = str(Path(sys.executable).parent)
        inherited = os.environ.items()
        self.env = {
            **{k: v for k, v in inherited if not k.startswith(("REFINE_KIT_", "OPENAI_"))},
            "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}",
            "FLYTECTL_CONFIG": str(folder / "flyte" / "config.yaml"),  # an empty cache, as new
            "XDG_CACHE_HOME": str(folder / "cache"),
            "REFINE_KIT_OFFLINE_LATENCY": "0",  # the story is the same at any pace
        }
        self.demo = "refine-kit " + " ".join(shlex.quote(a) for a in demo_arguments())

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command], cwd=self.folder, env=self.env, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip

    def start(self, command: str) -> subprocess.Popen[str]:
        """A command the README starts in the background (`... &`), once it is listening."""
        import select

        server = subprocess.Popen(
            ["bash", "-c", f"exec {command.rstrip('&')}"], cwd=self.folder, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        ready, _, _ = select.select([server.stdout], [], [], 60)
        assert ready and server.stdout and "offline server on" in server.stdout.readline()
        return server


def _over_http_or_deploy(command: str) -> bool:
    """The README's server example (started with `&`, then used) and its deployment check:
    independent of the demo's folders, so they run in a test of their own."""
    return command.endswith("&") or "127.0.0.1:8787" in command or " deploy " in command


def test_every_readme_command_runs_as_written_in_order(tmp_path: Path) -> None:
    clone = Clone(tmp_path)
    assert clone.run(clone.demo).returncode == 0
    ran = {
        command: clone.run(command)
        for command in readme_commands()
        if not any(mark in command for mark in NOT_RUN_HERE) and not _over_http_or_deploy(command)
    }
    crash = next(c for c in ran if "crash_after" in c)
    for command, done in ran.items():
        expected = (-9, 137) if command == crash else (0,)
        assert done.returncode in expected, (command, done.stdout, done.stderr)
    fault = ran[next(c for c in ran if "--faults" in c)]
    assert "steps replayed 0" in fault.stdout  # its own folder: the faults really happen
    assert re.search(r"client retries [1-9]|re-asks [1-9]", fault.stdout), fault.stdout
    resume = ran[next(c for c in ran if "crash_demo --no-cache" in c)]
    replayed = int(re.search(r"steps replayed (\d+)", resume.stdout).group(1))
    sent = int(re.search(r"requests sent (\d+)", resume.stdout).group(1))
    assert replayed > 0 and sent < 33, resume.stdout  # a resume, not a new run
    assert "were replayed from checkpoints saved in crash_demo" in resume.stderr


def test_the_readme_server_and_deployment_commands_run_as_written(tmp_path: Path) -> None:
    clone = Clone(tmp_path)
    commands = [c for c in readme_commands() if _over_http_or_deploy(c)]
    assert any(c.endswith("&") for c in commands) and any(" deploy " in c for c in commands)
    server = None
    try:
        for command in commands:
            if any(mark in command for mark in NOT_RUN_HERE):
                continue
            if command.endswith("&"):
                server = clone.start(command)
                continue
            done = clone.run(command)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)


def test_a_rerun_in_the_demos_folder_says_what_it_reused(tmp_path: Path) -> None:
    """After the demo, the same fault plan in the demo's folder replays every step (and shows
    no fault): it says so, and how to pay again. The demo again comes from the cache."""
    clone = Clone(tmp_path)
    assert clone.run(clone.demo).returncode == 0
    again = clone.run(f"{clone.demo} --faults '{{\"rate\": 0.2}}'")
    assert again.returncode == 0 and "requests sent 0" in again.stdout
    assert "33 of 33 steps were replayed" in again.stderr and "--fresh" in again.stderr
    cached = clone.run(clone.demo)
    assert "5 of 5 topics came from the cache" in cached.stderr, cached.stderr
    assert "--refresh-cache" in cached.stderr


def test_each_reason_not_to_run_a_command_still_names_a_readme_command() -> None:
    commands = readme_commands()
    for mark in NOT_RUN_HERE:
        assert any(mark in command for command in commands), mark
    run_here = [c for c in commands if not any(mark in c for mark in NOT_RUN_HERE)]
    assert len(run_here) >= 9  # the demos above really ran
