"""The summariser: a two- or three-paragraph executive summary of a report.

It retells the report's own title, headings and first points, names the risks it discusses and
its first recommended steps, in plain prose with no headings or lists. Its last line is the
offline notice, so that a summary read on its own (in summary.md, or at the top of report.html)
still says who wrote it.
"""

from __future__ import annotations

from refine_kit.offline.document import context_for_document, parse_document, sections_of_kind
from refine_kit.offline.phrases import OFFLINE_NOTICE
from refine_kit.offline.rubric import LINKING_OPENERS
from refine_kit.offline.text import (
    SENTENCE_BREAK,
    capitalise,
    is_prose,
    join_with_and,
    list_items,
    strip_list_marker,
    word_count,
)

_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _as_prose(line: str) -> str:
    """A list item or sentence as plain prose: no markers, emphasis or opening link phrase."""
    line = strip_list_marker(line).replace("**", "").replace("`", "").replace("Illustration: ", "")
    low = line.lower()
    if low.startswith(LINKING_OPENERS):
        line = line[len(next(o for o in LINKING_OPENERS if low.startswith(o))) :]
    return line.strip()


def _first_sentence(blocks: list[str]) -> str:
    """The first sentence of the first paragraph, as plain prose."""
    prose = " ".join(next((b for b in blocks if is_prose(b)), "").split())
    return capitalise(_as_prose(SENTENCE_BREAK.split(prose)[0])) if prose else ""


def summarise_report(report: str) -> str:
    """Two or three paragraphs retelling the report's title, headings and main points, with the
    offline notice on a line of its own at the end of the last one."""
    # A soft line break, not a new paragraph: the summary keeps its two or three paragraphs.
    return f"{_summary_text(report)}\n\n{OFFLINE_NOTICE}"  # a paragraph of its own


def _summary_text(report: str) -> str:
    """The summary proper: what the report covers, its main points and what it advises."""
    doc = parse_document(report)  # the report's own offline notice is set apart here
    ctx = context_for_document(doc)
    if word_count(report) < 5:
        return "The report is empty, so there is nothing to summarise yet."
    body, risks, recs, ends = (
        sections_of_kind(doc, ctx, k) for k in ("body", "risks", "recs", "conclusion")
    )
    # 1. What it covers: the topic, the first and last themes, the closing sections.
    first = f"This report examines {ctx.topic}."
    if body:
        count = _NUMBER_WORDS[len(body) - 1] if len(body) <= len(_NUMBER_WORDS) else str(len(body))
        first += f" It works through {count} main themes, from {ctx.mid_sentence(body[0].heading)}"
        first += f" to {ctx.mid_sentence(body[-1].heading)}" if len(body) > 1 else ""
        closing = [
            name
            for name, present in (
                ("risks and limitations", risks),
                ("practical recommendations", recs),
                ("a short conclusion", ends),
            )
            if present
        ]
        first += f", and closes with {join_with_and(closing)}." if closing else "."
    # 2. Its main points: the opening sentence of the first few sections.
    sources = [s.blocks for s in body[:3]] or [doc.intro]  # no sections: use the introduction
    points = [p for p in map(_first_sentence, sources) if p]
    second = "Its central points are these. " + " ".join(points) if points else ""
    # 3. What to do: the named risks ("Name: explanation") and the first steps or the advice.
    risk_items = [_as_prose(ln) for s in risks for ln in list_items(s.blocks)]
    names = [
        ctx.mid_sentence(r.split(":", 1)[0] if ":" in r[:40] else " ".join(r.split()[:6]))
        for r in risk_items
    ]
    third = f"It is candid about the risks, including {join_with_and(names[:3])}. " if names else ""
    steps = [_as_prose(ln).rstrip(".") for s in recs for ln in list_items(s.blocks)]
    advice = _first_sentence((recs or ends)[0].blocks) if recs or ends else ""
    if len(steps) >= 2:
        third += (
            f"As a first move, it recommends that readers {ctx.mid_sentence(steps[0])}, "
            f"then {ctx.mid_sentence(steps[1])}."
        )
    elif advice:
        third += f"Its advice comes down to this: {ctx.mid_sentence(advice)}"
    else:
        third += "It leaves the choice of next steps to the reader."
    return "\n\n".join(p for p in (first, second, third.strip()) if p)
