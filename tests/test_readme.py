"""The README's sample output is what the demo really prints.

Runs the command `scripts/demo.sh` runs (read from the script, so the two cannot drift),
at 80 columns, and compares its table and summary line with the block in the README.
Only what varies from run to run is left out: seconds and the output folder.
"""

from __future__ import annotations

import re
import shlex
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
