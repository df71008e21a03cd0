"""The refinement loop as a plain function over its steps: draft, critique, revise until the
score reaches the threshold or the revisions run out, then summarise the best draft.

It knows nothing of Flyte, HTTP or files. The steps come in as plain async callables (the
traced steps in `refine_report`, scripted functions in a test), and so do the two things a
task adds around them: a scope per round (a `flyte.group`, so the Flyte UI shows the rounds
the notebooks teach) and a progress hook. It can start from any saved state, such as draft
k and its critique, or an edited draft that still awaits its critique: a fork goes on from
there without paying again for what came before.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from refine_kit.models import (
    CallRecord,
    Critique,
    CritiqueStep,
    Iteration,
    StopReason,
    TextStep,
)


@dataclass(frozen=True)
class Steps:
    """The four steps the loop calls, each one LLM call."""

    draft: Callable[[str], Awaitable[TextStep]]  # topic
    critique: Callable[[str, list[str] | None, str | None], Awaitable[CritiqueStep]]
    revise: Callable[[str, list[str]], Awaitable[TextStep]]  # draft, improvements
    summary: Callable[[str], Awaitable[TextStep]]  # the best draft


@dataclass
class State:
    """Where a refinement stands: every draft so far and the critique of each.

    The last draft may still await its critique (an edited draft does). `asked`, when set,
    replaces the last critique's improvements as what the next revision acts on. `calls`
    are the records of the calls that made this state (a fork starts with its parent's).
    """

    drafts: list[str] = field(default_factory=list)
    critiques: list[Critique] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    asked: list[str] | None = None


@dataclass(frozen=True)
class Outcome:
    """What the loop produced: every scored draft, the best one, and its summary."""

    drafts: list[str]
    iterations: list[Iteration]
    calls: list[CallRecord]
    best: int
    summary: str
    stop_reason: StopReason


Round = Callable[[str], AbstractContextManager[Any]]
#: step, iteration, and the score once a critique has one
OnStep = Callable[[str, int, int | None], None]


def _no_round(name: str) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


def _quiet(step: str, iteration: int, score: int | None) -> None:
    return None


async def refine_loop(
    topic: str,
    steps: Steps,
    *,
    max_iterations: int,
    quality_threshold: int,
    start: State | None = None,
    round_scope: Round = _no_round,
    on_step: OnStep = _quiet,
) -> Outcome:
    """Refine `topic` from `start` (nothing: a first draft) and return the outcome.

    Every draft that can be returned is scored (the revision made on the last iteration is
    critiqued too), and the best-scoring draft is returned, the latest one on a tie.
    `max_iterations` bounds the revisions of the whole chain, those in `start` included.
    """
    state = dataclasses.replace(
        start or State(),
        drafts=list(start.drafts) if start else [],
        critiques=list(start.critiques) if start else [],
        calls=list(start.calls) if start else [],
    )

    async def critique_last(previous: list[str] | None) -> None:
        n = len(state.drafts) - 1
        review = await steps.critique(state.drafts[n], previous, topic)
        state.critiques.append(review.critique)
        state.calls.append(review.call)
        on_step("critique", n, review.critique.score)

    if not state.drafts:
        with round_scope("round-0-draft"):
            on_step("draft", 0, None)
            first = await steps.draft(topic)
            state.drafts.append(first.text)
            state.calls.append(first.call)
            await critique_last(None)
    elif len(state.critiques) < len(state.drafts):  # an edited draft: critique it first
        with round_scope(f"round-{len(state.drafts) - 1}-critique"):
            await critique_last(state.critiques[-1].improvements if state.critiques else None)

    while state.critiques[-1].score < quality_threshold and len(state.drafts) <= max_iterations:
        n = len(state.drafts)
        with round_scope(f"round-{n}-revise"):
            on_step("revise", n, None)
            asked = state.critiques[-1].improvements if state.asked is None else state.asked
            state.asked = None
            revised = await steps.revise(state.drafts[-1], asked)
            state.drafts.append(revised.text)
            state.calls.append(revised.call)
            await critique_last(asked)

    iterations = [
        Iteration(index=i, score=c.score, critique=c, words=len(d.split()))
        for i, (d, c) in enumerate(zip(state.drafts, state.critiques, strict=True))
    ]
    best = max(range(len(iterations)), key=lambda i: (iterations[i].score, i))
    with round_scope("summary"):
        on_step("summary", best, None)
        summary = await steps.summary(state.drafts[best])
        state.calls.append(summary.call)
    reached = iterations[-1].score >= quality_threshold
    return Outcome(
        drafts=state.drafts,
        iterations=iterations,
        calls=state.calls,
        best=best,
        summary=summary.text,
        stop_reason="threshold" if reached else "max_iterations",
    )
