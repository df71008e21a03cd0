"""The setup files agree with each other and with the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # standard library from Python 3.11

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_this_package_with_every_extra() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    minimum = re.search(r">=(\d+)\.(\d+)", _pyproject()["project"]["requires-python"]).groups()
    version = tuple(int(x) for x in python.split("=")[1].split(".")[:2])
    assert version >= tuple(int(x) for x in minimum)
    assert "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    extras = set(_pyproject()["project"]["optional-dependencies"])
    assert len(pip_section) == 1
    installed = re.fullmatch(r'-e "?\.\[([\w,]+)\]"?', pip_section[0])
    assert installed and set(installed.group(1).split(",")) == extras


def test_readme_quickstart_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_console_script_points_at_the_cli() -> None:
    assert _pyproject()["project"]["scripts"]["refine-kit"] == "refine_kit.cli:app"
