"""A deterministic stand-in for the LLM, so the kit runs with no API key (laptops, CI).

A small transport sits under the real `openai.AsyncOpenAI` client, parses each chat request and
calls `OfflineModel.complete`. Everything here is pure: no I/O, no clocks, no global state,
and every "choice" is a SHA-256 hash of the input, so the same messages always give
byte-identical answers, in any process.

How the four jobs behave:
- The writer drafts a topic-specific report that is deliberately incomplete in a
  topic-dependent way (no conclusion here, thin sections there, no risks elsewhere).
- The critic never trusts hidden markers: it measures the visible Markdown against a rubric of
  20 checks (title, introduction, sections, examples, depth, risks, recommendations, ...).
  Each passed check is worth half a point: score = (passed + 1) // 2, kept within 1..10.
  It asks for the three worst gaps, in the rubric's priority order.
- The reviser maps each requested improvement to one concrete edit that makes its check pass,
  so a round of three improvements adds three checks and the score climbs 1-2 points.
- The summariser retells the report's own title, headings and first points.
"""
# ruff: noqa: E501  (the prose tables read best as one sentence per line)

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple, TypeVar

from pydantic import BaseModel

from refine_kit.prompts import REPORT_END, REPORT_START

OFFLINE_MODEL_NAME = "refine-kit-offline"
T = TypeVar("T")


def count_tokens(text: str) -> int:
    """Estimate tokens at about four characters each (at least 1 for non-empty text).

    Not tiktoken: it downloads its encodings at run time, so it cannot run offline. Cost
    displays only need a deterministic, roughly right number.
    """
    return math.ceil(len(text) / 4) if text else 0


class OfflineCompletion(BaseModel):
    """What one offline chat completion returns: the reply and its token counts."""

    content: str
    prompt_tokens: int
    completion_tokens: int


# ---------------------------------------------------------------------------------------------
# Content tables. Placeholders: {topic}, {subject} (a shorter form for headings), {Subject}
# and {Topic} capitalised, {x}/{X} a section or request subject. Body prose avoids the words the
# critic looks for elsewhere (risk, indicators, "for example", linking phrases), so that each
# check changes only when its own edit is made.


class _Tpl(NamedTuple):
    key: str
    headings: tuple[str, str]
    sentences: tuple[str, str, str, str]  # first two: a thin section; all four: a developed one
    bullets: tuple[str, str, str]


_TEMPLATES: tuple[_Tpl, ...] = (
    _Tpl("landscape", ("{Subject} today: the state of play", "The current landscape of {subject}"), (
        "Interest in {subject} has spread from a handful of early adopters to the mainstream, and the conversation has shifted from whether to act to how.",
        "Most organisations sit somewhere in the middle: aware of the issue, experimenting in places, but without a settled approach.",
        "The gap between leaders and laggards is rarely about money or tools; it is usually about clarity of purpose and a willingness to change established routines.",
        "Knowing where your own organisation sits on that spectrum is the first honest step towards improving it."), (
        "Early adopters of {subject} typically share a clear sponsor and a small, well-defined starting problem.",
        "Organisations in the middle often run several disconnected pilots of {subject} that never join up.",
        "Latecomers can benefit from lessons others learned the hard way, provided they adapt them rather than copy them.")),
    _Tpl("blocks", ("The essentials of {subject}", "The building blocks of {subject}"), (
        "At its core, any serious effort on {subject} combines three elements: a clear goal, a set of repeatable practices, and people with the authority to adjust them.",
        "Weakness in any one of these tends to undermine the other two.",
        "A goal without practices produces good intentions and little change, while practices without authority turn into box-ticking that nobody feels able to improve.",
        "Naming each element explicitly, and agreeing who is responsible for it, turns an abstract ambition into work that can be planned and reviewed."), (
        "A one-page statement of what {subject} should achieve, written in plain language and shared widely.",
        "A short list of agreed practices, each with a named owner and a date for its next review.",
        "A regular, time-boxed forum where the people doing the work can propose changes to those practices.")),
    _Tpl("practices", ("Practices that work for {subject}", "Proven approaches to {subject}"), (
        "The approaches that hold up best in {subject} are usually modest and specific rather than sweeping.",
        "They favour small, reversible steps over large programmes that are hard to unwind.",
        "Starting small keeps the cost of mistakes low and creates early results that build support for the following step.",
        "It also gives teams room to adapt a practice to local conditions instead of forcing a template that was designed for someone else."), (
        "Run a time-boxed pilot of {topic} with one willing team before committing the wider organisation.",
        "Write down the handful of decisions that matter most and revisit them on a fixed schedule.",
        "Pair newcomers with experienced practitioners so that tacit knowledge about {subject} spreads.")),
    _Tpl("people", ("The people side of {subject}", "Roles, skills and ownership in {subject}"), (
        "Whatever the plan, work on {subject} succeeds or fails through the people who carry it out.",
        "Clear roles, realistic workloads and the right skills matter more than any particular method.",
        "Many initiatives stall because responsibility is shared so widely that nobody feels accountable, or held so narrowly that a single departure sets the work back by months.",
        "Investing in skills, and making ownership visible, protects the effort against both failures."), (
        "A named owner for {subject} at leadership level, with time set aside for the role rather than added on top.",
        "Short, practical training sessions built around real tasks instead of generic courses.",
        "A simple map of who decides, who is consulted and who is informed on the key questions.")),
    _Tpl("tools", ("Tools and infrastructure behind {subject}", "Choosing the right tools for {subject}"), (
        "Tools can make {subject} easier, but they rarely fix an unclear process on their own.",
        "The sensible order is to settle how the work should flow first and then choose tools that support it.",
        "Buying first and designing the process afterwards tends to lock in awkward workarounds that outlive the original purchase.",
        "Favouring tools that fit existing systems, and that staff can learn in days rather than weeks, keeps adoption costs in proportion."), (
        "A shared, searchable place where decisions and documents about {subject} live.",
        "Lightweight automation for repetitive steps, introduced only after the manual version works.",
        "A short trial of any new tool with the people who will use it daily, before a wider licence is signed.")),
    _Tpl("economics", ("Costs, benefits and value of {subject}", "Making the business case for {subject}"), (
        "Decisions about {subject} are easier to defend when costs and benefits are set out side by side.",
        "Some benefits are direct, while others show up as avoided problems that are easy to overlook.",
        "A credible case separates one-off costs from running costs and is honest about benefits that are uncertain or slow to arrive.",
        "Decision-makers tend to trust a modest, well-reasoned estimate more than an ambitious projection with little behind it."), (
        "List one-off costs for {topic} separately from ongoing costs such as maintenance and training.",
        "Describe benefits in terms decision-makers already use, such as time saved or errors avoided.",
        "Include a clearly labelled illustrative scenario rather than presenting guesses as forecasts.")),
    _Tpl("scenarios", ("{Subject} on the ground: illustrative scenarios", "{Subject} in everyday situations"), (
        "Concrete situations make the principles behind {subject} easier to grasp.",
        "They help readers picture how the same ideas play out in organisations of different sizes.",
        "Small organisations tend to move quickly but lack specialist support, while larger ones have expertise but more layers of approval to work through.",
        "Seeing both patterns side by side helps readers judge which lessons transfer to their own circumstances."), (
        "Illustration: a small team adopts {topic} for a single recurring task and reviews the results after a month.",
        "Illustration: a larger organisation rolls {subject} out region by region, adjusting its approach after each stage.",
        "Illustration: a team that cuts handover time by, say, a fifth would treat that as a prompt to look deeper, not as proof of success.")),
    _Tpl("governance", ("Governance and accountability for {subject}", "Keeping {subject} on course"), (
        "Without light-touch governance, work on {subject} tends to drift as priorities change and early enthusiasm fades.",
        "The aim is not bureaucracy but a regular moment to check direction.",
        "A short periodic review, with the authority to stop work that is not delivering as well as to start new work, keeps effort focused where it matters.",
        "Recording the reasons for major decisions also makes them far easier to explain later to staff, customers or auditors."), (
        "A quarterly review of {topic} with a fixed agenda and a short written record.",
        "Clear criteria for when an initiative should be scaled up, changed or stopped.",
        "An open channel for staff to raise concerns about {subject} without going through layers of management.")),
    _Tpl("outlook", ("The road ahead for {subject}", "The outlook for {subject}"), (
        "The practices around {subject} will keep evolving as expectations, technology and regulation shift.",
        "Organisations that build the habit of adapting will handle those shifts better than those that chase each new trend.",
        "The most durable advantage is not a particular method but the capacity to review and adjust methods calmly and regularly.",
        "That capacity is built through small, repeated cycles of trying something, reflecting on it and keeping what works."), (
        "Expect closer attention from customers and regulators to how decisions about {subject} are made.",
        "Expect tools in this area to become easier to adopt, shifting the hard part towards process and skills.",
        "Expect the gap to widen between organisations that learn systematically and those that do not.")),
)  # fmt: skip

