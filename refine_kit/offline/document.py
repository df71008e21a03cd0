"""A Markdown report as the offline model reads and edits it.

A `Document` is a title, introduction blocks and "##" sections of blocks (paragraphs or lists,
as separated by blank lines); deeper headings stay inside their section's text. The offline
notice ("*Written by the refine_kit offline model ...*") is kept apart from the text, so that no
edit can touch it, the critic cannot count it, and rendering puts it back exactly once. Here too is
what each section is for (body, risks, recommendations, conclusion, introduction) and which
topic a report is about, since the critic, reviser and summariser all need to know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from refine_kit.offline.phrases import (
    CONCLUSION_HEADINGS,
    OFFLINE_NOTICE,
    RECOMMENDATION_HEADINGS,
    RISK_HEADINGS,
    TITLES,
    SectionTemplate,
)
from refine_kit.offline.text import deliberate_casing
from refine_kit.offline.topic import TopicContext


@dataclass
class Section:
    """A "##" heading and the blocks under it."""

    heading: str
    blocks: list[str]


@dataclass
class Document:
    """A parsed report; `render` turns it back into Markdown."""

    title: str
    intro: list[str]
    sections: list[Section]
    notice: str = ""  # the offline notice, rendered under the title when set

    def render(self) -> str:
        parts = [f"# {self.title}"] if self.title else []
        parts += [self.notice] if self.notice else []
        parts += self.intro
        for s in self.sections:
            parts += [f"## {s.heading}", *s.blocks]
        return "\n\n".join(parts)

    def block_lists(self) -> list[list[str]]:
        """The introduction's blocks, then each section's: every place text can be edited."""
        return [self.intro] + [s.blocks for s in self.sections]


_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# "# Title" or "## Section"; "###" stays text. The text group starts at a non-space, so a
# heading line of spaces alone fails in one pass instead of backtracking over every split.
_HEADING_LINE = re.compile(r"(#{1,2})\s+(\S(?:.*\S)?)")


def parse_document(text: str) -> Document:
    """Split the text into blocks at blank lines, then pick out the "#" and "##" headings."""
    doc = Document("", [], [])
    target = doc.intro
    for chunk in _BLANK_LINE.split(text.strip()):
        if not chunk.startswith("#") and "\n#" not in chunk:  # the usual case: no heading
            if chunk.strip():
                target.append(chunk.strip("\n").rstrip())
            continue
        lines: list[str] = []
        for line in [*chunk.split("\n"), "# "]:  # "# " is a sentinel that flushes the last lines
            m = _HEADING_LINE.match(line) if line.startswith("#") else None
            if m is None and line != "# ":
                lines.append(line.rstrip())
                continue
            if "".join(lines).strip():
                target.append("\n".join(lines).strip("\n"))
            lines = []
            if m is None:
                break
            if m.group(1) == "#" and not (doc.title or doc.intro or doc.sections):
                doc.title = m.group(2).strip("# ")  # the first "# " line, before any other text
            else:
                doc.sections.append(Section(m.group(2).strip("# "), []))
                target = doc.sections[-1].blocks
    _take_notice(doc)
    return doc


def _take_notice(doc: Document) -> None:
    """Move the offline notice out of the text wherever it stands (a person may have moved it,
    or pasted it twice), so that it is rendered once, under the title."""
    places = doc.block_lists()
    if not any(OFFLINE_NOTICE in blocks for blocks in places):
        return  # text from elsewhere: nothing to move
    for blocks in places:
        blocks[:] = [b for b in blocks if b != OFFLINE_NOTICE]
    doc.notice = OFFLINE_NOTICE


# A heading's kind decides its role (matched without the subject); anything else is a body section.
_HEADING_KIND_CUES = (
    ("conclusion", "conclu|takeaway|final thought|closing|wrap|in summary|sum up|bottom line"),
    ("risks", "risk|limitation|pitfall|downside|trade-off|challenge|what can go wrong"),
    ("recs", "recommend|next step|what to do|action|getting started|where to start|roadmap"),
    ("intro", "intro|overview|background"),
)
_WRITER_HEADING_KINDS = {
    heading: kind
    for kind, headings in (
        ("risks", RISK_HEADINGS),
        ("recs", RECOMMENDATION_HEADINGS),
        ("conclusion", CONCLUSION_HEADINGS),
    )
    for heading in headings
}
_ANY_KIND_CUE = re.compile("|".join(cues for _, cues in _HEADING_KIND_CUES))
_KIND_CUES = tuple((kind, re.compile(cues)) for kind, cues in _HEADING_KIND_CUES)


def heading_kind(heading: str, ctx: TopicContext) -> str:
    """What a section is for: "body", "risks", "recs", "conclusion" or "intro"."""
    if heading not in ctx.heading_kinds:  # memoised per request: the reviser asks often
        # The writer's own headings are known without matching (a speed-up, same answers).
        kind = _WRITER_HEADING_KINDS.get(heading) or ("body" if ctx.template_of(heading) else "")
        if not kind:
            plain = ctx.without_subject(heading)
            found = _ANY_KIND_CUE.search(plain) and next(
                k for k, cue in _KIND_CUES if cue.search(plain)
            )
            kind = found or "body"
        ctx.heading_kinds[heading] = kind
    return ctx.heading_kinds[heading]


def sections_of_kind(doc: Document, ctx: TopicContext, kind: str) -> list[Section]:
    """The report's sections of one kind, in order."""
    return [s for s in doc.sections if heading_kind(s.heading, ctx) == kind]


