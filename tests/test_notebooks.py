"""The teaching notebooks: they run with other parameters, and they are committed clean.

Each notebook writes a small JSON summary of what it ran; running it with papermill and
non-default parameters, then reading that summary, shows the parameters took effect (a
notebook that ignored its parameters cell would still "pass" under nbmake).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ALL_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_single_topic_notebook_follows_its_parameters(run_notebook, tmp_path: Path):
    summary, _ = run_notebook(
        "01_single_topic_refinement.ipynb",
        topic="Rainwater harvesting for schools",
        quality_threshold=6,
        max_iterations=2,
        offline_latency=0.0,
        output_dir="nb01",
    )
    assert summary["topic"] == "Rainwater harvesting for schools"
    assert summary["quality_threshold"] == 6
    assert summary["max_iterations"] == 2
    assert 1 <= summary["iterations"] <= 3
    assert summary["final_score"] == max(summary["scores"])
    expected_stop = "threshold" if summary["scores"][-1] >= 6 else "max_iterations"
    assert summary["stop_reason"] == expected_stop
    assert summary["calls"] == 2 * summary["iterations"] + 1
    assert (tmp_path / "nb01" / "manifest.json").is_file()


def test_batch_notebook_follows_its_parameters(run_notebook):
    topics = ["Bicycle lanes in winter", "Library makerspaces", "Seed banks"]
    summary, _ = run_notebook(
        "02_batch_fan_out.ipynb",
        topics=topics,
        quality_threshold=7,
        max_iterations=1,
        max_concurrency=2,
        offline_latency=0.0,
        output_dir="nb02",
        failing_topic="Peat-free gardening",
    )
    assert summary["topics"] == topics
    assert summary["quality_threshold"] == 7
    assert summary["max_iterations"] == 1
    assert summary["max_concurrency"] == 2
    assert [o["topic"] for o in summary["outcomes"]] == topics
    for outcome in summary["outcomes"]:
        assert outcome["status"] == "succeeded"
        assert outcome["iterations"] <= 2
        assert outcome["calls"] == 2 * outcome["iterations"] + 1
    assert 1 <= summary["peak_in_flight"] <= 2
    assert summary["rerun"] == {"llm_calls": 0, "all_from_cache": True}
    assert summary["failure_demo"] == {"failed": ["Peat-free gardening"], "succeeded": topics}


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path: Path):
    notebook = json.loads(path.read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    assert "widgets" not in notebook["metadata"], "saved widget state"
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    for cell in code:
        assert cell.get("outputs") == [], "outputs committed"
        assert cell.get("execution_count") is None, "execution counts committed"
        assert "sys.path" not in "".join(cell["source"]), "use the installed package instead"
    tagged = [c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code"
    assert notebook["cells"][0]["cell_type"] == "markdown"
    assert "".join(notebook["cells"][0]["source"]).startswith("# ")


def test_notebooks_are_numbered():
    assert ALL_NOTEBOOKS, "no notebooks found"
    for path in ALL_NOTEBOOKS:
        assert path.name[:2].isdigit() and path.name[2] == "_", path.name


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes_on_notebooks(command: list[str]):
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    done = subprocess.run(
        [ruff, *command, *map(str, ALL_NOTEBOOKS)],
        capture_output=True,
        text=True,
        cwd=NOTEBOOKS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
