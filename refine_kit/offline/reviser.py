"""The reviser: answer each requested improvement with one concrete edit.

Each improvement is classified by the rubric and mapped to the edit that makes its check pass,
so a round of three improvements adds three checks and the score climbs 1-2 points. A request
the rubric does not know still changes the text: it gets a paragraph on its subject.
"""

from __future__ import annotations

import re

from refine_kit.offline.document import (
    Document,
    Section,
    context_for_document,
    introduction_blocks,
    parse_document,
    sections_of_kind,
)
from refine_kit.offline.edits import (
    add_body_section,
    add_examples,
    add_measurement,
    add_paragraph_on_request,
    add_transitions,
    break_up_paragraphs,
    develop_section,
    first_unused,
    improve_conclusion,
    improve_recommendations,
    improve_risks,
    label_figures,
    tighten_wording,
)
from refine_kit.offline.phrases import INTRODUCTIONS, SOURCES_NOTE, WHY_NOW
from refine_kit.offline.rubric import EXAMPLE_CUES, MEASURE_CUES, QUOTED, classify_request
from refine_kit.offline.text import (
    capitalise,
    contains_any,
    content_words,
    is_prose,
    list_items,
    pick,
    prose_word_count,
    word_count,
)
from refine_kit.offline.topic import TopicContext


def _has_examples(section: Section) -> bool:
    text = "\n".join(section.blocks).lower()
    return len(list_items(section.blocks)) >= 2 or contains_any(text, EXAMPLE_CUES)


def _add_examples_or_depth(doc: Document, ctx: TopicContext, item: str, kind: str) -> None:
    """Give examples (or more depth) to the sections named, else to those lacking them."""
    body = sections_of_kind(doc, ctx, "body")
    names = {(a or b).casefold() for a, b in QUOTED.findall(item)}
    if kind == "examples":
        lacking = [s for s in body if not _has_examples(s)]
    else:
        lacking = [s for s in body if prose_word_count(s.blocks) < 60]
    # The sections named, else those lacking the feature, else the thinnest one.
    targets = [s for s in body if s.heading.casefold() in names] or lacking
    if not targets and body and kind == "examples":
        targets = [min(body, key=lambda s: len(list_items(s.blocks)))]
    for s in targets:
        (add_examples if kind == "examples" else develop_section)(s, ctx)


def _apply(doc: Document, ctx: TopicContext, item: str) -> str:
    """Make the edit that answers one improvement; returns the kind of edit attempted."""
    kind = classify_request(item, ctx)
    before = doc.render()
    if kind in ("examples", "depth"):
        _add_examples_or_depth(doc, ctx, item, kind)
    elif kind == "sections":
        add_body_section(doc, ctx, item)
    elif kind == "risks":
        improve_risks(doc, ctx)
    elif kind == "recs":
        improve_recommendations(doc, ctx)
    elif kind == "conclusion":
        improve_conclusion(doc, ctx)
    elif kind == "title" and not doc.title:
        doc.title = capitalise(ctx.topic)
    elif kind == "intro":
        blocks = introduction_blocks(doc, ctx)
        intro = pick(INTRODUCTIONS, ctx.seed, "intro") if prose_word_count(blocks) < 40 else None
        if para := ctx.fill(intro) if intro else first_unused(INTRODUCTIONS, ctx, doc.render()):
            blocks.append(para)
    elif kind == "why_now":
        blocks = introduction_blocks(doc, ctx)
        sentence = ctx.fill(pick(WHY_NOW, ctx.seed, "why"))
        if blocks and is_prose(blocks[0]):
            blocks[0] += " " + sentence
        else:
            blocks.insert(0, sentence)
    elif kind == "transitions":
        add_transitions(doc, ctx)
    elif kind == "measurement" and not contains_any(
        ctx.without_subject(doc.render()), MEASURE_CUES
    ):
        add_measurement(doc, ctx)
    elif kind == "figures":
        label_figures(doc)
        if doc.render() == before and SOURCES_NOTE not in before:  # nothing to label: say so
            introduction_blocks(doc, ctx).append(SOURCES_NOTE)
    elif kind == "readability":
        break_up_paragraphs(doc)
    elif kind == "headings":
        title_words = content_words(doc.title)
        for s in sections_of_kind(doc, ctx, "body"):
            if not content_words(s.heading) & title_words:
                s.heading = f"{s.heading} in {ctx.subject}"
    elif kind == "length" and not re.search(r"trim|below|under|shorter|cut", item.lower()):
        for _ in range(6):  # develop the thinnest sections until the report is long enough
            body = sections_of_kind(doc, ctx, "body")
            if (word_count(doc.render()) >= 200 and doc.render() != before) or not body:
                break
            develop_section(min(body, key=lambda s: prose_word_count(s.blocks)), ctx)
    elif kind in ("tighten", "length"):  # also a "length" request to trim
        tighten_wording(doc)
    return kind


def revise_report(report: str, improvements: list[str]) -> str:
    """Apply one edit per improvement, in order, and keep everything else."""
    doc = parse_document(report)
    ctx = context_for_document(doc)
    for item in [i for i in improvements if i.strip()] or ["Tighten the writing."]:
        before = doc.render()
        # An edit that changed nothing (the feature was already there, or the request is one the
        # rubric does not know) falls back to a paragraph on the request's subject.
        if _apply(doc, ctx, item) != "tighten" and doc.render() == before:
            add_paragraph_on_request(doc, ctx, item)
    return doc.render()