_TITLES = ("{Topic}: a practical guide", "{Topic}: what matters and why", "Understanding {topic}",
           "{Topic}: from principles to practice", "A working guide to {topic}")  # fmt: skip
_INTROS = (
    "This report looks at {topic}: what it involves, how organisations approach it, and where effort tends to pay off. It is written for a general professional audience that wants a clear picture without specialist background, and each section makes a small number of practical points that readers can test against their own situation.",
    "{Topic} is easy to discuss in the abstract and surprisingly hard to get right. This report sets out the main ideas, the practices that tend to work, and the questions worth asking before committing time and money. It aims to be useful to readers who need to make decisions, not only to follow the debate.",
    "Few subjects generate as much discussion, and as little shared understanding, as {topic}. The aim of this report is to separate the durable ideas from the noise: what work on {subject} involves, which approaches are worth copying, and where organisations commonly go wrong in their first attempts.",
)
_WHY_NOW = (
    "It matters now because expectations around {subject} are rising faster than most organisations are adapting, and choices made in the next year or two will be hard to reverse.",
    "The timing matters: pressure from customers, staff and regulators is increasingly focused on {subject}, and organisations that wait risk inheriting decisions made by others.",
    "The question is pressing today because the cost of standing still on {subject} keeps growing, while the know-how needed to act has never been easier to find.",
)
_RISK_HEADINGS = (
    "Risks and limitations",
    "Limitations and risks to weigh",
    "Pitfalls and trade-offs",
)
_RISK_LEAD = "No approach to {subject} is free of drawbacks, and it helps to name them openly."
_RISKS = (
    "Over-reach: trying to change too much of {subject} at once spreads attention thin and makes problems hard to diagnose.",
    "Uneven adoption: some groups embrace new ways of working while others quietly keep the old ones, leaving a confusing mix.",
    "Hidden costs: training, upkeep and coordination often cost more than the visible budget line suggests.",
    "Key-person dependence: when knowledge of {subject} sits with one or two experts, progress stalls when they move on.",
    "Trust gaps: poorly documented decisions about {subject} are hard to defend to regulators, customers or staff.",
    "Context mismatch: practices that work well elsewhere may not fit the size, culture or constraints of your organisation.",
)
_MITIGATIONS = "Each of these risks can be mitigated without heavy process: introduce changes to {subject} in stages that can be reviewed separately, give every practice a named owner and a deputy, budget explicitly for training and upkeep, and record the reasoning behind major decisions."
_REC_HEADINGS = ("Recommendations", "What to do next", "Next steps")
_RECS = (
    "The most reliable way to make progress on {topic} is to start with a narrow, well-understood problem, show results, and widen the scope only once the first step is working.",
    "Organisations beginning work on {subject} should resist the temptation to do everything at once and instead sequence their effort so that each step builds on the last.",
)
_STEPS = (
    "Appoint an owner for {subject} and agree, in writing, what a good outcome looks like.",
    "Choose one contained problem and run a pilot with a team that wants to take part.",
    "Review the pilot openly after a fixed period and decide whether to scale, adjust or stop.",
    "Share what was learned, then repeat the cycle with the next most valuable problem.",
)
_CONCLUSION_HEADINGS = ("Conclusion", "Key takeaways", "Final thoughts")
_CONCLUSIONS = (
    "Work on {subject} rewards steady, deliberate effort more than grand gestures. The common thread in this report is simple: set a clear goal, choose a few specific practices, give them owners, and review honestly what is working. Organisations that keep those habits will get lasting value from {subject}.",
    "The central message of this report is that progress on {subject} comes from clarity and consistency rather than from any single tool or method. Start with a well-defined problem, make ownership explicit, learn from each step, and widen the effort only once the foundations hold.",
)
_MEASURES = (
    "To tell whether the effort on {subject} is working, agree a small set of indicators at the start (cycle time, error rates, staff and customer feedback), record a baseline, and track them at every review rather than relying on impressions.",
    "Progress on {subject} should be visible, not assumed: pick two or three indicators that reflect the goal, measure them before any change, and revisit them at each review so that decisions rest on evidence.",
)
_CONNECTIVES = ("Building on this, ", "In practice, ", "Beyond that, ", "With that in mind, ",
                "Just as importantly, ", "Seen from another angle, ")  # fmt: skip
# For sections the writer did not produce (human edits, custom sections); {x} is the heading.
_GENERIC_BULLETS = (
    "A team applying {x} to one recurring decision and reviewing the outcome after a month.",
    "A one-page guide to {x}, kept short and updated whenever practice changes.",
    "A named person who answers questions about {x} and collects suggestions for improving it.",
)
_GENERIC_DEPTH = (
    "A closer look at {x} is worth the effort in any serious discussion of {subject}. Getting this right shapes which options are realistic, who needs to be involved and how quickly change can happen, so it pays to settle early rather than discover late.",
    "Organisations that handle {x} well tend to give the matter a named owner, write down the assumptions they are making, and revisit those assumptions whenever circumstances change.",
)
_SOURCES = "The points in this report draw on widely shared practice rather than on any single study; where figures appear, they are illustrations, not findings."
_MANNER = "Put simply, success with {subject} comes down to three questions: what problem it is meant to solve, who is responsible for it, and how the organisation will know the effort is paying off. Keeping those questions in view makes every other decision easier."

# ---------------------------------------------------------------------------------------------
# Deterministic choices and small text helpers. They favour plain string operations over regular
# expressions on whole reports: a benchmark pushes 1,000 topics through this module.


def _h(*parts: str) -> int:
    """A stable hash of the parts (the built-in hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")


def _pick(options: Sequence[T], *parts: str) -> T:
    return options[_h(*parts) % len(options)]


_ITEM = re.compile(r"\s*(?:[-*+]|\d+[.)])\s+")  # a bullet or numbered list line (use .match)
_WORD = re.compile(r"[^\W_][\w'’-]*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_STOP = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in",
                   "into", "is", "it", "its", "of", "on", "or", "the", "to", "what", "when",
                   "where", "which", "who", "why", "with", "your", "guide", "practical"})  # fmt: skip


def _n(text: str) -> int:
    """Word count, as `wc -w` gives it for tidy text. Counting separators is several times
    faster than splitting, and this runs thousands of times in a benchmark."""
    text = text.strip()
    if not text:
        return 0
    return text.count(" ") + text.count("\n") - text.count("  ") - text.count("\n\n") + 1


def _has(text: str, cues: Sequence[str]) -> bool:
    """Whether any cue occurs in the text (plain substring tests are fast)."""
    return any(c in text for c in cues)


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _unlist(line: str) -> str:
    """A list line without its marker ("- ", "2. ")."""
    m = _ITEM.match(line)
    return line[m.end() :] if m else line


def _is_prose(block: str) -> bool:
    return not _ITEM.match(block) and not block.startswith("#")


def _items(blocks: list[str]) -> list[str]:
    return [ln for b in blocks for ln in b.splitlines() if _ITEM.match(ln)]


def _prose_words(blocks: list[str]) -> int:
    total = 0
    for b in blocks:  # a paragraph is usually one line: skip splitting it into lines
        lines = b.splitlines() if "\n" in b else (b,)
        total += sum(_n(ln) for ln in lines if not _ITEM.match(ln) and not ln.startswith("#"))
    return total


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _prose(phrase: str) -> str:
    """Lower-case a phrase's first letter for use mid-sentence, unless it looks like an acronym."""
    first = phrase.split(" ", 1)[0]
    return phrase if first[1:2].isupper() or first == "I" else phrase[:1].lower() + phrase[1:]


