"""The traced steps: each is ONE LLM call, a Flyte checkpoint, and validates its own answer.

`@flyte.trace` records a step's result when it completes. When the task around it is
retried on a cluster, completed steps return their recorded result instead of calling the
model again. Flyte's local mode does not replay, so `@replayable` (see `replay.py`) does the
same locally, and also across a process that was killed and started again.
Validation happens inside the step on purpose: if a step returned raw text and the caller
parsed it, a retry would replay the same bad text and fail the same way forever.
"""

from __future__ import annotations

import flyte

from refine_kit import answers, literals, prompts, structured
from refine_kit.client import call_llm
from refine_kit.errors import LLMOutputError
from refine_kit.models import (
    CallRecord,
    Critique,
    CritiqueStep,
    LLMReply,
    Step,
    TextStep,
)
from refine_kit.replay import replayable

literals.register()  # the kit's models cross trace and task boundaries cheaply (tasks import this)


def _record(step: Step, reply: LLMReply) -> CallRecord:
    return CallRecord(
        step=step,
        started_at=reply.started_at,
        seconds=reply.seconds,
        usage=reply.usage,
        model=reply.model,
        requests=reply.requests,
    )


def _markdown_text(reply: LLMReply, step: Step) -> str:
    """A usable Markdown answer: complete, unwrapped (reasoning block, fence), not empty."""
    answers.complete(reply, step)
    text = answers.markdown_answer(reply.text)
    if not text:
        raise LLMOutputError(f"{step}: the model returned an empty answer")
    return text


@flyte.trace
@replayable
async def generate_initial_draft(topic: str) -> TextStep:
    """Write the first draft of a report on `topic`."""
    reply = await call_llm(prompts.draft_prompt(topic), prompts.GENERATOR_SYSTEM_PROMPT)
    return TextStep(text=_markdown_text(reply, "draft"), call=_record("draft", reply))


@flyte.trace
@replayable
async def critique_content(
    draft: str, previous_improvements: list[str] | None = None, topic: str | None = None
) -> CritiqueStep:
    """Score a draft with a validated `Critique` (see `structured.ask_for`: re-asks included).

    The critic is told the topic, so it can judge whether the draft is on it (and two topics'
    identical drafts are two questions).
    """
    critique, call = await structured.ask_for(
        Critique,
        prompts.CRITIC_SYSTEM_PROMPT,
        prompts.critique_prompt(draft, previous_improvements, topic),
        step="critique",
    )
    return CritiqueStep(critique=critique, call=call)


@flyte.trace
@replayable
async def revise_content(draft: str, improvements: list[str]) -> TextStep:
    """Rewrite a draft so that it acts on the critique's improvements."""
    reply = await call_llm(
        prompts.revise_prompt(draft, improvements), prompts.REVISER_SYSTEM_PROMPT
    )
    return TextStep(text=_markdown_text(reply, "revise"), call=_record("revise", reply))


@flyte.trace
@replayable
async def generate_summary(content: str) -> TextStep:
    """Write the executive summary of the final report."""
    reply = await call_llm(prompts.summary_prompt(content), prompts.SUMMARY_SYSTEM_PROMPT)
    return TextStep(text=_markdown_text(reply, "summary"), call=_record("summary", reply))
