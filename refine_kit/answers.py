"""Turning a model's raw answer into what a step needs, whatever the server around it.

Real models wrap their answers: a reasoning model served without a reasoning parser puts
`<think>...</think>` first, chat models fence JSON in ```json blocks or add a sentence
before and after it when JSON mode is not enforced. These helpers strip the wrapping and
find the one JSON object in the text; validation stays strict (the caller's pydantic
model), so a wrapped but valid answer is accepted and an invalid one is still refused.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from refine_kit.errors import LLMOutputError, TruncatedAnswer
from refine_kit.models import LLMReply

# A leading reasoning block; an unclosed one (the answer was cut) runs to the end.
_THINKING = re.compile(
    r"^\s*<(think|thinking|reasoning)>.*?(?:</\1>|\Z)", re.DOTALL | re.IGNORECASE
)
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n(.*?)\n```[ \t]*$", re.DOTALL)
# Where a JSON object may start: enough for any wrapping seen in practice, and a bound on
# the work a hostile answer full of braces can cause.
_MAX_STARTS = 16


def complete(reply: LLMReply, step: str) -> None:
    """Refuse an answer cut at the token limit: a short report or a partial JSON must not pass."""
    if reply.finish_reason == "length":
        raise TruncatedAnswer(
            f"{step}: the answer was cut at the token limit (finish_reason 'length', "
            f"{reply.usage.completion_tokens} completion tokens); raise max_tokens"
        )


def without_reasoning(text: str) -> str:
    """The answer after any leading `<think>` block."""
    return _THINKING.sub("", text, count=1).strip()


def markdown_answer(text: str) -> str:
    """A Markdown answer: without a reasoning block or a fence around the whole answer."""
    text = without_reasoning(text)
    fenced = _FENCE.match(text)
    return fenced.group(1).strip() if fenced else text


def json_object(text: str) -> dict[str, Any]:
    """The JSON object in an answer: bare, fenced, after reasoning, or amid a sentence or two.

    Raises `LLMOutputError` saying what was found instead, in words a model can act on when
    it is asked again.
    """
    text = without_reasoning(text)
    if not text:
        raise LLMOutputError("the answer was empty; expected a JSON object")
    decoder = json.JSONDecoder()
    error: json.JSONDecodeError | None = None
    # Try each "{" in turn: the first that starts a complete object is the answer. raw_decode
    # reads one object and stops, so prose after it is ignored.
    for match in itertools.islice(re.finditer(r"\{", text), _MAX_STARTS):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError as exc:
            error = error or exc
            continue
        if isinstance(value, dict):
            return value
    if error is None:
        raise LLMOutputError("no JSON object in the answer (no '{' found)")
    raise LLMOutputError(f"the JSON object in the answer is not valid JSON ({error})")