_QUALIFIER = re.compile(r"\s+(?:for|in|on|across|within|among|at|with|during|under|by)\s+")


def _short(topic: str) -> str:
    """A shorter subject for headings: cut a long topic before its first qualifying phrase."""
    cuts = [m.start() for m in _QUALIFIER.finditer(topic) if len(topic[: m.start()].split()) >= 2]
    return topic[: cuts[0]] if cuts and len(topic.split()) > 5 else topic


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _quoted(names: list[str]) -> str:
    sections = "the section " if len(names) == 1 else "the sections "
    return sections + _join([f'"{n}"' for n in names])


def _list(items: Sequence[str], numbered: bool = False) -> str:
    return "\n".join(f"{i}. {t}" if numbered else f"- {t}" for i, t in enumerate(items, 1))


@dataclass
class _Ctx:
    """What one request is about: the topic, a short subject for headings, and a memo of
    heading kinds (built per request, never shared between requests)."""

    topic: str
    subject: str
    kinds: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, topic: str) -> _Ctx:
        return cls(_prose(topic), _prose(_short(topic)))

    @cached_property
    def seed(self) -> str:
        return " ".join(self.topic.casefold().split())

    @cached_property
    def order(self) -> list[_Tpl]:
        """This topic's own order of section templates: the draft takes the first few."""
        return sorted(_TEMPLATES, key=lambda t: _h(self.seed, "section", t.key))

    @cached_property
    def names(self) -> dict[str, str]:
        return {"topic": self.topic, "Topic": _cap(self.topic), "subject": self.subject,
                "Subject": _cap(self.subject)}  # fmt: skip

    def fmt(self, template: str, x: str = "") -> str:
        return template.format(**self.names, x=x, X=_cap(x))

    @cached_property
    def phrases(self) -> tuple[str, str]:
        return self.topic.lower(), self.subject.lower()

    def plain(self, text: str) -> str:
        """Lower-cased text without the subject, so that a topic such as "risk management" or
        "recommendation engines" cannot trigger keyword checks by itself."""
        low = text.lower()
        for phrase in self.phrases:
            if len(phrase) > 3:
                low = low.replace(phrase, " ")
            elif phrase:  # short subjects ("AI") must not be cut out of longer words
                low = re.sub(rf"\b{re.escape(phrase)}\b", " ", low)
        return low


# ---------------------------------------------------------------------------------------------
# A Markdown report as a title, introduction blocks and "##" sections of blocks (paragraphs or
# lists, as separated by blank lines). Deeper headings stay inside their section's text.


@dataclass
class _Section:
    heading: str
    blocks: list[str]


@dataclass
class _Doc:
    title: str
    intro: list[str]
    sections: list[_Section]

    def render(self) -> str:
        parts = [f"# {self.title}"] if self.title else []
        parts += self.intro
        for s in self.sections:
            parts += [f"## {s.heading}", *s.blocks]
        return "\n\n".join(parts)

    def containers(self) -> list[list[str]]:
        return [self.intro] + [s.blocks for s in self.sections]


_BLANK = re.compile(r"\n[ \t]*\n")
_HEADING = re.compile(r"(#{1,2})\s+(.*\S)")  # "# Title" or "## Section"; "###" stays text


def _parse(text: str) -> _Doc:
    """Split the text into blocks at blank lines, then pick out the "#" and "##" headings."""
    doc = _Doc("", [], [])
    target = doc.intro
    for chunk in _BLANK.split(text.strip()):
        if not chunk.startswith("#") and "\n#" not in chunk:  # the usual case: no heading
            if chunk.strip():
                target.append(chunk.strip("\n").rstrip())
            continue
        lines: list[str] = []
        for line in [*chunk.split("\n"), "# "]:  # "# " is a sentinel that flushes the last lines
            m = _HEADING.match(line) if line.startswith("#") else None
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
                doc.sections.append(_Section(m.group(2).strip("# "), []))
                target = doc.sections[-1].blocks
    return doc


# A heading's kind decides its role (matched without the subject); anything else is a body section.
_KINDS = (
    ("conclusion", "conclu|takeaway|final thought|closing|wrap|in summary|sum up|bottom line"),
    ("risks", "risk|limitation|pitfall|downside|trade-off|challenge|what can go wrong"),
    ("recs", "recommend|next step|what to do|action|getting started|where to start|roadmap"),
    ("intro", "intro|overview|background"),
)
_OWN_KINDS = {h: kind for kind, own in (("risks", _RISK_HEADINGS), ("recs", _REC_HEADINGS),
              ("conclusion", _CONCLUSION_HEADINGS)) for h in own}  # fmt: skip
_ANY_KIND = re.compile("|".join(cues for _, cues in _KINDS))
_KIND_RX = tuple((kind, re.compile(cues)) for kind, cues in _KINDS)


def _kind(heading: str, ctx: _Ctx) -> str:
    if heading not in ctx.kinds:  # memoised per request: the reviser asks about every heading often
        # The writer's own headings are known without matching (a speed-up, same answers).
        kind = _OWN_KINDS.get(heading) or ("body" if _template(heading, ctx) else "")
        if not kind:
            plain = ctx.plain(heading)
            found = _ANY_KIND.search(plain) and next(k for k, rx in _KIND_RX if rx.search(plain))
            kind = found or "body"
        ctx.kinds[heading] = kind
    return ctx.kinds[heading]


def _of_kind(doc: _Doc, ctx: _Ctx, kind: str) -> list[_Section]:
    return [s for s in doc.sections if _kind(s.heading, ctx) == kind]


_TITLE_PARTS = tuple((t.split("{", 1)[0].lower(), t.split("}", 1)[1].lower()) for t in _TITLES)


def _ctx_for(doc: _Doc) -> _Ctx:
    """Recover the topic from the title the writer made (or from any title a person wrote).

    A title can be read several ways ("Risk: a practical guide" may be a topic or a topic plus a
    suffix), so take the first reading whose subject the section headings actually use.
    """
    title = doc.title or (doc.sections[0].heading if doc.sections else "") or "this subject"
    low = title.lower()
    readings = [title[len(head) : len(title) - len(tail)] for head, tail in _TITLE_PARTS
                if low.startswith(head) and low.endswith(tail) and len(low) > len(head + tail)]  # fmt: skip
    readings = list(dict.fromkeys([*readings, title.split(": ", 1)[0], title]))
    headings = " ".join(s.heading for s in doc.sections).casefold()
    for reading in readings:
        ctx = _Ctx.of(reading)
        if not headings or ctx.subject.casefold() in headings:
            return ctx
    return _Ctx.of(readings[0])


_BY_HEADING = {h.casefold(): t for t in _TEMPLATES for h in t.headings}


def _template(heading: str, ctx: _Ctx) -> _Tpl | None:
    """The template a heading was written from, if any (recognised with the subject put back)."""
    return _BY_HEADING.get(heading.casefold().replace(ctx.subject.casefold(), "{subject}"))


def _next_template(doc: _Doc, ctx: _Ctx) -> _Tpl | None:
    """The first template, in this topic's order, that the report does not use yet."""
    used = {t.key for s in doc.sections if (t := _template(s.heading, ctx))}
    return next((t for t in ctx.order if t.key not in used), None)


