"""The concrete edits that make rubric checks pass, one function per kind of edit.

The reviser applies them to answer improvements, and the writer finishes a first draft with
the same ones, so drafts and revisions read alike. Each edit changes the `Document` in place
and keeps everything it does not need to touch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from refine_kit.offline.document import (
    Document,
    Section,
    heading_kind,
    introduction_blocks,
    next_unused_template,
    sections_of_kind,
)
from refine_kit.offline.phrases import (
    CONCLUSION_HEADINGS,
    CONCLUSIONS,
    CONNECTIVES,
    GENERIC_BULLETS,
    GENERIC_PARAGRAPHS,
    MEASUREMENT_PARAGRAPHS,
    MITIGATIONS,
    NEXT_STEPS,
    PLAIN_RECAP,
    RECOMMENDATION_HEADINGS,
    RECOMMENDATIONS,
    RISK_HEADINGS,
    RISK_LEAD,
    RISKS,
    SectionTemplate,
)
from refine_kit.offline.rubric import (
    FIGURE,
    HEDGE_CUES,
    LINKING_OPENERS,
    MITIGATION_CUES,
    QUOTED,
    WHY_CLAUSE,
)
from refine_kit.offline.text import (
    SENTENCE_BREAK,
    capitalise,
    contains_any,
    content_words,
    is_prose,
    list_items,
    markdown_list,
    pick,
    prose_word_count,
    stable_hash,
    word_count,
)
from refine_kit.offline.topic import TopicContext

# Where each kind of section goes: body sections, then risks, recommendations, conclusion.
_SECTION_RANK = {"intro": 0, "body": 1, "risks": 2, "recs": 3, "conclusion": 4}
_FILLERS = (
    ("in order to ", "to "),
    ("a number of ", "several "),
    ("due to the fact that ", "because "),
    ("very ", ""),
    ("really ", ""),
    ("basically ", ""),
    ("actually ", ""),
)


def insert_section(doc: Document, ctx: TopicContext, section: Section) -> None:
    """Put a section where it belongs: body sections, then risks, recommendations, conclusion."""
    mine = _SECTION_RANK[heading_kind(section.heading, ctx)]
    ranks = [_SECTION_RANK[heading_kind(s.heading, ctx)] for s in doc.sections]
    doc.sections.insert(next((i for i, r in enumerate(ranks) if r > mine), len(ranks)), section)


def add_paragraph(section: Section, para: str) -> None:
    """Add a paragraph after the section's last paragraph, so that lists stay at the end."""
    last = max((i for i, b in enumerate(section.blocks) if is_prose(b)), default=-1)
    if last > 0 and section.blocks[last].endswith(":"):
        last -= 1  # keep a lead-in line ("A practical sequence:") next to its list
    section.blocks.insert(last + 1, para)


def body_section(
    template: SectionTemplate, ctx: TopicContext, deep: bool, examples: bool
) -> Section:
    """A body section from a template: thin (two sentences) or developed, with or without a list."""
    blocks = [ctx.fill(" ".join(template.sentences[: 4 if deep else 2]))]
    if examples:
        blocks.append(markdown_list([ctx.fill(b) for b in template.bullets]))
    return Section(ctx.heading_for(template), blocks)


def add_examples(section: Section, ctx: TopicContext) -> None:
    """Add the template's list of examples, or a generic one if that is there already."""
    template = ctx.template_of(section.heading)
    items = markdown_list([ctx.fill(b) for b in template.bullets]) if template else ""
    if not items or items in section.blocks:
        heading = ctx.mid_sentence(section.heading)
        items = markdown_list([ctx.fill(b, x=heading) for b in GENERIC_BULLETS])
    section.blocks.append(items)


def develop_section(section: Section, ctx: TopicContext) -> None:
    """Add explanation until the section has 60 words of prose (the template's own first)."""
    template = ctx.template_of(section.heading)
    options = [ctx.fill(" ".join(template.sentences[2:]))] if template else []
    options += [ctx.fill(g, x=ctx.mid_sentence(section.heading)) for g in GENERIC_PARAGRAPHS]
    for para in options:
        if para[:40] not in "\n".join(section.blocks):
            add_paragraph(section, para)
            if prose_word_count(section.blocks) >= 60:
                return


