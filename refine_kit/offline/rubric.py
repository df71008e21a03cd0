"""The rubric's vocabulary, shared by the writer, the critic and the reviser.

Which checks wait for others, the cue words that show a feature is present, and how an
improvement request (the critic's own or a person's) maps to the kind of edit that answers it.
The critic measures with these and the reviser edits with them, so they must agree.
"""

from __future__ import annotations

import re

from refine_kit.offline.phrases import CONNECTIVES
from refine_kit.offline.topic import TopicContext

# A second-level check is only asked for (or aimed at by the writer) once its first level passes.
CHECK_PREREQUISITE = {
    "examples_half": "sections3",
    "depth_half": "sections3",
    "sections4": "sections3",
    "examples_all": "examples_half",
    "depth_all": "depth_half",
    "mitigations": "risks",
    "steps": "recs",
}

# Lower-cased paragraph openings that count as linking phrases.
LINKING_OPENERS = tuple(c.strip().lower() for c in CONNECTIVES) + (
    "however,", "as a result,", "by contrast,", "in turn,", "for that reason,", "that said,",
    "similarly,", "meanwhile,", "therefore,", "consequently,", "moreover,", "furthermore,",
    "in addition,", "finally,",
)  # fmt: skip
EXAMPLE_CUES = ("for example", "for instance", "such as", "e.g.", "to illustrate", "illustration:")
MEASURE_CUES = ("measur", "metric", "indicator", "track", "evidence", "baseline", "kpi")
MITIGATION_CUES = ("mitigat", "to reduce", "safeguard", "guard against", "counter")
# A sentence with one of these presents its figures as illustrative or sourced.
HEDGE_CUES = (
    "illustrat", "hypothetical", "for example", "e.g.", "roughly", "around", "approximately",
    "about", "say,", "source", "according to", "estimat", "survey",
)  # fmt: skip
FIGURE = re.compile(r"\b\d+(?:\.\d+)?(?:\s?%|\s?per ?cent\b|-fold\b)")  # "40%", "3-fold"

# A quoted name in a request. Curly quotes stop at the next opening quote as well as the closing
# one: a request full of unclosed quotes is then scanned once, not once per quote.
QUOTED = re.compile(r'"([^"]+)"|“([^“”]+)”')
# Where a request's reason begins ("..., so that ...", "...; ..."): the part before is the ask.
WHY_CLAUSE = re.compile(r",\s(?=so\b|since\b|such as\b|instead\b|naming\b|because\b)|;\s")

# Map any improvement sentence to the kind of edit that answers it, first match wins.
# Quoted section names and the subject are removed first, so they cannot steer the choice.
_REQUEST_KIND_CUES = (
    ("figures", "figure|statistic| source|cite|citation"),
    ("risks", "risk|limitation|pitfall|downside|trade-off|challenge|what can go wrong|mitigat"),
    ("recs", "recommend|next step|what to do|action"),
    ("conclusion", "conclu|takeaway|closing|wrap up"),
    ("why_now", "matters? now|why now|why (?:it|they|this) matters?|urgen|timely"),
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
_REQUEST_KINDS = tuple((kind, re.compile(cues)) for kind, cues in _REQUEST_KIND_CUES)


def classify_request(item: str, ctx: TopicContext) -> str:
    """The kind of edit an improvement asks for ("risks", "examples", ...; else "generic")."""
    plain = ctx.without_subject(QUOTED.sub(" ", item))
    return next((kind for kind, cue in _REQUEST_KINDS if cue.search(plain)), "generic")
