"""Notebook 03 (failure recovery) runs with other parameters, and its summary shows they held.

The notebook writes `notebook_summary.json`; reading it back checks that the chosen failing
call, fault seed and crash batch size took effect, and that every layer did its job.
"""

from __future__ import annotations

from pathlib import Path

NOTEBOOK = "03_failure_recovery.ipynb"


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
    }
    summary, _ = run_notebook(NOTEBOOK, **parameters)
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