def add_body_section(doc: Document, ctx: TopicContext, item: str) -> None:
    """Add the template section the critic suggested (or the next unused one if that is there
    already), or a new section on whatever a person asked for."""
    names = [a or b for a, b in QUOTED.findall(item)]
    named = re.search(r"section (?:on|about|covering|called|titled) ([^,.;]+)", item, re.I)
    used = {t.key for s in doc.sections if (t := ctx.template_of(s.heading))}
    suggested = [t for n in names if (t := ctx.template_of(n))]
    template = next((t for t in suggested if t.key not in used), None)
    if template is None and (suggested or not (names or named)):
        template = next_unused_template(doc, ctx)
    if template is not None:
        insert_section(doc, ctx, body_section(template, ctx, deep=True, examples=True))
        return
    x = ctx.mid_sentence((names[0] if names else named.group(1) if named else "").strip())
    if not x or capitalise(x).casefold() in {s.heading.casefold() for s in doc.sections}:
        return  # nothing new to add: the caller falls back to a paragraph in the closest section
    bullets = markdown_list([ctx.fill(b, x=x) for b in GENERIC_BULLETS])
    paragraphs = [ctx.fill(g, x=x) for g in GENERIC_PARAGRAPHS]
    insert_section(doc, ctx, Section(capitalise(x), [*paragraphs, bullets]))


def first_unused(options: Sequence[str], ctx: TopicContext, text: str) -> str | None:
    """The first phrasing not yet in the text, so that a repeated request adds something new."""
    return next((p for p in (ctx.fill(o) for o in options) if p not in text), None)


def improve_risks(doc: Document, ctx: TopicContext) -> None:
    """Add a risks section; once there, pair the risks with mitigations; then add a risk."""
    risks = sections_of_kind(doc, ctx, "risks")
    ordered = sorted(RISKS, key=lambda r: stable_hash(ctx.seed, "risk", r))
    if not risks:
        blocks = [ctx.fill(RISK_LEAD), markdown_list([ctx.fill(r) for r in ordered[:3]])]
        insert_section(doc, ctx, Section(pick(RISK_HEADINGS, ctx.seed, "risks"), blocks))
    elif not contains_any(ctx.without_subject("\n".join(risks[0].blocks)), MITIGATION_CUES):
        risks[0].blocks.append(ctx.fill(MITIGATIONS))
    elif extra := first_unused(ordered, ctx, doc.render()):
        risks[0].blocks.insert(len(risks[0].blocks) - 1, markdown_list([extra]))


def improve_recommendations(doc: Document, ctx: TopicContext) -> None:
    """Add a recommendations section; once there, list next steps; then add advice."""
    recs = sections_of_kind(doc, ctx, "recs")
    if not recs:
        para = ctx.fill(pick(RECOMMENDATIONS, ctx.seed, "recs"))
        heading = pick(RECOMMENDATION_HEADINGS, ctx.seed, "recs")
        insert_section(doc, ctx, Section(heading, [para]))
    elif len(list_items(recs[0].blocks)) < 3:
        steps = markdown_list([ctx.fill(s) for s in NEXT_STEPS], True)
        recs[0].blocks += ["A practical sequence:", steps]
    elif extra := first_unused(RECOMMENDATIONS, ctx, doc.render()):
        add_paragraph(recs[0], extra)


def improve_conclusion(doc: Document, ctx: TopicContext) -> None:
    """Add a conclusion; if it is too short, develop it; else add a second closing paragraph."""
    para = ctx.fill(pick(CONCLUSIONS, ctx.seed, "conclusion"))
    ends = sections_of_kind(doc, ctx, "conclusion")
    if not ends:
        insert_section(doc, ctx, Section(pick(CONCLUSION_HEADINGS, ctx.seed, "end"), [para]))
    elif word_count("\n".join(ends[0].blocks)) < 25:
        ends[0].blocks.append(para)
    elif extra := first_unused(CONCLUSIONS, ctx, doc.render()):
        ends[0].blocks.append(extra)


def _opens_with_link(block: str) -> bool:
    return block[:40].lower().startswith(LINKING_OPENERS)


def add_transitions(doc: Document, ctx: TopicContext) -> None:
    """Open paragraphs with linking phrases, first sections' openings from the second one on."""
    prose = [b for blocks in doc.block_lists() for b in blocks if is_prose(b)]
    need = max(1, 3 - sum(_opens_with_link(b) for b in prose))
    slots = [
        (s, i)
        for s in doc.sections
        for i, b in enumerate(s.blocks)
        if is_prose(b) and not _opens_with_link(b)
    ]
    firsts = [slot for j, slot in enumerate(slots) if j == 0 or slots[j - 1][0] is not slot[0]]
    # Keyed by identity: a set lookup per slot rather than a list scan (one section per
    # paragraph made that quadratic). Sections equal by value share their first slot's index,
    # so this picks the same slots as comparing by value.
    first_keys = {(id(s), i) for s, i in firsts}
    rest = [(s, i) for s, i in slots if (id(s), i) not in first_keys]
    order = firsts[1:] + firsts[:1] + rest
    start = stable_hash(ctx.seed, "transitions")
    for j, (s, i) in enumerate(order[:need]):
        s.blocks[i] = CONNECTIVES[(start + j) % len(CONNECTIVES)] + ctx.mid_sentence(s.blocks[i])