def introduction_blocks(doc: Document, ctx: TopicContext) -> list[str]:
    """Where the introduction lives: before the first section, else an "Introduction" section."""
    intros = sections_of_kind(doc, ctx, "intro")
    return intros[0].blocks if intros and not doc.intro else doc.intro


# Each title pattern as the text before and after its {topic} placeholder.
_TITLE_AFFIXES = tuple((t.split("{", 1)[0].lower(), t.split("}", 1)[1].lower()) for t in TITLES)


def context_for_document(doc: Document) -> TopicContext:
    """Recover the topic from the title the writer made (or from any title a person wrote).

    A title can be read several ways ("Risk: a practical guide" may be a topic or a topic plus a
    suffix), so take the first reading whose subject the section headings actually use.
    """
    title = doc.title or (doc.sections[0].heading if doc.sections else "") or "this subject"
    low = title.lower()
    readings = [
        title[len(head) : len(title) - len(tail)]
        for head, tail in _TITLE_AFFIXES
        if low.startswith(head) and low.endswith(tail) and len(low) > len(head + tail)
    ]
    readings = list(dict.fromkeys([*readings, title.split(": ", 1)[0], title]))
    headings = " ".join(s.heading for s in doc.sections).casefold()
    for reading in readings:
        ctx = TopicContext.from_topic(reading)
        if not headings or ctx.subject.casefold() in headings:
            return _with_body_casing(ctx, doc)
    return _with_body_casing(TopicContext.from_topic(readings[0]), doc)


def _with_body_casing(ctx: TopicContext, doc: Document) -> TopicContext:
    """The context with the user's casing of the topic's first letter, which a title hides.

    A title capitalises a topic typed as "urban beekeeping"; the body's mid-sentence uses
    show how it was typed. Without this, a revision would write "Urban beekeeping" where the
    draft wrote "urban beekeeping".
    """
    first = ctx.topic.split(" ", 1)[0]
    if not first[:1].isupper() or deliberate_casing(first):
        return ctx  # already lower-case, or an acronym or name whose casing is fixed
    lowered = ctx.subject[:1].lower() + ctx.subject[1:]
    body = "\n".join(b for blocks in doc.block_lists() for b in blocks)
    # After a space is mid-sentence: a sentence start would have a capital.
    if f" {lowered}" not in body:
        return ctx
    return TopicContext(ctx.topic[:1].lower() + ctx.topic[1:], lowered)


def next_unused_template(doc: Document, ctx: TopicContext) -> SectionTemplate | None:
    """The first template, in this topic's order, that the report does not use yet."""
    used = {t.key for s in doc.sections if (t := ctx.template_of(s.heading))}
    return next((t for t in ctx.template_order if t.key not in used), None)