def _heading(tpl: _Tpl, ctx: _Ctx) -> str:
    return ctx.fmt(_pick(tpl.headings, ctx.seed, "heading", tpl.key))


# ---------------------------------------------------------------------------------------------
# The critic's rubric: 20 visible checks. The order of _ASKS is the priority order: the critic
# asks for the first three failing checks ("worst first"). {x} is filled in by _ask.

_ASKS = {
    "title": "Add a level-1 title that names the subject, so readers know at once what the report covers.",
    "intro": "Add an introduction before the first section that sets out what the report covers and who it is for.",
    "sections3": 'Add more body sections, starting with one such as "{x}", so the report covers the subject from at least three angles.',
    "conclusion": 'Close with a conclusion that draws the main takeaways together, instead of ending abruptly after "{x}".',
    "examples_half": "Add concrete examples to {x}, such as named practices or clearly labelled illustrative scenarios, since the text stays general there.",
    "depth_half": "Develop {x} with a further paragraph on how the ideas work day to day, since the text is too thin to persuade.",
    "risks": "Add a section on risks and limitations, so readers see what can go wrong with {subject} and where the approach does not fit.",
    "recs": "Add a recommendations section on what to do next, so readers leave with a clear first move on {subject}.",
    "sections4": 'Add another body section, such as "{x}", so the report looks at {subject} from a further angle.',
    "why_now": "Open the introduction with why {subject} matters now, so a busy reader sees the urgency before the detail.",
    "examples_all": "Add concrete examples to the remaining {x} as well, so every section is equally specific.",
    "depth_all": "Develop the remaining thin {x}, so that every section carries its share of the argument.",
    "mitigations": "Pair each risk with a concrete mitigation, so the risks section helps readers act rather than only worry.",
    "steps": "Turn the recommendations into at least three ordered next steps that a reader could start on this month.",
    "transitions": "Open a few paragraphs with linking phrases, so the report reads as one argument rather than separate notes.",
    "measurement": "Explain how to tell whether the approach is working, naming one or two indicators worth tracking for {subject}.",
    "figures": 'Label figures such as "{x}" as illustrative or give their source, so they are not read as established fact.',
    "readability": "Break up long paragraphs and sentences, so a busy reader can follow the argument on a first pass.",
    "headings": "Make the section headings specific to {subject}, so each one tells the reader what the section argues.",
    "length": "Bring the report to between 200 and 2,000 words, so it has room to make its case without padding.",
}
# A second-level check is only asked for once its first level passes.
_GATES = {
    "examples_half": "sections3", "depth_half": "sections3", "sections4": "sections3",
    "examples_all": "examples_half", "depth_all": "depth_half", "mitigations": "risks", "steps": "recs",
}  # fmt: skip
# Most telling first; a first level is not praised when its second level passes too.
_STRENGTHS = {
    "mitigations": "Pairs each risk with a practical mitigation",
    "steps": "Sets out concrete, ordered next steps",
    "examples_all": "Every section backs its points with concrete examples",
    "depth_all": "Each section develops its argument rather than asserting it",
    "measurement": "Explains how to tell whether the approach is working",
    "risks": "Acknowledges risks and limitations openly",
    "recs": "Gives readers recommendations to act on",
    "why_now": "Explains why the subject matters now",
    "transitions": "Linking phrases make the sections read as one argument",
    "conclusion": "Ends with a conclusion that draws the main points together",
    "examples_half": "Several sections give concrete examples",
    "depth_half": "Several sections develop their points in some depth",
    "sections4": "Covers the subject from several well-headed angles",
    "sections3": "Organised into clearly headed sections",
    "intro": "An introduction that sets out the scope before the detail",
    "title": "A clear title that names the subject",
}
_SECOND_LEVEL = {"risks": "mitigations", "recs": "steps", "examples_half": "examples_all",
                 "depth_half": "depth_all", "sections3": "sections4"}  # fmt: skip
_GAPS = {
    "title": "the missing title", "intro": "the missing introduction", "sections3": "too few sections",
    "sections4": "narrow coverage", "conclusion": "the missing conclusion",
    "examples_half": "a lack of concrete examples", "examples_all": "sections without examples",
    "depth_half": "thin sections", "depth_all": "a few underdeveloped sections",
    "risks": "no discussion of risks", "mitigations": "risks without mitigations",
    "recs": "no recommendations", "steps": "recommendations without concrete steps",
    "why_now": "no case for why it matters now", "transitions": "abrupt transitions",
    "measurement": "no way to tell whether it works", "figures": "unlabelled figures",
    "readability": "dense paragraphs", "headings": "generic headings", "length": "its length",
}  # fmt: skip

_OPENERS = tuple(c.strip().lower() for c in _CONNECTIVES) + (
    "however,", "as a result,", "by contrast,", "in turn,", "for that reason,", "that said,",
    "similarly,", "meanwhile,", "therefore,", "consequently,", "moreover,", "furthermore,",
    "in addition,", "finally,",
)  # fmt: skip
_EXAMPLE_CUES = ("for example", "for instance", "such as", "e.g.", "to illustrate", "illustration:")
_MEASURE_CUES = ("measur", "metric", "indicator", "track", "evidence", "baseline", "kpi")
_MITIGATION_CUES = ("mitigat", "to reduce", "safeguard", "guard against", "counter")
_HEDGES = ("illustrat", "hypothetical", "for example", "e.g.", "roughly", "around", "approximately",
           "about", "say,", "source", "according to", "estimat", "survey")  # fmt: skip
_FIGURE = re.compile(r"\b\d+(?:\.\d+)?(?:\s?%|\s?per ?cent\b|-fold\b)")
_FIGURE_HINTS = ("%", "per cent", "percent", "-fold")


@dataclass
class _Facts:
    """What the critic measured: which checks pass, plus the details specific advice needs."""

    checks: dict[str, bool]
    words: int
    body: list[_Section]
    no_examples: list[str]  # headings of body sections without examples
    thin: list[str]  # headings of body sections with under 60 words of prose
    figure: str  # the first unhedged figure, if any


def _has_examples(s: _Section) -> bool:
    text = "\n".join(s.blocks).lower()
    return len(_items(s.blocks)) >= 2 or _has(text, _EXAMPLE_CUES)


def _bare_figures(doc: _Doc) -> list[str]:
    """Percentages and multiples ("40%", "3-fold") stated without a hedge or a source."""
    found = []
    for block in (b for blocks in doc.containers() for b in blocks):
        if _has(block, _FIGURE_HINTS):
            for sentence in _SENTENCE.split(block):
                if not _has(sentence.lower(), _HEDGES):
                    found += [m.group() for m in _FIGURE.finditer(sentence)]
    return found


class _Tally(NamedTuple):
    """One pass over some blocks: what the checks need to know about them."""

    words: int  # all words, list items included
    prose: int  # words outside lists
    items: int  # list lines
    longest: int  # words in the longest paragraph
    sentences: int  # sentences in paragraphs (roughly: ". " and friends)
    linked: int  # paragraphs that open with a linking phrase
    text: str  # the blocks joined, lower-cased


def _tally(blocks: list[str]) -> _Tally:
    """Count what the checks need in one pass over the blocks."""
    words = prose = items = longest = sentences = linked = 0
    for b in blocks:
        n = _n(b)
        words += n
        if "\n" in b:  # a list, or a paragraph with a list or deeper heading inside
            for line in b.split("\n"):
                if _ITEM.match(line):
                    items += 1
                elif not line.startswith("#"):
                    prose += _n(line)
        elif _ITEM.match(b):
            items += 1
        elif not b.startswith("#"):
            prose += n
            longest = max(longest, n)
            sentences += b.count(". ") + b.count("? ") + b.count("! ") + 1
            linked += b[:40].lower().startswith(_OPENERS)
    return _Tally(words, prose, items, longest, sentences, linked, "\n".join(blocks).lower())


