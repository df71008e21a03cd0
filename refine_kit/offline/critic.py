"""The critic: measure a report against the rubric and answer with a JSON critique.

It never trusts hidden markers: 20 checks run on the visible Markdown (title, introduction,
sections, examples, depth, risks, recommendations, ...). Each passed check is worth half a
point, score = (passed + 1) // 2 kept within 1..10, and the critic asks for the worst three
gaps in the rubric's priority order, after repeating any earlier request that was not done.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NamedTuple

from refine_kit.offline.document import (
    Document,
    Section,
    context_for_document,
    heading_kind,
    next_unused_template,
    parse_document,
)
from refine_kit.offline.phrases import GAPS, IMPROVEMENT_REQUESTS, STRENGTHS, TRIM_REQUEST
from refine_kit.offline.rubric import (
    CHECK_PREREQUISITE,
    EXAMPLE_CUES,
    FIGURE,
    HEDGE_CUES,
    LINKING_OPENERS,
    MEASURE_CUES,
    MITIGATION_CUES,
    WHY_CLAUSE,
    classify_request,
)
from refine_kit.offline.text import (
    LIST_ITEM,
    SENTENCE_BREAK,
    contains_any,
    content_words,
    join_with_and,
    mid_sentence,
    word_count,
)
from refine_kit.offline.topic import TopicContext

_FIGURE_HINTS = ("%", "per cent", "percent", "-fold")  # a cheap test before looking for FIGURE
_WHY_NOW_CUE = re.compile(
    r"\b(?:now|today|currently|increasingly|recent|recently|urgent|pressing|timely)\b"
)
# A first level is not praised once its second level passes.
_SECOND_LEVEL = {
    "risks": "mitigations",
    "recs": "steps",
    "examples_half": "examples_all",
    "depth_half": "depth_all",
    "sections3": "sections4",
}
# Kinds with two rubric levels: (first check, cue word for the second level, second check).
_LEVELS = {
    "sections": ("sections3", "another", "sections4"),
    "examples": ("examples_half", "remaining", "examples_all"),
    "depth": ("depth_half", "remaining", "depth_all"),
    "risks": ("risks", "mitigat", "mitigations"),
    "recs": ("recs", "step", "steps"),
}
_IMPERATIVE = re.compile(
    r"(?i)(?:add|bring|break|cite|close|cover|cut|describe|develop|discuss|expand|explain|give|"
    r"include|label|link|make|mention|open|pair|provide|reduce|remove|rewrite|shorten|show|"
    r"strengthen|tighten|trim|turn|use)\b"
)


@dataclass
class _ReportFacts:
    """What the critic measured: which checks pass, plus the details specific advice needs."""

    checks: dict[str, bool]
    words: int
    body: list[Section]
    no_examples: list[str]  # headings of body sections without examples
    thin: list[str]  # headings of body sections with under 60 words of prose
    figure: str  # the first unhedged figure, if any


def _unhedged_figures(doc: Document) -> list[str]:
    """Percentages and multiples ("40%", "3-fold") stated without a hedge or a source."""
    found = []
    for block in (b for blocks in doc.block_lists() for b in blocks):
        if contains_any(block, _FIGURE_HINTS):
            for sentence in SENTENCE_BREAK.split(block):
                if not contains_any(sentence.lower(), HEDGE_CUES):
                    found += [m.group() for m in FIGURE.finditer(sentence)]
    return found


class _BlockTally(NamedTuple):
    """One pass over some blocks: what the checks need to know about them."""

    words: int  # all words, list items included
    prose: int  # words outside lists
    items: int  # list lines
    longest: int  # words in the longest paragraph
    sentences: int  # sentences in paragraphs (roughly: ". " and friends)
    linked: int  # paragraphs that open with a linking phrase
    text: str  # the blocks joined, lower-cased


def _tally(blocks: list[str]) -> _BlockTally:
    """Count what the checks need in one pass over the blocks."""
    words = prose = items = longest = sentences = linked = 0
    for b in blocks:
        n = word_count(b)
        words += n
        if "\n" in b:  # a list, or a paragraph with a list or deeper heading inside
            for line in b.split("\n"):
                if LIST_ITEM.match(line):
                    items += 1
                elif not line.startswith("#"):
                    prose += word_count(line)
        elif LIST_ITEM.match(b):
            items += 1
        elif not b.startswith("#"):
            prose += n
            longest = max(longest, n)
            sentences += b.count(". ") + b.count("? ") + b.count("! ") + 1
            linked += b[:40].lower().startswith(LINKING_OPENERS)
    return _BlockTally(words, prose, items, longest, sentences, linked, "\n".join(blocks).lower())


def _measure(doc: Document, ctx: TopicContext) -> _ReportFacts:
    """Run every check on the visible text. No check depends on how the text was produced."""
    text = doc.render()
    tally = {id(s): _tally(s.blocks) for s in doc.sections}
    kinds = [heading_kind(s.heading, ctx) for s in doc.sections]
    body, risks, recs, ends, intros = (
        [s for s, k in zip(doc.sections, kinds, strict=True) if k == kind]
        for kind in ("body", "risks", "recs", "conclusion", "intro")
    )
    opening = _tally(doc.intro)
    intro = _tally(doc.intro + [b for s in intros for b in s.blocks]) if intros else opening
    every = [opening, *tally.values()]
    # The same count as word_count(text), without scanning the whole report once more.
    headings = [f"# {doc.title}"] * bool(doc.title) + [f"## {s.heading}" for s in doc.sections]
    words = sum(t.words for t in every) + sum(map(word_count, headings))
    no_examples = [
        s.heading
        for s in body
        if tally[id(s)].items < 2 and not contains_any(tally[id(s)].text, EXAMPLE_CUES)
    ]
    thin = [s.heading for s in body if tally[id(s)].prose < 60]
    title_words = content_words(doc.title)
    # A cheap test first: most reports have no figures at all.
    figures = _unhedged_figures(doc) if contains_any(text, _FIGURE_HINTS) else []

    def most(sections: list[Section], field: str) -> int:
        return max((getattr(tally[id(s)], field) for s in sections), default=0)

    def mentions(passage: str, cues: tuple[str, ...]) -> bool:
        return contains_any(ctx.without_subject(passage), cues)

    checks = {
        "title": bool(doc.title.strip()),
        "intro": intro.prose >= 40,
        "sections3": len(body) >= 3,
        "sections4": len(body) >= 4,
        "conclusion": most(ends, "words") >= 25,
        "examples_half": bool(body) and 2 * (len(body) - len(no_examples)) >= len(body),
        "examples_all": bool(body) and not no_examples,
        "depth_half": bool(body) and 2 * (len(body) - len(thin)) >= len(body),
        "depth_all": bool(body) and not thin,
        "risks": most(risks, "words") >= 30,
        "mitigations": any(mentions(tally[id(s)].text, MITIGATION_CUES) for s in risks),
        "recs": most(recs, "words") >= 20,
        "steps": most(recs, "items") >= 3,
        "why_now": bool(_WHY_NOW_CUE.search(ctx.without_subject(intro.text))),
        "transitions": sum(t.linked for t in every) >= 3,
        "measurement": mentions(text, MEASURE_CUES),
        # The readability checks need some text to judge: an empty page is not "readable".
        "figures": words >= 100 and not figures,
        "readability": words >= 100
        and max(t.longest for t in every) <= 150
        and sum(t.prose for t in every) <= 30 * max(1, sum(t.sentences for t in every)),
        "headings": bool(body)
        and 2 * sum(bool(content_words(s.heading) & title_words) for s in body) >= len(body),
        "length": 200 <= words <= 2000,
    }
    return _ReportFacts(checks, words, body, no_examples, thin, figures[0] if figures else "")


def _score(facts: _ReportFacts) -> int:
    """Half a point per passed check, rounded half up, kept within 1..10."""
    return max(1, min(10, (sum(facts.checks.values()) + 1) // 2))


def _name_sections(headings: list[str]) -> str:
    """The headings as prose: 'the section "A"' or 'the sections "A", "B" and "C"'."""
    sections = "the section " if len(headings) == 1 else "the sections "
    return sections + join_with_and([f'"{h}"' for h in headings])


def _improvement_for(check: str, facts: _ReportFacts, doc: Document, ctx: TopicContext) -> str:
    """The improvement sentence for one failed check, naming sections where that helps."""
    x = ""
    if check in ("sections3", "sections4"):
        template = next_unused_template(doc, ctx)
        x = ctx.heading_for(template) if template else f"Lessons from early work on {ctx.subject}"
    elif check == "conclusion":
        x = doc.sections[-1].heading if doc.sections else doc.title
    elif check in ("examples_half", "depth_half"):
        missing = facts.no_examples if check == "examples_half" else facts.thin
        need = (len(facts.body) + 1) // 2 - (len(facts.body) - len(missing))
        x = _name_sections(missing[: max(1, need)])
    elif check in ("examples_all", "depth_all"):
        # "the remaining sections ...": drop the leading "the ".
        x = _name_sections(facts.no_examples if check == "examples_all" else facts.thin)[4:]
    elif check == "figures":
        x = facts.figure
    elif check == "length" and facts.words > 2000:
        return TRIM_REQUEST
    return ctx.fill(IMPROVEMENT_REQUESTS[check], x=x)


def _check_for_request(item: str, ctx: TopicContext) -> str | None:
    """Which rubric check an improvement asks for (None when the rubric cannot tell)."""
    kind = classify_request(item, ctx)
    if kind in _LEVELS:
        first, cue, second = _LEVELS[kind]
        return second if cue in item.lower() else first
    return kind if kind in IMPROVEMENT_REQUESTS else None


def _credit(item: str) -> str:
    """The strength that credits a request the report now meets."""
    clause = WHY_CLAUSE.split(item.strip().rstrip("."), maxsplit=1)[0]
    clause = re.sub(r"(?i)^please\s+", "", clause)
    if _IMPERATIVE.match(clause):
        return f"Addressed the request to {mid_sentence(clause)}."
    return f'Addressed the feedback "{clause}".'


#: The most an off-topic report can score, however well it is written.
OFF_TOPIC_CEILING = 3


def _covers(report: str, topic: str) -> bool:
    """Whether the report shares a meaningful word with the topic (by its first five
    letters, so "pumps" meets "pump" and "gardening" meets "gardens")."""
    wanted = {w[:5] for w in content_words(topic)}
    return not wanted or bool(wanted & {w[:5] for w in content_words(report)})


def critique_report(report: str, previous: list[str], topic: str | None = None) -> str:
    """The critic's JSON verdict: score, strengths, the worst three gaps, a short summary.

    Given the topic, a report that shares no meaningful word with it is off topic: it scores
    at most OFF_TOPIC_CEILING, and the first improvement says so.
    """
    doc = parse_document(report)
    doc.notice = ""  # the offline notice says who wrote the text; it is not part of the report
    ctx = context_for_document(doc)
    facts = _measure(doc, ctx)
    checks, score = facts.checks, _score(facts)
    strengths: list[str] = []
    improvements: list[str] = []
    off_topic = bool(topic) and not _covers(report, topic or "")
    if off_topic:
        score = min(score, OFF_TOPIC_CEILING)
        improvements.append(
            f"Write about the topic asked for, {topic}: the report does not cover it."
        )
    asked: set[str] = set()
    # Follow-through first: credit what was done, repeat what was not.
    for item in previous:
        check = _check_for_request(item, ctx)
        if check is None or check in asked:
            continue
        asked.add(check)
        if checks[check]:
            strengths.append(_credit(item))
        else:
            improvements.append(item.strip())
    shown = [c for c in STRENGTHS if checks[c] and not checks.get(_SECOND_LEVEL.get(c, ""), False)]
    strengths += [STRENGTHS[c] for c in shown[:3]]
    failing = [
        c
        for c in IMPROVEMENT_REQUESTS
        if not checks[c] and checks.get(CHECK_PREREQUISITE.get(c, ""), True)
    ]
    for check in failing:
        if len(improvements) >= 3:
            break
        if check not in asked:
            improvements.append(_improvement_for(check, facts, doc, ctx))
    gaps = [GAPS[c] for c in failing] or ["nothing of note"]
    about = f"about {round(facts.words, -1)} words on {ctx.subject}"
    if facts.words < 20:
        summary = "The draft is empty or nearly so, so there is no report to assess yet."
    elif off_topic:
        summary = f"A draft of {about}, which is not the topic asked for ({topic})."
    elif score >= 9:
        summary = f"A complete, well-structured report of {about}, ready to publish."
    elif score >= 7:
        summary = (
            f"A solid draft of {about}; {gaps[0]} is what still stands between it and publication."
        )
    else:
        summary = f"An uneven draft of {about}: {join_with_and(gaps[:2])} hold it back."
    verdict = {
        "score": score,
        "strengths": strengths[:5],
        "improvements": improvements[:4],
        "summary": summary,
    }
    return json.dumps(verdict, ensure_ascii=False)
