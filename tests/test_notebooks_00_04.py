"""The setup-check (00) and scale-out (04) notebooks follow their parameters.

Both run with papermill and non-default parameters in a temporary folder; the JSON summary
each writes shows the parameters took effect, and no path of this machine is printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import refine_kit
from refine_kit.envs import IMAGE_PACKAGE_DIR
from refine_kit.notebook_job import IMAGE_NOTEBOOKS_DIR

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _run(name: str, tmp_path: Path, **parameters: object) -> tuple[dict, dict]:
    papermill = pytest.importorskip("papermill")
    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(tmp_path / name),
        parameters=parameters,
        cwd=str(tmp_path),
        kernel_name="python3",
        progress_bar=False,
    )
    executed = json.loads((tmp_path / name).read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    for output in outputs:
        # Paths inside the task images are not this machine's.
        text = json.dumps(output).replace(IMAGE_PACKAGE_DIR, "").replace(IMAGE_NOTEBOOKS_DIR, "")
        assert str(tmp_path) not in text and str(Path.home()) not in text, "a machine path leaked"
        assert str(NOTEBOOKS.parent) not in text, "the project's local path leaked"
    summary = tmp_path / str(parameters["output_dir"]) / "notebook_summary.json"
    return json.loads(summary.read_text()), executed


def _text(executed: dict) -> str:
    return json.dumps([c.get("outputs", []) for c in executed["cells"]])


def test_setup_check_notebook_follows_its_parameters(tmp_path: Path):
    summary, executed = _run(
        "00_setup_check.ipynb",
        tmp_path,
        topic="Smoke test: wind farms at sea",
        output_dir="nb00",
        offline_latency=0.0,
    )
    assert summary["topic"] == "Smoke test: wind farms at sea"
    assert summary["backend"] == "offline" and summary["result_backend"] == "offline"
    assert summary["model"] == "refine-kit-offline"
    assert summary["api_key"] == "not set"
    assert summary["versions"]["refine_kit"] == refine_kit.__version__
    assert set(summary["versions"]) == {"Python", "refine_kit", "flyte", "openai", "pydantic"}
    assert 1 <= summary["score"] <= 10
    assert summary["calls"] == 3 and summary["steps"] == ["draft", "critique", "summary"]
    assert (tmp_path / "nb00" / "manifest.json").is_file()
    assert "correct: the smoke run succeeded" in _text(executed)


def test_setup_check_never_prints_the_key(tmp_path: Path, monkeypatch):
    canary = "sk-canary-setup-check-9a1b"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    monkeypatch.setenv("REFINE_KIT_BACKEND", "offline")  # the smoke run stays offline
    summary, executed = _run("00_setup_check.ipynb", tmp_path, output_dir="nb00k")
    assert summary["api_key"] == "set" and summary["backend"] == "offline"
    assert canary not in _text(executed)
    assert canary not in (tmp_path / "nb00k" / "notebook_summary.json").read_text()


def test_scale_out_notebook_follows_its_parameters(tmp_path: Path):
    topics = ["Glacier monitoring", "Community fridges", "Heat networks"]
    summary, executed = _run("04_scale_out.ipynb", tmp_path, topics=topics, output_dir="nb04")
    assert summary["topics"] == topics
    assert summary["cluster"] is None
    assert summary["undeclared_dependencies"] == []
    assert any(p.startswith("unionai-reuse") for p in summary["image"]["packages"])
    assert summary["image"]["copies"] == [IMAGE_PACKAGE_DIR]
    rows = {row["task"]: row for row in summary["deployment"]}
    assert set(rows) == {
        "driver.report_batch_pipeline",
        "llm-worker.refine_report",
        "llm-worker.format_outputs",
        "notebook-runner.run_notebook",
    }
    refine = rows["llm-worker.refine_report"]
    assert refine["retries"] == 3 and refine["reuse"] == "2 x 4"
    assert refine["secret"] == "openai-api-key" and refine["cache_version"] != "-"
    assert rows["driver.report_batch_pipeline"]["secret"] == "-"
    assert summary["dry_run"] == {
        "task": "driver.report_batch_pipeline",
        "topics_in_inputs": topics,
        "secret_in_inputs": False,
        "url_is_dry_run": True,
    }
    assert summary["cluster_run"] == "skipped" and summary["notebook_job"] == "skipped"
    assert "skipped: no cluster configured" in _text(executed)
    assert sorted(p.name for p in (tmp_path / "nb04").iterdir()) == ["notebook_summary.json"]