_WHY_NOW_RX = re.compile(
    r"\b(?:now|today|currently|increasingly|recent|recently|urgent|pressing|timely)\b"
)


def _measure(doc: _Doc, ctx: _Ctx) -> _Facts:
    """Run every check on the visible text. No check depends on how the text was produced."""
    text = doc.render()
    tally = {id(s): _tally(s.blocks) for s in doc.sections}
    kinds = [_kind(s.heading, ctx) for s in doc.sections]
    body, risks, recs, ends, intros = (
        [s for s, k in zip(doc.sections, kinds, strict=True) if k == kind]
        for kind in ("body", "risks", "recs", "conclusion", "intro")
    )
    opening = _tally(doc.intro)
    intro = _tally(doc.intro + [b for s in intros for b in s.blocks]) if intros else opening
    every = [opening, *tally.values()]
    # The same count as _n(text), without scanning the whole report once more.
    headings = [f"# {doc.title}"] * bool(doc.title) + [f"## {s.heading}" for s in doc.sections]
    words = sum(t.words for t in every) + sum(map(_n, headings))
    no_examples = [
        s.heading
        for s in body
        if tally[id(s)].items < 2 and not _has(tally[id(s)].text, _EXAMPLE_CUES)
    ]
    thin = [s.heading for s in body if tally[id(s)].prose < 60]
    title_words = _content_words(doc.title)
    # A cheap test first: most reports have no figures at all.
    figures = _bare_figures(doc) if _has(text, _FIGURE_HINTS) else []

    def most(sections: list[_Section], field: str) -> int:
        return max((getattr(tally[id(s)], field) for s in sections), default=0)

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
        "mitigations": any(_has(ctx.plain(tally[id(s)].text), _MITIGATION_CUES) for s in risks),
        "recs": most(recs, "words") >= 20,
        "steps": most(recs, "items") >= 3,
        "why_now": bool(_WHY_NOW_RX.search(ctx.plain(intro.text))),
        "transitions": sum(t.linked for t in every) >= 3,
        "measurement": _has(ctx.plain(text), _MEASURE_CUES),
        # The readability checks need some text to judge: an empty page is not "readable".
        "figures": words >= 100 and not figures,
        "readability": words >= 100
        and max(t.longest for t in every) <= 150
        and sum(t.prose for t in every) <= 30 * max(1, sum(t.sentences for t in every)),
        "headings": bool(body)
        and 2 * sum(bool(_content_words(s.heading) & title_words) for s in body) >= len(body),
        "length": 200 <= words <= 2000,
    }
    return _Facts(checks, words, body, no_examples, thin, figures[0] if figures else "")


