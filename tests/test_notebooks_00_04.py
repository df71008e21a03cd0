"""The setup-check (00) and scale-out (04) notebooks follow their parameters.

Both run with papermill and non-default parameters in a temporary folder; the JSON summary
each writes shows the parameters took effect, and no path of this machine is printed.
"""

from __future__ import annotations

from pathlib import Path

import refine_kit
from refine_kit.envs import IMAGE_PACKAGE_DIR


def test_setup_check_notebook_follows_its_parameters(run_notebook, tmp_path: Path):
    summary, outputs = run_notebook(
        "00_setup_check.ipynb",
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
    assert "correct: the smoke run succeeded" in outputs


def test_setup_check_never_prints_the_key(run_notebook, tmp_path: Path, monkeypatch):
    canary = "sk-canary-setup-check-9a1b"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    monkeypatch.setenv("REFINE_KIT_BACKEND", "offline")  # the smoke run stays offline
    summary, outputs = run_notebook("00_setup_check.ipynb", output_dir="nb00k")
    assert summary["api_key"] == "set" and summary["backend"] == "offline"
    assert canary not in outputs
    assert canary not in (tmp_path / "nb00k" / "notebook_summary.json").read_text()


def test_scale_out_notebook_follows_its_parameters(run_notebook, tmp_path: Path):
    topics = ["Glacier monitoring", "Community fridges", "Heat networks"]
    summary, outputs = run_notebook("04_scale_out.ipynb", topics=topics, output_dir="nb04")
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
    assert refine["retries"] == "3" and refine["reuse"] == "2 replicas x 4"
    assert refine["secret"] == "openai-api-key" and refine["cache version"] != "-"
    assert rows["driver.report_batch_pipeline"]["secret"] == "-"
    assert summary["dry_run"] == {
        "task": "driver.report_batch_pipeline",
        "topics_in_inputs": topics,
        "secret_in_inputs": False,
        "url_is_dry_run": True,
    }
    assert summary["cluster_run"] == "skipped" and summary["notebook_job"] == "skipped"
    assert "skipped: no cluster configured" in outputs
    assert sorted(p.name for p in (tmp_path / "nb04").iterdir()) == ["notebook_summary.json"]
