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
from pydantic import ValidationError

from refine_kit import answers, context, literals, prompts
from refine_kit.client import call_llm, current_config
from refine_kit.errors import LLMOutputError, TruncatedAnswer
from refine_kit.models import (
    CallRecord,
    Critique,
    CritiqueStep,
    LLMReply,
    Step,
    TextStep,
    Usage,
)
from refine_kit.replay import replayable

literals.register()  # the kit's models cross trace and task boundaries cheaply (tasks import this)

#: A critique is a few hundred characters; an answer this long is a broken server's.
MAX_CRITIQUE_CHARS = 100_000


def _record(step: Step, reply: LLMReply) -> CallRecord:
    return CallRecord(
        step=step,
        started_at=reply.started_at,
        seconds=reply.seconds,
        usage=reply.usage,
        model=reply.model,
        requests=reply.requests,
    )


def _complete(reply: LLMReply, step: Step) -> None:
    """Refuse an answer that was cut at the token limit: a short report must not pass."""
    if reply.finish_reason == "length":
        raise TruncatedAnswer(
            f"{step}: the answer was cut at the token limit (finish_reason 'length', "
            f"{reply.usage.completion_tokens} completion tokens); raise max_tokens"
        )


def _markdown_text(reply: LLMReply, step: Step) -> str:
    """A usable Markdown answer: complete, unwrapped (reasoning block, fence), not empty."""
    _complete(reply, step)
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
    """Score a draft with a validated `Critique`, re-asking (bounded) when the JSON is unusable.

    The critic is told the topic, so it can judge whether the draft is on it (and two topics'
    identical drafts are two questions). A re-ask shows the model its validation error; it
    happens inside this one checkpoint, so a task retry never starts from an answer that
    already failed.
    """
    prompt = prompts.critique_prompt(draft, previous_improvements, topic)
    system = prompts.CRITIC_SYSTEM_PROMPT
    budget = current_config().reasks
    ask_prompt, usage, asks, requests = prompt, Usage(), 0, 0
    started: float | None = None
    while True:
        reply = await call_llm(ask_prompt, system, json_mode=True, schema=Critique)
        asks += 1
        requests += reply.requests
        started = reply.started_at if started is None else started
        usage += reply.usage
        try:
            critique = _critique(reply)
        except (LLMOutputError, ValidationError) as exc:
            if asks > budget:
                raise LLMOutputError(
                    f"critique: no valid Critique after {asks} asks: {_short(exc)}"
                ) from None
            ask_prompt = prompts.reask_prompt(prompt, reply.text, _short(exc))
            if (ctx := context.current()) is not None:
                ctx.ledger.reasks += 1  # counted now: a critique that fails still paid for it
            continue
        call = CallRecord(
            step="critique",
            started_at=started,
            seconds=reply.started_at + reply.seconds - started,
            usage=usage,
            model=reply.model,
            asks=asks,
            requests=requests,
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


def _critique(reply: LLMReply) -> Critique:
    """The reply's `Critique`: complete, found in any wrapping, then validated strictly."""
    _complete(reply, "critique")
    if len(reply.text) > MAX_CRITIQUE_CHARS:
        raise LLMOutputError(
            f"the answer is {len(reply.text):,} characters; a critique is a short JSON object"
        )
    return Critique.model_validate(answers.json_object(reply.text))


def _short(exc: Exception) -> str:
    """A validation error in a few lines: enough for the model to fix, short enough to send."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)