def _score(facts: _Facts) -> int:
    """Half a point per passed check, rounded half up, kept within 1..10."""
    return max(1, min(10, (sum(facts.checks.values()) + 1) // 2))


def _ask(check: str, facts: _Facts, doc: _Doc, ctx: _Ctx) -> str:
    """The improvement sentence for one failed check, naming sections where that helps."""
    x = ""
    if check in ("sections3", "sections4"):
        tpl = _next_template(doc, ctx)
        x = _heading(tpl, ctx) if tpl else f"Lessons from early work on {ctx.subject}"
    elif check == "conclusion":
        x = doc.sections[-1].heading if doc.sections else doc.title
    elif check in ("examples_half", "depth_half"):
        missing = facts.no_examples if check == "examples_half" else facts.thin
        need = (len(facts.body) + 1) // 2 - (len(facts.body) - len(missing))
        x = _quoted(missing[: max(1, need)])
    elif check in ("examples_all", "depth_all"):
        x = _quoted(facts.no_examples if check == "examples_all" else facts.thin)[4:]
    elif check == "figures":
        x = facts.figure
    elif check == "length" and facts.words > 2000:
        return "Trim the report below 2,000 words by cutting repetition, so it respects the reader's time."
    return ctx.fmt(_ASKS[check], x=x)


# Map any improvement sentence (the critic's or a person's) to the kind of edit that answers it.
# Quoted section names and the subject are removed first, so they cannot steer the choice.
_CLASSES = (
    ("figures", "figure|statistic| source|cite|citation"),
    ("risks", "risk|limitation|pitfall|downside|trade-off|challenge|what can go wrong|mitigat"),
    ("recs", "recommend|next step|what to do|action"),
    ("conclusion", "conclu|takeaway|closing|wrap up"),
    ("why_now", "matters now|why now|why it matters|why this matters|urgen|timely"),
    ("title", "title"),
    ("intro", "introduc|opening"),
    ("headings", "heading"),
    ("transitions", "transition|linking| flow|connect"),
    ("measurement", "measur|metric|indicator|track|evidence|kpi|success"),
    (
        "readability",
        "break up|long paragraph|long sentence|readab|shorter sentences|jargon|plain language",
    ),
    ("length", "00 words|word count|longer|length"),
    ("tighten", "trim|shorten|shorter|tighten|concise| cut |wordy|repetiti"),
    ("examples", "example|illustrat|case stud|scenario|concrete case"),
    ("depth", "develop|expand|deepen| thin|depth|elaborate|more detail|flesh out"),
    ("sections", "section|angle|cover"),
)
_CLASS_RX = tuple((kind, re.compile(cues)) for kind, cues in _CLASSES)
# Kinds with two rubric levels: (first check, cue word for the second level, second check).
_LEVELS = {
    "sections": ("sections3", "another", "sections4"), "examples": ("examples_half", "remaining", "examples_all"),
    "depth": ("depth_half", "remaining", "depth_all"), "risks": ("risks", "mitigat", "mitigations"),
    "recs": ("recs", "step", "steps"),
}  # fmt: skip
_IMPERATIVE = re.compile(
    r"(?i)(?:add|bring|break|cite|close|cover|cut|describe|develop|discuss|expand|explain|give|"
    r"include|label|link|make|mention|open|pair|provide|reduce|remove|rewrite|shorten|show|"
    r"strengthen|tighten|trim|turn|use)\b"
)
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”')
_WHY_CLAUSE = re.compile(r",\s(?=so\b|since\b|such as\b|instead\b|naming\b|because\b)|;\s")


def _classify(item: str, ctx: _Ctx) -> str:
    plain = ctx.plain(_QUOTED.sub(" ", item))
    return next((kind for kind, rx in _CLASS_RX if rx.search(plain)), "generic")


def _check_for(item: str, ctx: _Ctx) -> str | None:
    """Which rubric check an improvement asks for (None when the rubric cannot tell)."""
    kind = _classify(item, ctx)
    if kind in _LEVELS:
        first, cue, second = _LEVELS[kind]
        return second if cue in item.lower() else first
    return kind if kind in _ASKS else None


def _critique(report: str, previous: list[str]) -> str:
    """The critic's JSON verdict: score, strengths, the worst three gaps, a short summary."""
    doc = _parse(report)
    ctx = _ctx_for(doc)
    facts = _measure(doc, ctx)
    checks, score = facts.checks, _score(facts)
    strengths: list[str] = []
    improvements: list[str] = []
    asked: set[str] = set()
    # Follow-through first: credit what was done, repeat what was not.
    for item in previous:
        check = _check_for(item, ctx)
        if check is None or check in asked:
            continue
        asked.add(check)
        if checks[check]:
            clause = _WHY_CLAUSE.split(item.strip().rstrip("."), maxsplit=1)[0]
            clause = re.sub(r"(?i)^please\s+", "", clause)
            if _IMPERATIVE.match(clause):
                strengths.append(f"Addressed the request to {_prose(clause)}.")
            else:
                strengths.append(f'Addressed the feedback "{clause}".')
        else:
            improvements.append(item.strip())
    shown = [c for c in _STRENGTHS if checks[c] and not checks.get(_SECOND_LEVEL.get(c, ""), False)]
    strengths += [_STRENGTHS[c] for c in shown[:3]]
    failing = [c for c in _ASKS if not checks[c] and checks.get(_GATES.get(c, ""), True)]
    for check in failing:
        if len(improvements) >= 3:
            break
        if check not in asked:
            improvements.append(_ask(check, facts, doc, ctx))
    gaps = [_GAPS[c] for c in failing] or ["nothing of note"]
    about = f"about {round(facts.words, -1)} words on {ctx.subject}"
    if facts.words < 20:
        summary = "The draft is empty or nearly so, so there is no report to assess yet."
    elif score >= 9:
        summary = f"A complete, well-structured report of {about}, ready to publish."
    elif score >= 7:
        summary = (
            f"A solid draft of {about}; {gaps[0]} is what still stands between it and publication."
        )
    else:
        summary = f"An uneven draft of {about}: {_join(gaps[:2])} hold it back."
    verdict = {
        "score": score,
        "strengths": strengths[:5],
        "improvements": improvements[:4],
        "summary": summary,
    }
    return json.dumps(verdict, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# The reviser: one concrete edit per improvement. The writer reuses the same edits.


def _insert(doc: _Doc, ctx: _Ctx, section: _Section) -> None:
    """Put a section where it belongs: body sections, then risks, recommendations, conclusion."""
    rank = {"intro": 0, "body": 1, "risks": 2, "recs": 3, "conclusion": 4}
    mine = rank[_kind(section.heading, ctx)]
    ranks = [rank[_kind(s.heading, ctx)] for s in doc.sections]
    doc.sections.insert(next((i for i, r in enumerate(ranks) if r > mine), len(ranks)), section)


def _add_prose(section: _Section, para: str) -> None:
    """Add a paragraph after the section's last paragraph, so that lists stay at the end."""
    last = max((i for i, b in enumerate(section.blocks) if _is_prose(b)), default=-1)
    if last > 0 and section.blocks[last].endswith(":"):
        last -= 1  # keep a lead-in line ("A practical sequence:") next to its list
    section.blocks.insert(last + 1, para)


def _intro_blocks(doc: _Doc, ctx: _Ctx) -> list[str]:
    intros = _of_kind(doc, ctx, "intro")
    return intros[0].blocks if intros and not doc.intro else doc.intro


def _body(tpl: _Tpl, ctx: _Ctx, deep: bool, examples: bool) -> _Section:
    """A body section from a template: thin (two sentences) or developed, with or without a list."""
    blocks = [ctx.fmt(" ".join(tpl.sentences[: 4 if deep else 2]))]
    if examples:
        blocks.append(_list([ctx.fmt(b) for b in tpl.bullets]))
    return _Section(_heading(tpl, ctx), blocks)


def _add_examples(s: _Section, ctx: _Ctx) -> None:
    tpl = _template(s.heading, ctx)
    items = _list([ctx.fmt(b) for b in tpl.bullets]) if tpl else ""
    if not items or items in s.blocks:
        items = _list([ctx.fmt(b, x=_prose(s.heading)) for b in _GENERIC_BULLETS])
    s.blocks.append(items)


def _develop(s: _Section, ctx: _Ctx) -> None:
    """Add explanation until the section has 60 words of prose (the template's own first)."""
    tpl = _template(s.heading, ctx)
    options = [ctx.fmt(" ".join(tpl.sentences[2:]))] if tpl else []
    options += [ctx.fmt(g, x=_prose(s.heading)) for g in _GENERIC_DEPTH]
    for para in options:
        if para[:40] not in "\n".join(s.blocks):
            _add_prose(s, para)
            if _prose_words(s.blocks) >= 60:
                return


def _add_body(doc: _Doc, ctx: _Ctx, item: str) -> None:
    """Add the template section the critic suggested (or the next unused one if that is there
    already), or a new section on whatever a person asked for."""
    names = [a or b for a, b in _QUOTED.findall(item)]
    named = re.search(r"section (?:on|about|covering|called|titled) ([^,.;]+)", item, re.I)
    used = {t.key for s in doc.sections if (t := _template(s.heading, ctx))}
    suggested = [t for n in names if (t := _template(n, ctx))]
    tpl = next((t for t in suggested if t.key not in used), None)
    if tpl is None and (suggested or not (names or named)):
        tpl = _next_template(doc, ctx)
    if tpl is not None:
        _insert(doc, ctx, _body(tpl, ctx, deep=True, examples=True))
        return
    x = _prose((names[0] if names else named.group(1) if named else "").strip())
    if not x or _cap(x).casefold() in {s.heading.casefold() for s in doc.sections}:
        return  # nothing new to add: the caller falls back to a paragraph in the closest section
    bullets = _list([ctx.fmt(b, x=x) for b in _GENERIC_BULLETS])
    _insert(doc, ctx, _Section(_cap(x), [*(ctx.fmt(g, x=x) for g in _GENERIC_DEPTH), bullets]))


def _unused(options: Sequence[str], ctx: _Ctx, text: str) -> str | None:
    """The first phrasing not yet in the text, so that a repeated request adds something new."""
    return next((p for p in (ctx.fmt(o) for o in options) if p not in text), None)


def _fix_risks(doc: _Doc, ctx: _Ctx) -> None:
    """Add a risks section; once there, pair the risks with mitigations; then add a risk."""
    risks = _of_kind(doc, ctx, "risks")
    ordered = sorted(_RISKS, key=lambda r: _h(ctx.seed, "risk", r))
    if not risks:
        blocks = [ctx.fmt(_RISK_LEAD), _list([ctx.fmt(r) for r in ordered[:3]])]
        _insert(doc, ctx, _Section(_pick(_RISK_HEADINGS, ctx.seed, "risks"), blocks))
    elif not _has(ctx.plain("\n".join(risks[0].blocks)), _MITIGATION_CUES):
        risks[0].blocks.append(ctx.fmt(_MITIGATIONS))
    elif extra := _unused(ordered, ctx, doc.render()):
        risks[0].blocks.insert(len(risks[0].blocks) - 1, _list([extra]))


def _fix_recs(doc: _Doc, ctx: _Ctx) -> None:
    recs = _of_kind(doc, ctx, "recs")
    if not recs:
        para = ctx.fmt(_pick(_RECS, ctx.seed, "recs"))
        _insert(doc, ctx, _Section(_pick(_REC_HEADINGS, ctx.seed, "recs"), [para]))
    elif len(_items(recs[0].blocks)) < 3:
        recs[0].blocks += ["A practical sequence:", _list([ctx.fmt(s) for s in _STEPS], True)]
    elif extra := _unused(_RECS, ctx, doc.render()):
        _add_prose(recs[0], extra)


def _fix_conclusion(doc: _Doc, ctx: _Ctx) -> None:
    para = ctx.fmt(_pick(_CONCLUSIONS, ctx.seed, "conclusion"))
    ends = _of_kind(doc, ctx, "conclusion")
    if not ends:
        _insert(doc, ctx, _Section(_pick(_CONCLUSION_HEADINGS, ctx.seed, "end"), [para]))
    elif _n("\n".join(ends[0].blocks)) < 25:
        ends[0].blocks.append(para)
    elif extra := _unused(_CONCLUSIONS, ctx, doc.render()):
        ends[0].blocks.append(extra)


def _add_transitions(doc: _Doc, ctx: _Ctx) -> None:
    """Open paragraphs with linking phrases, first sections' openings from the second one on."""
    prose = [b for blocks in doc.containers() for b in blocks if _is_prose(b)]
    need = max(1, 3 - sum(b[:40].lower().startswith(_OPENERS) for b in prose))
    slots = [(s, i) for s in doc.sections for i, b in enumerate(s.blocks)
             if _is_prose(b) and not b[:40].lower().startswith(_OPENERS)]  # fmt: skip
    firsts = [slot for j, slot in enumerate(slots) if j == 0 or slots[j - 1][0] is not slot[0]]
    order = firsts[1:] + firsts[:1] + [slot for slot in slots if slot not in firsts]
    start = _h(ctx.seed, "transitions")
    for j, (s, i) in enumerate(order[:need]):
        s.blocks[i] = _CONNECTIVES[(start + j) % len(_CONNECTIVES)] + _prose(s.blocks[i])


def _add_measurement(doc: _Doc, ctx: _Ctx) -> None:
    para = ctx.fmt(_pick(_MEASURES, ctx.seed, "measure"))
    target = _of_kind(doc, ctx, "recs") or _of_kind(doc, ctx, "conclusion")
    if target:
        _add_prose(target[0], para)
    else:
        _intro_blocks(doc, ctx).append(para)


def _label_figures(doc: _Doc) -> None:
    def label(sentence: str) -> str:
        if _has(sentence.lower(), _HEDGES):
            return sentence
        return _FIGURE.sub(lambda m: m.group() + " (an illustrative figure)", sentence, count=1)

    for blocks in doc.containers():
        for i, b in enumerate(blocks):
            if _FIGURE.search(b):
                blocks[i] = "\n".join(
                    " ".join(map(label, _SENTENCE.split(ln))) for ln in b.splitlines()
                )


def _break_up(doc: _Doc) -> None:
    """Split sentences at semicolons, and paragraphs over 150 words at their middle sentence."""
    for blocks in doc.containers():
        for i in reversed(range(len(blocks))):
            if _is_prose(blocks[i]) and _n(blocks[i]) >= 40:
                parts = [p for t in _SENTENCE.split(blocks[i]) for p in t.split("; ")]
                parts = [_cap(p) if p[-1:] in ".!?" else _cap(p) + "." for p in parts]
                half = len(parts) // 2 if _n(blocks[i]) > 150 else 0
                blocks[i : i + 1] = (
                    [" ".join(parts[:half]), " ".join(parts[half:])] if half else [" ".join(parts)]
                )


_FILLERS = (("in order to ", "to "), ("a number of ", "several "), ("due to the fact that ", "because "),
            ("very ", ""), ("really ", ""), ("basically ", ""), ("actually ", ""))  # fmt: skip


def _tighten(doc: _Doc) -> None:
    for blocks in doc.containers():
        for i, b in enumerate(blocks):
            for wordy, short in _FILLERS:
                b = b.replace(" " + wordy, " " + short)
            blocks[i] = b


def _generic(doc: _Doc, ctx: _Ctx, item: str) -> None:
    """A request the rubric cannot act on: add a paragraph on its subject where it fits best."""
    t = _QUOTED.sub(lambda m: m.group(1) or m.group(2), item).strip().rstrip(".!?")
    t = re.sub(r"^(?:please|could you|can you|also)\s+", "", t, flags=re.I)
    verb = re.match(r"(?:add|discuss|explain|expand on|expand|include|mention|cover|describe|clarify|"
                    r"address|elaborate on|say more about|talk about|explore)\s+", t, re.I)  # fmt: skip
    t = t[verb.end() :] if verb else t
    t = re.sub(r"^(?:more (?:about|on|detail on)|a (?:note|paragraph|word) (?:on|about))\s+", "", t)
    t = re.sub(r"\s+(?:in (?:more )?(?:depth|detail)|more clearly|more fully|as well|too)$", "", t)
    x = _prose(" ".join(_WHY_CLAUSE.split(t)[0].split(",")[0].split()[:12]) or "this point")
    # "Discuss X" gets a paragraph about X; "make it more engaging" gets a plain-language recap.
    options = [ctx.fmt(g, x=x) for g in _GENERIC_DEPTH] if verb else [ctx.fmt(_MANNER)]
    text = doc.render()
    para = next((p for p in options if p not in text), ctx.fmt(_GENERIC_DEPTH[1], x=x))
    wanted = _content_words(x) - _content_words(ctx.topic)
    body = _of_kind(doc, ctx, "body")
    if not body:
        _intro_blocks(doc, ctx).append(para)
        return
    best = max(
        body, key=lambda s: (len(_content_words(s.heading) & wanted), -_prose_words(s.blocks))
    )
    _add_prose(best, para)


def _apply(doc: _Doc, ctx: _Ctx, item: str) -> str:
    """Make the edit that answers one improvement; returns the kind of edit attempted."""
    kind = _classify(item, ctx)
    before = doc.render()
    if kind in ("examples", "depth"):
        body = _of_kind(doc, ctx, "body")
        names = {(a or b).casefold() for a, b in _QUOTED.findall(item)}
        if kind == "examples":
            lacking = [s for s in body if not _has_examples(s)]
        else:
            lacking = [s for s in body if _prose_words(s.blocks) < 60]
        # The sections named, else those lacking the feature, else the thinnest one.
        targets = [s for s in body if s.heading.casefold() in names] or lacking
        if not targets and body and kind == "examples":
            targets = [min(body, key=lambda s: len(_items(s.blocks)))]
        for s in targets:
            (_add_examples if kind == "examples" else _develop)(s, ctx)
    elif kind == "sections":
        _add_body(doc, ctx, item)
    elif kind == "risks":
        _fix_risks(doc, ctx)
    elif kind == "recs":
        _fix_recs(doc, ctx)
    elif kind == "conclusion":
        _fix_conclusion(doc, ctx)
    elif kind == "title" and not doc.title:
        doc.title = _cap(ctx.topic)
    elif kind == "intro":
        blocks = _intro_blocks(doc, ctx)
        intro = _pick(_INTROS, ctx.seed, "intro") if _prose_words(blocks) < 40 else None
        if para := ctx.fmt(intro) if intro else _unused(_INTROS, ctx, doc.render()):
            blocks.append(para)
    elif kind == "why_now":
        blocks, sentence = _intro_blocks(doc, ctx), ctx.fmt(_pick(_WHY_NOW, ctx.seed, "why"))
        if blocks and _is_prose(blocks[0]):
            blocks[0] += " " + sentence
        else:
            blocks.insert(0, sentence)
    elif kind == "transitions":
        _add_transitions(doc, ctx)
    elif kind == "measurement" and not _has(ctx.plain(doc.render()), _MEASURE_CUES):
        _add_measurement(doc, ctx)
    elif kind == "figures":
        _label_figures(doc)
        if doc.render() == before and _SOURCES not in before:  # nothing to label: say so
            _intro_blocks(doc, ctx).append(_SOURCES)
    elif kind == "readability":
        _break_up(doc)
    elif kind == "headings":
        title_words = _content_words(doc.title)
        for s in _of_kind(doc, ctx, "body"):
            if not _content_words(s.heading) & title_words:
                s.heading = f"{s.heading} in {ctx.subject}"
    elif kind == "length" and not re.search(r"trim|below|under|shorter|cut", item.lower()):
        for _ in range(6):  # develop the thinnest sections until the report is long enough
            body = _of_kind(doc, ctx, "body")
            if (_n(doc.render()) >= 200 and doc.render() != before) or not body:
                break
            _develop(min(body, key=lambda s: _prose_words(s.blocks)), ctx)
    elif kind in ("tighten", "length"):
        _tighten(doc)
    return kind


def _revise(report: str, improvements: list[str]) -> str:
    """The reviser: apply one edit per improvement, in order, and keep everything else."""
    doc = _parse(report)
    ctx = _ctx_for(doc)
    for item in [i for i in improvements if i.strip()] or ["Tighten the writing."]:
        before = doc.render()
        # An edit that changed nothing (the feature was already there, or the request is one the
        # rubric does not know) falls back to a paragraph on the request's subject.
        if _apply(doc, ctx, item) != "tighten" and doc.render() == before:
            _generic(doc, ctx, item)
    return doc.render()


# ---------------------------------------------------------------------------------------------
# The writer and the summariser.

# The checks a first draft may pass beyond the seven it always passes (title, introduction,
# three sections, figures, readability, headings, length).
_UNITS = ("sections4", "conclusion", "examples_half", "examples_all", "depth_half", "depth_all",
          "risks", "mitigations", "recs", "steps", "transitions", "measurement", "why_now")  # fmt: skip


def _draft(topic: str) -> str:
    """A first draft passing the seven baseline checks plus one to five topic-chosen ones,
    so that it scores 4 to 6 and leaves the critic something real to ask for."""
    ctx = _Ctx.of(topic)
    seed = ctx.seed
    k = (1, 2, 2, 2, 3, 3, 3, 4, 4, 5)[_h(seed, "k") % 10]
    chosen: list[str] = []
    for unit in sorted(_UNITS, key=lambda u: _h(seed, "unit", u)):
        if len(chosen) < k and _GATES.get(unit, "sections3") in [*chosen, "sections3"]:
            chosen.append(unit)
    n = 4 if "sections4" in chosen else 3
    tpls = sorted(ctx.order[:n], key=_TEMPLATES.index)  # a logical order for the chosen ones

    def some(full: str, half: str, salt: str) -> set[str]:
        """Which sections get a feature: all, half, or fewer than half of them."""
        half_n = (n + 1) // 2
        count = n if full in chosen else half_n if half in chosen else _h(seed, salt) % half_n
        return {t.key for t in sorted(tpls, key=lambda t: _h(seed, salt, t.key))[:count]}

    deep = some("depth_all", "depth_half", "deep")
    examples = some("examples_all", "examples_half", "examples")
    intro = ctx.fmt(_pick(_INTROS, seed, "intro"))
    if "why_now" in chosen:
        intro += " " + ctx.fmt(_pick(_WHY_NOW, seed, "why"))
    sections = [_body(t, ctx, t.key in deep, t.key in examples) for t in tpls]
    titles = _TITLES if ":" not in topic else [t for t in _TITLES if ":" not in t]
    doc = _Doc(ctx.fmt(_pick(titles, seed, "title")), [intro], sections)
    edits = (("risks", _fix_risks), ("mitigations", _fix_risks), ("recs", _fix_recs), ("steps", _fix_recs),
             ("conclusion", _fix_conclusion), ("transitions", _add_transitions), ("measurement", _add_measurement))  # fmt: skip
    for unit, edit in edits:
        if unit in chosen:
            edit(doc, ctx)
    return doc.render()


def _clean(line: str) -> str:
    """A list item or sentence as plain prose: no markers, emphasis or opening link phrase."""
    line = _unlist(line).replace("**", "").replace("`", "").replace("Illustration: ", "")
    low = line.lower()
    if low.startswith(_OPENERS):
        line = line[len(next(o for o in _OPENERS if low.startswith(o))) :]
    return line.strip()


def _first_sentence(blocks: list[str]) -> str:
    prose = " ".join(next((b for b in blocks if _is_prose(b)), "").split())
    return _cap(_clean(_SENTENCE.split(prose)[0])) if prose else ""


_COUNTS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _summarise(report: str) -> str:
    """Two or three paragraphs retelling the report's title, headings and main points."""
    doc = _parse(report)
    ctx = _ctx_for(doc)
    if _n(report) < 5:
        return "The report is empty, so there is nothing to summarise yet."
    body, risks, recs, ends = (
        _of_kind(doc, ctx, k) for k in ("body", "risks", "recs", "conclusion")
    )
    # 1. What it covers: the topic, the first and last themes, the closing sections.
    first = f"This report examines {ctx.topic}."
    if body:
        count = _COUNTS[len(body) - 1] if len(body) <= len(_COUNTS) else str(len(body))
        first += f" It works through {count} main themes, from {_prose(body[0].heading)}"
        first += f" to {_prose(body[-1].heading)}" if len(body) > 1 else ""
        closing = [name for name, present in (("risks and limitations", risks),
                   ("practical recommendations", recs), ("a short conclusion", ends)) if present]  # fmt: skip
        first += f", and closes with {_join(closing)}." if closing else "."
    # 2. Its main points: the opening sentence of the first few sections.
    sources = [s.blocks for s in body[:3]] or [doc.intro]  # no sections: use the introduction
    points = [p for p in map(_first_sentence, sources) if p]
    second = "Its central points are these. " + " ".join(points) if points else ""
    # 3. What to do: the named risks ("Name: explanation") and the first steps or the advice.
    risk_items = [_clean(ln) for s in risks for ln in _items(s.blocks)]
    names = [
        _prose(r.split(":", 1)[0] if ":" in r[:40] else " ".join(r.split()[:6])) for r in risk_items
    ]
    third = f"It is candid about the risks, including {_join(names[:3])}. " if names else ""
    steps = [_clean(ln).rstrip(".") for s in recs for ln in _items(s.blocks)]
    advice = _first_sentence((recs or ends)[0].blocks) if recs or ends else ""
    if len(steps) >= 2:
        third += f"As a first move, it recommends that readers {_prose(steps[0])}, then {_prose(steps[1])}."
    elif advice:
        third += f"Its advice comes down to this: {_prose(advice)}"
    else:
        third += "It leaves the choice of next steps to the reader."
    return "\n\n".join(p for p in (first, second, third.strip()) if p)


# ---------------------------------------------------------------------------------------------
# The model: read the chat request, decide which job is asked, answer it.


def _text(content: object) -> str:
    """Message content as text (plain strings, or OpenAI-style lists of text parts)."""
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _role(system: str, instruction: str, has_report: bool, json_mode: bool) -> str:
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


def _topic_of(user: str) -> str:
    """The topic: the text after the instruction line (after the blank line in draft_prompt)."""
    text = user.strip()
    _, blank, rest = text.partition("\n\n")
    instruction = re.match(r"(?is)[^:\n]*\b(?:write|report|topic|draft)\b[^:\n]*:\s*(\S.*)", text)
    if blank and rest.strip():
        text = rest.strip().split("\n\n", 1)[0]  # a re-ask appends more paragraphs: ignore them
    elif instruction:
        text = instruction.group(1)
    else:
        text = re.sub(
            r"(?is)^(?:please\s+)?(?:write|draft|produce|create|prepare)\b.*?\b(?:on|about)\s+",
            "",
            text,
        )
    words = " ".join(text.split()).strip(" .:;?!\"'").split()
    return " ".join(words[:20]) or "the chosen subject"


def _listed(instruction: str, after: str = "") -> list[str]:
    """The list items in a prompt's instructions (only those after a line containing `after`)."""
    lines = instruction.splitlines()
    start = next((i for i, ln in enumerate(lines) if after and after in ln.lower()), -1)
    items = [_unlist(ln).strip() for ln in lines[start + 1 :] if _ITEM.match(ln)]
    if items or after:
        return items
    return [ln.strip() for ln in lines[1:] if ln.strip()]  # a person's unlisted requests


_STEPS = {"writer": "draft", "critic": "critique", "reviser": "revise", "summary": "summary"}


class OfflineModel:
    """Answers chat requests as writer, critic, reviser or summariser, deterministically."""

    def step_of(self, messages: list[dict[str, str]], *, json_mode: bool = False) -> str:
        """Which pipeline step a request is: draft, critique, revise or summary."""
        return _STEPS[self._read(messages, json_mode)[0]]

    def complete(
        self, messages: list[dict[str, str]], *, json_mode: bool = False
    ) -> OfflineCompletion:
        """Answer one chat request. `messages` is the OpenAI list of {"role", "content"} dicts."""
        role, instruction, report, main, texts = self._read(messages, json_mode)
        text = main if report is None else report
        if role == "writer":
            content = _draft(_topic_of(main))
        elif role == "critic":
            content = _critique(text, _listed(instruction, after="previous"))
        elif role == "reviser":
            content = _revise(text, _listed(instruction))
        else:
            content = _summarise(text)
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
        texts = [(str(m.get("role", "")), _text(m.get("content"))) for m in messages]
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
            _role(system, instruction, report is not None, json_mode),
            instruction,
            report,
            main,
            texts,
        )
