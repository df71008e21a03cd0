"""The refinement loop driven by plain functions: no Flyte, no HTTP, no offline prose."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from refine_kit.loop import Outcome, State, Steps, refine_loop
from refine_kit.models import CallRecord, Critique, CritiqueStep, TextStep, Usage


def record(step: str) -> CallRecord:
    return CallRecord(step=step, started_at=0.0, seconds=0.0, usage=Usage(), model="scripted")


class Scripted:
    """Steps that answer from a list of scores and remember what they were asked."""

    def __init__(self, scores: list[int]) -> None:
        self.scores: Iterator[int] = iter(scores)
        self.asked: list[tuple[str, ...]] = []

    async def draft(self, topic: str) -> TextStep:
        self.asked.append(("draft", topic))
        return TextStep(text=f"draft 0 on {topic}", call=record("draft"))

    async def critique(
        self, draft: str, previous: list[str] | None, topic: str | None
    ) -> CritiqueStep:
        self.asked.append(("critique", draft, "|".join(previous or []), topic or ""))
        score = next(self.scores)
        critique = Critique(
            score=score, strengths=[], improvements=[f"fix {draft}"], summary=f"{score}"
        )
        return CritiqueStep(critique=critique, call=record("critique"))

    async def revise(self, draft: str, improvements: list[str]) -> TextStep:
        self.asked.append(("revise", draft, "|".join(improvements)))
        n = sum(1 for a in self.asked if a[0] == "revise")
        return TextStep(text=f"draft {n}", call=record("revise"))

    async def summary(self, draft: str) -> TextStep:
        self.asked.append(("summary", draft))
        return TextStep(text=f"summary of {draft}", call=record("summary"))

    def steps(self) -> Steps:
        return Steps(draft=self.draft, critique=self.critique, revise=self.revise,
                     summary=self.summary)  # fmt: skip


def run(script: Scripted, start: State | None = None, **limits: int) -> Outcome:
    limits = {"max_iterations": 3, "quality_threshold": 8, **limits}
    return asyncio.run(refine_loop("Tidal power", script.steps(), start=start, **limits))


def test_it_revises_until_the_threshold_and_summarises_the_best() -> None:
    script = Scripted([5, 7, 9])
    outcome = run(script)
    assert [it.score for it in outcome.iterations] == [5, 7, 9]
    assert outcome.stop_reason == "threshold" and outcome.best == 2
    assert outcome.summary == "summary of draft 2"
    assert [a[0] for a in script.asked] == [
        "draft", "critique", "revise", "critique", "revise", "critique", "summary",
    ]  # fmt: skip
    assert script.asked[1][3] == "Tidal power"  # the critic is told the topic
    assert script.asked[3][2] == "fix draft 0 on Tidal power"  # follow-through is checked
    assert [c.step for c in outcome.calls] == [a[0] for a in script.asked]


def test_the_last_revision_is_scored_and_the_latest_best_wins_a_tie() -> None:
    outcome = run(Scripted([6, 7, 5, 7]), max_iterations=3)
    assert outcome.stop_reason == "max_iterations" and len(outcome.drafts) == 4
    assert outcome.best == 3  # 7 twice: the later draft


@pytest.mark.parametrize("threshold", [1, 5])
def test_a_first_draft_at_the_threshold_is_not_revised(threshold: int) -> None:
    script = Scripted([5])
    outcome = run(script, quality_threshold=threshold)
    assert len(outcome.drafts) == 1 and outcome.stop_reason == "threshold"


def test_it_goes_on_from_a_saved_state_without_asking_again() -> None:
    parent = run(Scripted([5, 6]), max_iterations=1)
    start = State(drafts=parent.drafts, critiques=[it.critique for it in parent.iterations],
                  calls=parent.calls[:-1])  # fmt: skip
    script = Scripted([9])
    outcome = run(script, start=start, max_iterations=3)
    assert [a[0] for a in script.asked] == ["revise", "critique", "summary"]  # nothing before
    assert [it.index for it in outcome.iterations] == [0, 1, 2]  # numbering goes on
    assert [it.score for it in outcome.iterations] == [5, 6, 9]
    assert len(outcome.calls) == len(start.calls) + 3
    assert start.drafts == parent.drafts  # the parent's state is not changed


def test_an_edited_draft_is_critiqued_first_and_edited_improvements_are_acted_on() -> None:
    edited = State(drafts=["draft 0", "my own draft"], critiques=[_critique(5)])
    script = Scripted([6, 9])
    outcome = run(script, start=edited)
    assert script.asked[0] == ("critique", "my own draft", "fix it", "Tidal power")
    assert [it.score for it in outcome.iterations] == [5, 6, 9]

    steered = State(drafts=["draft 0"], critiques=[_critique(5)], asked=["add a costs section"])
    script = Scripted([9])
    run(script, start=steered)
    assert script.asked[0] == ("revise", "draft 0", "add a costs section")
    assert script.asked[1][2] == "add a costs section"  # the critic checks what was asked


def test_rounds_and_progress_are_the_callers() -> None:
    rounds: list[str] = []
    events: list[tuple[str, int, int | None]] = []

    class Scope:
        def __init__(self, name: str) -> None:
            rounds.append(name)

        def __enter__(self) -> None:
            return None

        def __exit__(self, *exc: object) -> None:
            return None

    script = Scripted([5, 9])
    asyncio.run(
        refine_loop(
            "Tidal power",
            script.steps(),
            max_iterations=3,
            quality_threshold=8,
            round_scope=Scope,
            on_step=lambda *e: events.append(e),
        )  # fmt: skip
    )
    assert rounds == ["round-0-draft", "round-1-revise", "summary"]
    assert events == [
        ("draft", 0, None), ("critique", 0, 5), ("revise", 1, None), ("critique", 1, 9),
        ("summary", 1, None),
    ]  # fmt: skip


def _critique(score: int) -> Critique:
    return Critique(score=score, strengths=[], improvements=["fix it"], summary="")
