"""The pipeline's machinery with a scripted model: what the model writes is the test's own,
so no sentence of the offline model's prose and no prompt wording can break these tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

import refine_kit
from refine_kit.testing import ScriptedModel, ScriptedRequest

FAST = {"cache": False, "offline_latency": 0, "client_backoff": 0, "retry_backoff": 0}


def critique(score: int) -> str:
    return json.dumps(
        {"score": score, "strengths": ["s"], "improvements": [f"i{score}"], "summary": "x"}
    )


class Writer:
    """Drafts numbered in order, critiques from a list of scores."""

    def __init__(self, scores: list[int]) -> None:
        self.scores: Iterator[int] = iter(scores)
        self.revisions = 0

    def __call__(self, request: ScriptedRequest) -> str | httpx2.Response:
        if request.step == "critique":
            return critique(next(self.scores))
        if request.step == "revise":
            self.revisions += 1
            return f"# Draft {self.revisions}\n\nBetter."
        if request.step == "summary":
            return "A summary."
        return "# Draft 0\n\nA start."


def test_the_task_runs_the_loop_the_model_scores(tmp_path: Path) -> None:
    with ScriptedModel(Writer([5, 7, 9])) as model:
        result = refine_kit.refine("Tidal power", output_dir=tmp_path, **FAST)
    assert result.scores == [5, 7, 9] and result.best_iteration == 2
    assert result.report.startswith("# Draft 2") and result.summary == "A summary."
    steps = [r.step for r in model.requests]
    assert steps == ["draft", "critique", "revise", "critique", "revise", "critique", "summary"]
    assert result.accounting.requests_sent == len(model.requests)
    assert result.accounting.prompt_tokens_used == 10 * len(model.requests)
    assert "Tidal power" in model.requests[1].user  # the critic is told the topic


@pytest.mark.parametrize(("threshold", "revisions"), [(5, 0), (7, 1), (10, 3)])
def test_the_threshold_decides_the_revisions(
    tmp_path: Path, threshold: int, revisions: int
) -> None:
    with ScriptedModel(Writer([5, 7, 9, 9])):
        result = refine_kit.refine(
            "Tidal power", output_dir=tmp_path, quality_threshold=threshold, **FAST
        )
    assert len(result.iterations) - 1 == revisions


def test_a_task_retry_replays_completed_steps_and_pays_only_the_rest(tmp_path: Path) -> None:
    writer = Writer([5, 9])
    failed_once: list[int] = []

    def flaky(request: ScriptedRequest) -> str | httpx2.Response:
        if request.step == "revise" and not failed_once:
            failed_once.append(request.number)  # the server says: not now, try the task again
            return httpx2.Response(503, headers={"x-should-retry": "false"}, json={})
        return writer(request)

    with ScriptedModel(flaky) as model:
        result = refine_kit.refine("Tidal power", output_dir=tmp_path, **FAST)
    assert result.scores == [5, 9] and result.accounting.task_attempts == 2
    assert result.accounting.replayed == 2  # the draft and its critique, not asked again
    steps = [r.step for r in model.requests]
    assert steps == ["draft", "critique", "revise", "revise", "critique", "summary"]


def test_an_unchanged_rerun_is_served_from_the_cache(tmp_path: Path) -> None:
    settings = {**FAST, "cache": True, "output_dir": tmp_path}
    with ScriptedModel(Writer([9])) as first:
        refine_kit.refine("Scripted cache topic", **settings)
    with ScriptedModel(Writer([9])) as second:
        again = refine_kit.refine("Scripted cache topic", **settings)
    assert len(first.requests) == 3 and len(second.requests) == 0
    assert again.accounting.cached == 3


def test_a_failed_topic_leaves_the_others_and_counts_its_spend(tmp_path: Path) -> None:
    def broken_critic(request: ScriptedRequest) -> str | httpx2.Response:
        if request.step == "critique" and "Broken" in request.user:
            return "not a critique at all"
        return Writer([9])(request)

    with ScriptedModel(broken_critic) as model:
        batch = refine_kit.refine_batch(
            ["Broken topic", "Fine topic"], output_dir=tmp_path, reasks=1, **FAST
        )
    assert [o.status for o in batch.outcomes] == ["failed", "succeeded"]
    assert "no valid Critique after 2 asks" in (batch.outcomes[0].error or "")
    assert batch.outcomes[0].accounting.reasks == 1
    assert batch.accounting.requests_sent == len(model.requests)
