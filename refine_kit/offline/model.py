"""A deterministic stand-in for the LLM, so the kit runs with no API key (laptops, CI).

A small transport sits under the real `openai.AsyncOpenAI` client, parses each chat request and
calls `OfflineModel.complete`. Everything here is pure: no I/O, no clocks, no global state,
and every "choice" is a SHA-256 hash of the input, so the same messages always give
byte-identical answers, in any process.

This module reads a request and decides which job it asks for; each job has its own module:
`writer` (the first draft), `critic` (the JSON critique), `reviser` (acting on improvements)
and `summariser` (the executive summary).
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from refine_kit.offline.critic import critique_report
from refine_kit.offline.reviser import revise_report
from refine_kit.offline.summariser import summarise_report
from refine_kit.offline.text import LIST_ITEM, count_tokens, strip_list_marker
from refine_kit.offline.writer import draft_report
from refine_kit.prompts import REPORT_END, REPORT_START, TOPIC_LINE

__all__ = ["OfflineCompletion", "OfflineModel", "count_tokens"]

# The pipeline step each role answers.
_STEP_OF_ROLE = {"writer": "draft", "critic": "critique", "reviser": "revise", "summary": "summary"}
# A first line that names the writing job before its first colon ("Write a report on: X").
_INSTRUCTION_WORD = re.compile(r"\b(?:write|report|topic|draft)\b", re.I)
_WRITING_REQUEST = re.compile(
    r"(?is)^(?:please\s+)?(?:write|draft|produce|create|prepare)\b.*?\b(?:on|about)\s+"
)


class OfflineCompletion(BaseModel):
    """What one offline chat completion returns: the reply and its token counts."""

    content: str
    prompt_tokens: int
    completion_tokens: int


def _message_text(content: object) -> str:
    """Message content as text (plain strings, or OpenAI-style lists of text parts)."""
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _role_for(system: str, instruction: str, has_report: bool, json_mode: bool) -> str:
    """Which job is asked: the system prompt decides, else the user prompt's first line.

    Keywords rather than exact prompts, so that reworded prompts still work. The enclosed report
    is never looked at, so a report (or topic) that mentions "revision" cannot change the job.
    """
    low = system.lower()
    if json_mode or (
        re.search(r"\bscores?\b", low)
        and re.search(r"critiq|critic|editor|judge|assess|evaluat", low)
    ):
        return "critic"
    if "revis" in low:
        return "reviser"
    if "summar" in low:
        return "summary"
    if not has_report:
        return "writer"
    first = instruction.strip().split("\n", 1)[0].lower()
    if re.search(r"critiq|\bscore|evaluat|assess|grade|judge", first):
        return "critic"
    return "summary" if "summar" in first else "reviser"


def _after_instruction(text: str) -> str | None:
    """What follows the colon of a first line that names the job ("Write a report on: X").

    Plain string steps rather than one regular expression: a long first line full of "report"
    made that expression backtrack once per occurrence, quadratic in the request's length.
    """
    head, colon, rest = text.partition(":")
    if not colon or "\n" in head or not _INSTRUCTION_WORD.search(head):
        return None
    return rest.lstrip() or None


def _topic_from_prompt(user: str) -> str:
    """The topic: the text after the instruction line (after the blank line in draft_prompt)."""
    text = user.strip()
    _, blank, rest = text.partition("\n\n")
    if blank and rest.strip():
        text = rest.strip().split("\n\n", 1)[0]  # a re-ask appends more paragraphs: ignore them
    elif (after := _after_instruction(text)) is not None:
        text = after
    else:
        text = _WRITING_REQUEST.sub("", text)
    words = " ".join(text.split()).strip(" .:;?!\"'").split()
    return " ".join(words[:20]) or "the chosen subject"


def _named_topic(instruction: str) -> str | None:
    """The topic a critique request names on its topic line, if it has one."""
    for line in instruction.splitlines():
        if line.startswith(TOPIC_LINE):
            return line[len(TOPIC_LINE) :].strip() or None
    return None


def _listed_items(instruction: str, after: str = "") -> list[str]:
    """The list items in a prompt's instructions (only those after a line containing `after`)."""
    lines = instruction.splitlines()
    start = next((i for i, ln in enumerate(lines) if after and after in ln.lower()), -1)
    items = [strip_list_marker(ln).strip() for ln in lines[start + 1 :] if LIST_ITEM.match(ln)]
    if items or after:
        return items
    return [ln.strip() for ln in lines[1:] if ln.strip()]  # a person's unlisted requests


class OfflineModel:
    """Answers chat requests as writer, critic, reviser or summariser, deterministically."""

    def step_of(self, messages: list[dict[str, str]], *, json_mode: bool = False) -> str:
        """Which pipeline step a request is: draft, critique, revise or summary."""
        return _STEP_OF_ROLE[self._read(messages, json_mode)[0]]

    def complete(
        self, messages: list[dict[str, str]], *, json_mode: bool = False
    ) -> OfflineCompletion:
        """Answer one chat request. `messages` is the OpenAI list of {"role", "content"} dicts."""
        role, instruction, report, main, texts = self._read(messages, json_mode)
        text = main if report is None else report
        if role == "writer":
            content = draft_report(_topic_from_prompt(main))
        elif role == "critic":
            previous = _listed_items(instruction, after="previous")
            content = critique_report(text, previous, topic=_named_topic(instruction))
        elif role == "reviser":
            content = revise_report(text, _listed_items(instruction))
        else:
            content = summarise_report(text)
        return OfflineCompletion(
            content=content,
            prompt_tokens=sum(count_tokens(t) for _, t in texts),
            completion_tokens=count_tokens(content),
        )

    @staticmethod
    def _read(
        messages: list[dict[str, str]], json_mode: bool
    ) -> tuple[str, str, str | None, str, list[tuple[str, str]]]:
        """Split a request into its role, instruction, enclosed report and texts."""
        texts = [(str(m.get("role", "")), _message_text(m.get("content"))) for m in messages]
        system = "\n".join(t for role, t in texts if role in ("system", "developer"))
        users = [t for role, t in texts if role == "user"]
        # The report travels between delimiters; a re-ask repeats the original prompt.
        main = next((u for u in reversed(users) if REPORT_START in u), users[-1] if users else "")
        instruction, report = main, None
        if (start := main.find(REPORT_START)) >= 0:
            end = main.find(REPORT_END, start)
            instruction = main[:start]
            report = main[start + len(REPORT_START) : end if end >= 0 else len(main)].strip()
        return (
            _role_for(system, instruction, report is not None, json_mode),
            instruction,
            report,
            main,
            texts,
        )