def add_measurement(doc: Document, ctx: TopicContext) -> None:
    """Say how to tell whether the approach works: in the recommendations, else the close."""
    para = ctx.fill(pick(MEASUREMENT_PARAGRAPHS, ctx.seed, "measure"))
    target = sections_of_kind(doc, ctx, "recs") or sections_of_kind(doc, ctx, "conclusion")
    if target:
        add_paragraph(target[0], para)
    else:
        introduction_blocks(doc, ctx).append(para)


def label_figures(doc: Document) -> None:
    """Mark the first unhedged figure of each sentence as illustrative."""

    def label(sentence: str) -> str:
        if contains_any(sentence.lower(), HEDGE_CUES):
            return sentence
        return FIGURE.sub(lambda m: m.group() + " (an illustrative figure)", sentence, count=1)

    for blocks in doc.block_lists():
        for i, b in enumerate(blocks):
            if FIGURE.search(b):
                blocks[i] = "\n".join(
                    " ".join(map(label, SENTENCE_BREAK.split(ln))) for ln in b.splitlines()
                )


def break_up_paragraphs(doc: Document) -> None:
    """Split sentences at semicolons, and paragraphs over 150 words at their middle sentence."""
    for blocks in doc.block_lists():
        for i in reversed(range(len(blocks))):
            if is_prose(blocks[i]) and word_count(blocks[i]) >= 40:
                parts = [p for t in SENTENCE_BREAK.split(blocks[i]) for p in t.split("; ")]
                parts = [capitalise(p) if p[-1:] in ".!?" else capitalise(p) + "." for p in parts]
                half = len(parts) // 2 if word_count(blocks[i]) > 150 else 0
                blocks[i : i + 1] = (
                    [" ".join(parts[:half]), " ".join(parts[half:])] if half else [" ".join(parts)]
                )


def tighten_wording(doc: Document) -> None:
    """Replace wordy phrases with short ones."""
    for blocks in doc.block_lists():
        for i, b in enumerate(blocks):
            for wordy, short in _FILLERS:
                b = b.replace(" " + wordy, " " + short)
            blocks[i] = b


# How a person's request begins and ends, around its subject.
_POLITE_OPENING = re.compile(r"^(?:please|could you|can you|also)\s+", re.I)
_REQUEST_VERB = re.compile(
    r"(?:add|discuss|explain|expand on|expand|include|mention|cover|describe|clarify|"
    r"address|elaborate on|say more about|talk about|explore)\s+",
    re.I,
)
_MORE_ABOUT = re.compile(
    r"^(?:more (?:about|on|detail on)|a (?:note|paragraph|word) (?:on|about))\s+"
)
# The lookbehind starts a match only at the start of a run of spaces (the same matches, but a
# long run is scanned once rather than once per space).
_IN_MORE_DEPTH = re.compile(
    r"(?<!\s)\s+(?:in (?:more )?(?:depth|detail)|more clearly|more fully|as well|too)$"
)


def add_paragraph_on_request(doc: Document, ctx: TopicContext, item: str) -> None:
    """A request the rubric cannot act on: add a paragraph on its subject where it fits best."""
    t = QUOTED.sub(lambda m: m.group(1) or m.group(2), item).strip().rstrip(".!?")
    t = _POLITE_OPENING.sub("", t)
    verb = _REQUEST_VERB.match(t)
    t = t[verb.end() :] if verb else t
    t = _MORE_ABOUT.sub("", t)
    t = _IN_MORE_DEPTH.sub("", t)
    x = ctx.mid_sentence(
        " ".join(WHY_CLAUSE.split(t)[0].split(",")[0].split()[:12]) or "this point"
    )
    # "Discuss X" gets a paragraph about X; "make it more engaging" gets a plain-language recap.
    options = [ctx.fill(g, x=x) for g in GENERIC_PARAGRAPHS] if verb else [ctx.fill(PLAIN_RECAP)]
    text = doc.render()
    para = next((p for p in options if p not in text), ctx.fill(GENERIC_PARAGRAPHS[1], x=x))
    wanted = content_words(x) - content_words(ctx.topic)
    body = sections_of_kind(doc, ctx, "body")
    if not body:
        introduction_blocks(doc, ctx).append(para)
        return
    best = max(
        body,
        key=lambda s: (len(content_words(s.heading) & wanted), -prose_word_count(s.blocks)),
    )
    add_paragraph(best, para)
