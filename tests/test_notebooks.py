"""The teaching notebooks: they run with other parameters, and they are committed clean.

Each notebook writes a small JSON summary of what it ran; running it with papermill and
non-default parameters, then reading that summary, shows the parameters took effect (a
notebook that ignored its parameters cell would still "pass" under nbmake).

Exercises start unanswered: a participant's Run All passes with "not answered yet", which is
what nbmake and the Run All test check. The papermill runs pass `solutions=True`, which fills
in every blank with its solution, and check in the summary that every exercise passed.

The tests that execute a notebook are marked `notebooks`, the slow group that
`pytest -m "not notebooks"` leaves out of a quick loop; the checks of the committed files
run in every loop.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import refine_kit
from refine_kit.envs import IMAGE_PACKAGE_DIR

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ALL_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))
# The exercises of each notebook, by the name its check records in the summary.
EXERCISES = {
    "00_setup_check.ipynb": {"one_revision_calls"},
    "01_single_topic_refinement.ipynb": {"returned_draft", "count_the_calls", "stricter_run"},
    "02_batch_fan_out.ipynb": {"one_call_at_a_time", "retry_recovers"},
    "03_failure_recovery.ipynb": {"replay_count"},
    "04_scale_out.ipynb": {"check_the_dry_run"},
}


def _all_passed(summary: dict, name: str) -> None:
    assert summary["exercises"] == dict.fromkeys(EXERCISES[name], "passed")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


@pytest.mark.notebooks
def test_single_topic_notebook_follows_its_parameters(run_notebook, tmp_path: Path):
    summary, _ = run_notebook(
        "01_single_topic_refinement.ipynb",
        topic="Rainwater harvesting for schools",
        quality_threshold=6,
        max_iterations=2,
        offline_latency=0.0,
        output_dir="nb01",
        solutions=True,
    )
    assert summary["topic"] == "Rainwater harvesting for schools"
    assert summary["quality_threshold"] == 6
    assert summary["max_iterations"] == 2
    assert 0 <= summary["revisions"] <= 2  # max_iterations is the most revisions
    assert len(summary["scores"]) == summary["revisions"] + 1
    assert summary["final_score"] == max(summary["scores"])
    expected_stop = "threshold" if summary["scores"][-1] >= 6 else "max_iterations"
    assert summary["stop_reason"] == expected_stop
    assert summary["calls"] == 2 * summary["revisions"] + 3
    assert (tmp_path / "nb01" / "manifest.json").is_file()
    _all_passed(summary, "01_single_topic_refinement.ipynb")


@pytest.mark.notebooks
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
        solutions=True,
    )
    assert summary["topics"] == topics
    assert summary["quality_threshold"] == 7
    assert summary["max_iterations"] == 1
    assert summary["max_concurrency"] == 2
    assert [o["topic"] for o in summary["outcomes"]] == topics
    for outcome in summary["outcomes"]:
        assert outcome["status"] == "succeeded"
        assert outcome["revisions"] <= 1
        assert outcome["calls"] == 2 * outcome["revisions"] + 3
    assert 1 <= summary["peak_in_flight"] <= 2
    assert summary["rerun"] == {"requests_sent": 0, "all_from_cache": True}
    assert summary["failure_demo"] == {"failed": ["Peat-free gardening"], "succeeded": topics}
    # Section 6: every run finished; the fixed concurrency met 429s, the paced runs none.
    assert summary["pacing_demo"] == dict.fromkeys(
        ("all_topics_done", "fixed_got_429s", "stated_refused_none", "learned_refused_none"), True
    )
    _all_passed(summary, "02_batch_fan_out.ipynb")


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
    assert [int(p.name[:2]) for p in ALL_NOTEBOOKS] == list(range(len(ALL_NOTEBOOKS)))


NEXT_LINK = re.compile(r"\*\*Next:\*\*[^\[]*\[[^\]]+\]\(([^)\s]+)\)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_with_a_link_to_the_next(path: Path):
    """00 -> 01 -> ... -> the last, which leads back to 00 or to the README."""
    last = _cells(path)[-1]
    assert last["cell_type"] == "markdown"
    match = NEXT_LINK.search(_source(last))
    assert match, "the last cell has no **Next:** link"
    target = (NOTEBOOKS / match.group(1)).resolve()
    assert target.is_file(), f"{match.group(1)} does not exist"
    if path == ALL_NOTEBOOKS[-1]:
        assert target in (ALL_NOTEBOOKS[0], NOTEBOOKS.parent / "README.md"), target
    else:
        assert target.parent == NOTEBOOKS and target.suffix == ".ipynb"
        assert int(target.name[:2]) == int(path.name[:2]) + 1, target.name


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_links_point_at_files_that_exist(path: Path):
    for cell in _cells(path):
        if cell["cell_type"] != "markdown":
            continue
        for link in LINK.findall(_source(cell)):
            if not link.startswith(("http://", "https://", "#")):
                assert (NOTEBOOKS / link.split("#")[0]).exists(), link


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_are_typed_commented_literals_with_a_solutions_switch(path: Path):
    (cell,) = [c for c in _cells(path) if "parameters" in c["metadata"].get("tags", [])]
    source = _source(cell)
    tree = ast.parse(source)
    names = []
    for node in tree.body:
        assert isinstance(node, ast.AnnAssign) and node.value is not None, ast.unparse(node)
        assert isinstance(node.target, ast.Name)
        # A literal, not derived from anything: no names, calls or f-strings.
        assert not any(
            isinstance(n, (ast.Name, ast.Call, ast.JoinedStr)) for n in ast.walk(node.value)
        ), f"{node.target.id} is derived"
        assert "  # " in source.splitlines()[node.lineno - 1], f"{node.target.id}: no comment"
        names.append(node.target.id)
    assert "solutions: bool = False  # " in source and names[-1] == "solutions"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_start_unanswered_with_a_hidden_solution(path: Path):
    code = [_source(c) for c in _cells(path) if c["cell_type"] == "code"]
    assert any("= None  # your answer" in source for source in code), "no blank to fill in"
    solutions = [c for c in _cells(path) if "if solutions:" in _source(c)]
    assert solutions, "no solution cell"
    for cell in solutions:  # collapsed in Jupyter, and a no-op unless solutions=True
        assert "solution" in cell["metadata"].get("tags", [])
        assert cell["metadata"].get("jupyter", {}).get("source_hidden") is True
        assert _source(cell).split("\nif solutions:\n")[0].startswith("# Solution")
    # Each exercise's check records it, whether answered or not.
    for name in EXERCISES[path.name]:
        checks = [s for s in code if f'exercises["{name}"] = "not answered"' in s]
        assert len(checks) == 1, name
        assert f'exercises["{name}"] = "passed"' in checks[0] and "not answered yet" in checks[0]


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_only_public_flyte_api(path: Path):
    for cell in _cells(path):
        source = _source(cell)
        assert not re.search(r"\bflyte\._|\._layers\b", source), source


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


@pytest.mark.notebooks
def test_setup_check_notebook_follows_its_parameters(run_notebook, tmp_path: Path):
    summary, outputs = run_notebook(
        "00_setup_check.ipynb",
        topic="Smoke test: wind farms at sea",
        output_dir="nb00",
        offline_latency=0.0,
        solutions=True,
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
    assert "ok: the smoke run succeeded in 3 calls" in outputs
    assert "estimated cost" in outputs and "prompt tokens used" in outputs  # what it cost
    _all_passed(summary, "00_setup_check.ipynb")


@pytest.mark.notebooks
def test_setup_check_never_prints_the_key(run_notebook, tmp_path: Path, monkeypatch):
    canary = "sk-canary-setup-check-9a1b"
    monkeypatch.setenv("OPENAI_API_KEY", canary)  # exported, as in many shells: not used
    summary, outputs = run_notebook("00_setup_check.ipynb", output_dir="nb00k", solutions=True)
    assert summary["api_key"] == "set" and summary["backend"] == "offline"
    assert canary not in outputs
    assert canary not in (tmp_path / "nb00k" / "notebook_summary.json").read_text()


@pytest.mark.notebooks
def test_failure_recovery_notebook_follows_its_parameters(run_notebook, tmp_path: Path) -> None:
    parameters = {
        "topic": "Rainwater harvesting for schools",
        "fault_rate": 0.5,
        "fault_seed": 2,
        "fail_step": "revise",
        "fail_nth": 1,
        "crash_topics": 4,
        "offline_latency": 0.01,
        "output_dir": "nb03",
        "solutions": True,
    }
    summary, _ = run_notebook("03_failure_recovery.ipynb", **parameters)
    for name in ("topic", "fault_rate", "fault_seed", "fail_step", "fail_nth"):
        assert summary[name] == parameters[name], name

    # 1. The first revise is call 3 (draft, critique, revise): the retry replays the 2 before it.
    steps = summary["steps"]
    assert steps[:3] == ["draft", "critique", "revise"]
    retry = summary["retry"]
    assert retry["failing_call"] == 3 and retry["replayed"] == 2
    assert retry["task_attempts"] == 2
    assert retry["requests_clean"] == len(steps)
    assert retry["requests_with_failure"] == len(steps) + 1

    # 2. HTTP faults stay inside the client.
    http = summary["http"]
    assert set(http["injected"]) <= {"429", "500", "503", "drop"}
    assert http["client_retries"] > 0 and http["injected"]
    assert http["task_attempts"] == 1 and http["reasks"] == 0

    # 3. Broken critiques are re-asked, not retried.
    reask = summary["reask"]
    assert set(reask["injected"]) <= {"bad_json", "bad_critique"}
    assert reask["reasks"] > 0 and reask["injected"]
    assert reask["client_retries"] == 0  # a re-ask that fails again can still cost a task retry

    # 4. The killed batch of `crash_topics` topics resumed, paying at most the in-flight limit.
    crash = summary["crash"]
    assert crash["topics"] == 4 and summary["crash_statuses"] == ["succeeded"] * 4
    assert 0 < crash["first_run"] < crash["uninterrupted"]
    assert crash["resumed_run"] < crash["uninterrupted"]
    assert 0 <= crash["extra"] <= crash["limit"]
    assert (tmp_path / "nb03" / "crash" / "killed" / "manifest.json").is_file()
    _all_passed(summary, "03_failure_recovery.ipynb")


@pytest.mark.notebooks
def test_scale_out_notebook_follows_its_parameters(run_notebook, tmp_path: Path):
    topics = ["Glacier monitoring", "Community fridges", "Heat networks"]
    summary, outputs = run_notebook(
        "04_scale_out.ipynb", topics=topics, output_dir="nb04", solutions=True
    )
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
    _all_passed(summary, "04_scale_out.ipynb")
    # Quiet: Flyte's status lines of the dry-run deployment are kept out of the outputs.
    for noise in ("Building image", "Code bundle", "Deploying environment", "[flyte]"):
        assert noise not in outputs, noise


# What may differ between runs: timings, and how far a SIGKILL lets a batch get.
VOLATILE = {"03_failure_recovery.ipynb": {"crash"}}


def _summary_of(folder: Path, name: str) -> dict:
    summaries = list(folder.rglob("notebook_summary.json"))
    assert len(summaries) == 1, summaries
    summary = json.loads(summaries[0].read_text())
    if not isinstance(summary, dict):
        return {"value": summary}
    return {k: v for k, v in summary.items() if k not in VOLATILE.get(name, set())}


@pytest.mark.notebooks
@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_run_all_twice_then_after_a_restart_teaches_the_same(path: Path, tmp_path: Path):
    """Run All twice in one kernel, then once more in a new kernel: the same lesson each time.

    The Flyte cache, checkpoints and output folders left by the earlier runs are all still
    there, as they are for a workshop participant who runs a notebook again.
    """
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}
    summaries = []
    client = nbclient.NotebookClient(notebook, kernel_name="python3", resources=resources)
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
            summaries.append(_summary_of(tmp_path, path.name))
    fresh = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(fresh, kernel_name="python3", resources=resources).execute()
    summaries.append(_summary_of(tmp_path, path.name))
    assert summaries[0] == summaries[1] == summaries[2]
    # A participant's Run All: every exercise is still waiting for an answer.
    assert summaries[0]["exercises"] == dict.fromkeys(EXERCISES[path.name], "not answered")
