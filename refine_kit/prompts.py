"""Every piece of prompt text the pipeline sends, in one place.

The four system prompts carry the tutorial's names and rubric. The user-prompt builders
wrap the text being worked on in explicit delimiters so that a model (real or offline)
can tell the instructions from the report, and so that a report can never be mistaken
for part of the instructions.
"""

from __future__ import annotations

GENERATOR_SYSTEM_PROMPT = """You write clear, well-organised reports for a general professional \
audience. For the topic you are given, produce a report in Markdown with:
1. A title as a level-1 heading.
2. An opening section that explains why the topic matters now.
3. Several sections with descriptive level-2 headings, each making concrete points:
   specific examples, mechanisms, figures or named practices where they help.
4. A conclusion that draws the main takeaways together.
Keep the tone professional and readable. Aim for roughly 500 to 800 words."""

CRITIC_SYSTEM_PROMPT = """You are an exacting but fair editor. Judge the report draft you are \
given on five criteria:
- Clarity: can a busy reader follow it on a first pass?
- Structure: does it have a title, an introduction, well-headed sections and a conclusion,
  in a logical order?
- Depth: does each section make specific, concrete points rather than generalities?
- Accuracy: are the claims reasonable and supported?
- Engagement: would a reader want to keep reading?
If earlier improvements are listed, check whether each one was addressed.
Answer with a JSON object only, in exactly this shape:
{"score": <integer from 1 to 10>,
 "strengths": ["...", "..."],
 "improvements": ["...", "..."],
 "summary": "one or two sentences"}
Make every improvement specific and actionable. A score of 8 or more means the report
is ready to publish."""

REVISER_SYSTEM_PROMPT = """You are a senior editor revising a report in response to an \
editor's feedback. Improve the report by acting on every requested improvement while keeping
what already works.
- Address each improvement explicitly and concretely.
- Keep the author's voice and the existing structure unless the feedback asks otherwise.
- Keep the content the feedback praised.
- Make sure the result reads as one coherent piece.
Reply with the complete revised report in Markdown and nothing else: no preamble, no notes."""

SUMMARY_SYSTEM_PROMPT = """You write executive summaries. Summarise the report you are given \
in two or three short paragraphs for a reader with two minutes: the main points, what they
mean, and what to do about them. Professional tone, no headings, no bullet lists."""

REPORT_START = "<<<REPORT"
REPORT_END = "REPORT>>>"


def _enclose(report: str) -> str:
    return f"{REPORT_START}\n{report.strip()}\n{REPORT_END}"


def draft_prompt(topic: str) -> str:
    """The user prompt for the first draft."""
    return f"Write a comprehensive report on this topic:\n\n{topic}"


#: The line of a critique prompt that names the topic the report was asked to cover.
TOPIC_LINE = "The report was written on this topic:"


def critique_prompt(
    draft: str, previous_improvements: list[str] | None = None, topic: str | None = None
) -> str:
    """The user prompt for a critique. The topic lets the critic judge whether the draft is on
    it; earlier improvements let it check follow-through."""
    parts = ["Critique the report below."]
    if topic:
        parts.append(f"{TOPIC_LINE} {topic}")
    if previous_improvements:
        asked = "\n".join(f"- {item}" for item in previous_improvements)
        parts.append(f"Improvements requested in the previous round:\n{asked}")
    parts.append(_enclose(draft))
    return "\n\n".join(parts)


def revise_prompt(draft: str, improvements: list[str]) -> str:
    """The user prompt for a revision that acts on a critique's improvements."""
    asked = "\n".join(f"- {item}" for item in improvements) or "- Tighten the writing."
    return f"Revise the report below. Address each of these improvements:\n{asked}\n\n" + _enclose(
        draft
    )


def summary_prompt(report: str) -> str:
    """The user prompt for the executive summary."""
    return "Write an executive summary of the report below.\n\n" + _enclose(report)


def reask_prompt(error: str) -> str:
    """The next user turn after an answer failed validation (the answer itself stays in the
    conversation as the assistant's turn): what was wrong, and what to send instead."""
    return (
        f"Your previous answer could not be used:\n{error}\n\n"
        "Reply again with a JSON object that matches the requested shape exactly."
    )


def all_prompts() -> dict[str, str]:
    """The system prompts by name, for cache keys and for display in the notebooks."""
    return {
        "GENERATOR_SYSTEM_PROMPT": GENERATOR_SYSTEM_PROMPT,
        "CRITIC_SYSTEM_PROMPT": CRITIC_SYSTEM_PROMPT,
        "REVISER_SYSTEM_PROMPT": REVISER_SYSTEM_PROMPT,
        "SUMMARY_SYSTEM_PROMPT": SUMMARY_SYSTEM_PROMPT,
    }
