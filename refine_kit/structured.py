"""One structured step for any pydantic model: ask, find the JSON, validate, re-ask.

Models wrap JSON in fences, think aloud before it, forget a field or cut an answer short.
`ask_for` asks for a model's JSON schema in the best shape the endpoint accepts (the
client's `json_schema` -> `json_object` -> instructions ladder), finds the JSON object in
whatever came back, and validates it strictly. An unusable answer is answered the way a
person would: the bad answer stays in the conversation as the assistant's turn and the
validation error follows as the next user turn, up to the `reasks` setting. It runs inside
the traced step that calls it, so the whole exchange is one checkpoint with one budget: a
retry never starts again from an answer that already failed.

The critique uses it; any step that needs a validated object (a judge's verdict) does too.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from refine_kit import answers, context, prompts
from refine_kit.client import Message, chat, current_config
from refine_kit.errors import LLMOutputError
from refine_kit.models import CallRecord, LLMReply, Step, Usage

M = TypeVar("M", bound=BaseModel)

#: A structured answer is a few hundred characters; one this long is a broken server's.
MAX_STRUCTURED_CHARS = 100_000
#: How much of a bad answer goes back to the model with its error: enough to see the mistake.
MAX_ECHOED_CHARS = 2_000


async def ask_for(model: type[M], system: str, prompt: str, *, step: Step) -> tuple[M, CallRecord]:
    """Ask for a `model` instance; return it validated, with the record of every ask.

    Raises `LLMOutputError` when no answer validates within the re-ask budget.
    """
    budget = current_config().reasks
    messages: list[Message] = [
        {"role": "system", "content": system},
        {"role": "user", "content": prompt},
    ]
    usage, asks, requests = Usage(), 0, 0
    started: float | None = None
    while True:
        reply = await chat(messages, json_mode=True, schema=model)
        asks += 1
        requests += reply.requests
        started = reply.started_at if started is None else started
        usage += reply.usage
        try:
            value = parse(reply, model, step)
        except (LLMOutputError, ValidationError) as exc:
            problem = describe(exc)
            if asks > budget:
                raise LLMOutputError(
                    f"{step}: no valid {model.__name__} after {asks} asks: {problem}"
                ) from None
            messages += [
                {"role": "assistant", "content": reply.text[:MAX_ECHOED_CHARS]},
                {"role": "user", "content": prompts.reask_prompt(problem)},
            ]
            if (ctx := context.current()) is not None:
                ctx.ledger.reasks += 1  # counted now: a step that fails still paid for it
            continue
        call = CallRecord(
            step=step,
            started_at=started,
            seconds=reply.started_at + reply.seconds - started,
            usage=usage,
            model=reply.model,
            asks=asks,
            requests=requests,
        )
        return value, call


def parse(reply: LLMReply, model: type[M], step: Step) -> M:
    """The reply's `model` instance: complete, found in any wrapping, validated strictly."""
    answers.complete(reply, step)
    if len(reply.text) > MAX_STRUCTURED_CHARS:
        raise LLMOutputError(
            f"the answer is {len(reply.text):,} characters; a {model.__name__} is a short "
            "JSON object"
        )
    return model.model_validate(answers.json_object(reply.text))


def describe(exc: Exception) -> str:
    """A validation error in a few lines: enough for the model to fix, short enough to send."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)
