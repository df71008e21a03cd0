"""The writer: a first draft of a report on a topic.

The draft is deliberately incomplete in a topic-dependent way (no conclusion here, thin
sections there, no risks elsewhere), so that it scores 4 to 6 and the critic has something
real to ask for. Every choice is a stable hash of the topic, so a topic always gets the same
draft. Under its title it says, in one line, that the offline model wrote it: templated prose
must never be mistaken for an LLM's.
"""

from __future__ import annotations

from refine_kit.offline.document import Document
from refine_kit.offline.edits import (
    add_measurement,
    add_transitions,
    body_section,
    improve_conclusion,
    improve_recommendations,
    improve_risks,
)
from refine_kit.offline.phrases import (
    INTRODUCTIONS,
    OFFLINE_NOTICE,
    SECTION_TEMPLATES,
    TITLES,
    WHY_NOW,
)
from refine_kit.offline.rubric import CHECK_PREREQUISITE
from refine_kit.offline.text import pick, stable_hash
from refine_kit.offline.topic import TopicContext

# The checks a first draft may pass beyond the seven it always passes (title, introduction,
# three sections, figures, readability, headings, length).
_OPTIONAL_CHECKS = (
    "sections4", "conclusion", "examples_half", "examples_all", "depth_half", "depth_all",
    "risks", "mitigations", "recs", "steps", "transitions", "measurement", "why_now",
)  # fmt: skip
# The edits that make the later optional checks pass, in the order the writer makes them.
_FINISHING_EDITS = (
    ("risks", improve_risks),
    ("mitigations", improve_risks),
    ("recs", improve_recommendations),
    ("steps", improve_recommendations),
    ("conclusion", improve_conclusion),
    ("transitions", add_transitions),
    ("measurement", add_measurement),
)


def draft_report(topic: str) -> str:
    """A first draft passing the seven baseline checks plus one to five topic-chosen ones,
    so that it scores 4 to 6 and leaves the critic something real to ask for."""
    ctx = TopicContext.from_topic(topic)
    seed = ctx.seed
    wanted = (1, 2, 2, 2, 3, 3, 3, 4, 4, 5)[stable_hash(seed, "k") % 10]
    chosen: list[str] = []
    for check in sorted(_OPTIONAL_CHECKS, key=lambda c: stable_hash(seed, "unit", c)):
        prerequisite = CHECK_PREREQUISITE.get(check, "sections3")
        if len(chosen) < wanted and prerequisite in [*chosen, "sections3"]:
            chosen.append(check)
    n = 4 if "sections4" in chosen else 3
    # This topic's first few templates, in a logical order.
    templates = sorted(ctx.template_order[:n], key=SECTION_TEMPLATES.index)

    def some(full: str, half: str, salt: str) -> set[str]:
        """Which sections get a feature: all, half, or fewer than half of them."""
        half_n = (n + 1) // 2
        count = (
            n if full in chosen else half_n if half in chosen else stable_hash(seed, salt) % half_n
        )
        ranked = sorted(templates, key=lambda t: stable_hash(seed, salt, t.key))
        return {t.key for t in ranked[:count]}

    deep = some("depth_all", "depth_half", "deep")
    examples = some("examples_all", "examples_half", "examples")
    intro = ctx.fill(pick(INTRODUCTIONS, seed, "intro"))
    if "why_now" in chosen:
        intro += " " + ctx.fill(pick(WHY_NOW, seed, "why"))
    sections = [body_section(t, ctx, t.key in deep, t.key in examples) for t in templates]
    titles = TITLES if ":" not in topic else tuple(t for t in TITLES if ":" not in t)
    doc = Document(ctx.fill(pick(titles, seed, "title")), [intro], sections, OFFLINE_NOTICE)
    for check, edit in _FINISHING_EDITS:
        if check in chosen:
            edit(doc, ctx)
    return doc.render()
