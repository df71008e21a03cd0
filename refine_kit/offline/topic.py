"""What one request is about, and the phrasing that follows from it.

A `TopicContext` holds the topic, a shorter subject for headings and the per-request memo of
heading kinds. From the topic's seed come its own order of section templates and the wording
of their headings, so every role phrases the same topic the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from refine_kit.offline.phrases import SECTION_TEMPLATES, SectionTemplate
from refine_kit.offline.text import capitalise, mid_sentence, pick, stable_hash

# The lookbehind starts a match only at the start of a run of spaces: the same matches as
# without it, but a long run of spaces is scanned once rather than once per space.
_QUALIFIER = re.compile(r"(?<!\s)\s+(?:for|in|on|across|within|among|at|with|during|under|by)\s+")
_TEMPLATE_BY_HEADING = {h.casefold(): t for t in SECTION_TEMPLATES for h in t.headings}


def _shorten(topic: str) -> str:
    """A shorter subject for headings: cut a long topic before its first qualifying phrase."""
    if len(topic.split()) <= 5:
        return topic
    # The first qualifier with two words before it (stop there: long titles have many).
    cuts = (m.start() for m in _QUALIFIER.finditer(topic) if len(topic[: m.start()].split()) >= 2)
    cut = next(cuts, None)
    return topic if cut is None else topic[:cut]


@dataclass
class TopicContext:
    """What one request is about: the topic, a short subject for headings, and a memo of
    heading kinds (built per request, never shared between requests)."""

    topic: str
    subject: str
    heading_kinds: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_topic(cls, topic: str) -> TopicContext:
        return cls(mid_sentence(topic), mid_sentence(_shorten(topic)))

    @cached_property
    def seed(self) -> str:
        """The normalised topic that every hashed choice starts from."""
        return " ".join(self.topic.casefold().split())

    @cached_property
    def template_order(self) -> list[SectionTemplate]:
        """This topic's own order of section templates: the draft takes the first few."""
        return sorted(SECTION_TEMPLATES, key=lambda t: stable_hash(self.seed, "section", t.key))

    @cached_property
    def _placeholders(self) -> dict[str, str]:
        return {
            "topic": self.topic,
            "Topic": capitalise(self.topic),
            "subject": self.subject,
            "Subject": capitalise(self.subject),
        }

    def fill(self, template: str, x: str = "") -> str:
        """A phrase table entry with the topic, subject and {x} filled in."""
        return template.format(**self._placeholders, x=x, X=capitalise(x))

    @cached_property
    def _lowered_phrases(self) -> tuple[str, str]:
        return self.topic.lower(), self.subject.lower()

    def without_subject(self, text: str) -> str:
        """Lower-cased text without the subject, so that a topic such as "risk management" or
        "recommendation engines" cannot trigger keyword checks by itself."""
        low = text.lower()
        for phrase in self._lowered_phrases:
            if len(phrase) > 3:
                low = low.replace(phrase, " ")
            elif phrase:  # short subjects ("AI") must not be cut out of longer words
                low = re.sub(rf"\b{re.escape(phrase)}\b", " ", low)
        return low

    def template_of(self, heading: str) -> SectionTemplate | None:
        """The template a heading was written from, if any (recognised with the subject put
        back)."""
        key = heading.casefold().replace(self.subject.casefold(), "{subject}")
        return _TEMPLATE_BY_HEADING.get(key)

    def heading_for(self, template: SectionTemplate) -> str:
        """This topic's heading for a template (one of its two phrasings)."""
        return self.fill(pick(template.headings, self.seed, "heading", template.key))
