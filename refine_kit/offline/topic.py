"""What one request is about, and the phrasing that follows from it.

A `TopicContext` holds the topic, a shorter subject for headings and the per-request memo of
heading kinds. From the topic's seed come its own order of section templates and the wording
of their headings, so every role phrases the same topic the same way.

The topic keeps the casing its user typed: "Python packaging" and "iPhone repair" are names a
reader recognises, and lower-casing them mid-sentence (or capitalising "iPhone" at a sentence
start) is the first thing a reader notices. Whether the topic is grammatically plural ("Heat
pumps ... matter") comes from a small heuristic on its head noun; see `topic_is_plural`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from refine_kit.offline.phrases import SECTION_TEMPLATES, SectionTemplate
from refine_kit.offline.text import (
    capitalise,
    deliberate_casing,
    mid_sentence,
    pick,
    stable_hash,
)

# The lookbehind starts a match only at the start of a run of spaces: the same matches as
# without it, but a long run of spaces is scanned once rather than once per space.
_QUALIFIER = re.compile(r"(?<!\s)\s+(?:for|in|on|across|within|among|at|with|during|under|by)\s+")
_TEMPLATE_BY_HEADING = {h.casefold(): t for t in SECTION_TEMPLATES for h in t.headings}

# Words that never name anything: a capital on one only marks the start of the topic, so it is
# dropped mid-sentence ("This report looks at the impact of ...").
_FUNCTION_WORDS = frozenset({
    "a", "an", "the", "this", "these", "those", "that", "some", "any", "every", "each", "all",
    "our", "your", "their", "its", "my", "how", "why", "what", "when", "where", "which", "who",
    "whether", "in", "on", "for", "with", "about", "from", "to", "into", "beyond", "between",
    "after", "before", "without", "under", "over", "against", "across", "within", "among", "at",
    "by", "during", "of", "towards",
})  # fmt: skip
_QUESTION_WORDS = frozenset({"how", "why", "what", "when", "where", "whether", "which", "who"})
# Where a topic's head noun phrase ends: "Heat pumps | in cold climates".
_PREPOSITIONS = frozenset({
    "for", "in", "on", "across", "within", "among", "amongst", "at", "with", "during", "under",
    "by", "of", "from", "to", "into", "about", "through", "throughout", "between", "without",
    "over", "after", "before", "beyond", "against", "via", "per", "as", "inside", "outside",
    "around", "behind", "towards", "toward", "amid", "near",
})  # fmt: skip
_COMPARISONS = frozenset({"versus", "vs", "vs.", "or"})  # "A versus B" is one question
_COORDINATORS = frozenset({"and", "&"})  # "Risk and compliance" are two things
# Nouns ending in -ing that are not gerunds ("Spring cleaning tips" is about tips).
_ING_NOUNS = frozenset({
    "spring", "string", "thing", "king", "ring", "wing", "morning", "evening", "ceiling",
    "wedding", "clothing", "pudding", "building", "housing", "funding", "pricing", "lighting",
})  # fmt: skip
_IRREGULAR_PLURALS = frozenset({
    "people", "children", "men", "women", "feet", "teeth", "mice", "geese", "criteria",
    "phenomena", "cattle",
})  # fmt: skip
# Singular nouns ending in "s" that the endings below would misread, tool names included.
_SINGULAR_IN_S = frozenset({
    "news", "series", "species", "means", "gas", "bus", "lens", "bias", "alias", "atlas",
    "canvas", "chaos", "ethos", "cosmos", "diabetes", "measles", "kubernetes", "postgres",
    "jenkins", "devops", "mlops", "finops", "gitops", "secops", "dataops", "maths",
})  # fmt: skip
# Fields of study end in -ics and are singular ("economics is"); other -ics words are plural
# ("microplastics are", "metrics are").
_SINGULAR_ICS = frozenset({
    "economics", "politics", "physics", "ethics", "analytics", "logistics", "mathematics",
    "statistics", "robotics", "genetics", "genomics", "linguistics", "electronics", "dynamics",
    "ergonomics", "semantics", "aesthetics", "acoustics", "athletics", "gymnastics", "optics",
    "informatics", "bioinformatics", "forensics", "photonics", "mechanics", "thermodynamics",
    "geopolitics", "econometrics", "phonetics", "hydraulics", "avionics", "cybernetics",
})  # fmt: skip
_PUNCTUATION = ",.:;!?\"'()[]"


def topic_in_sentence(topic: str) -> str:
    """The topic as it reads mid-sentence: exactly as the user typed it, except that a capital
    on a leading function word ("The impact of ...", "How teams ...") is dropped.

    Capitals are never removed from other words: "Python packaging" and "Kubernetes" are
    names. The price is that a sentence-case topic such as "Urban beekeeping" keeps its
    capital mid-sentence too, since no rule can tell "Urban" from "Python" without a lexicon.
    """
    first = topic.split(" ", 1)[0]
    if first.lower() in _FUNCTION_WORDS and not deliberate_casing(first):
        return topic[:1].lower() + topic[1:]
    return topic


def _word_is_plural(word: str) -> bool:
    """Whether a single noun is plural, from its ending and a few known exceptions."""
    low = word.lower()
    if low in _IRREGULAR_PLURALS:
        return True
    if len(low) < 3 or not low.endswith("s") or low in _SINGULAR_IN_S or low.endswith("js"):
        return False
    if word[-1] == "s" and word[:-1].isupper():
        return True  # an acronym's plural: "APIs", "LLMs", "GPUs"
    if word.isupper() or deliberate_casing(word):
        return False  # "AWS", "HTTPS", "macOS", "iOS": names, not plurals
    if low.endswith(("ss", "us", "is")):
        return False  # "process", "campus", "analysis"
    if low.endswith("ics"):
        return low not in _SINGULAR_ICS
    return True


def topic_is_plural(topic: str) -> bool:
    """Whether a topic takes plural agreement ("Heat pumps in cold climates matter"), judged by
    its head noun: the last word before the first preposition.

    A small heuristic with known limits: a comparison ("A versus B") and a question ("How
    teams ...") count as one thing; "A and B" as two; a topic that opens with a gerund and at
    least two more words ("Onboarding new employees") is one activity, but a two-word one is
    ambiguous and read by its last word ("Managing teams" reads as plural, like "Training
    programmes"); a name ending in "s" that is not in the short exception list ("Kubernetes" is)
    reads as plural; and a noun with an irregular plural outside the list ("cacti") as singular.
    """
    words = [w.strip(_PUNCTUATION) for w in topic.split()]
    words = [w for w in words if w]
    if not words or words[0].lower() in _QUESTION_WORDS:
        return False
    cut = next((i for i, w in enumerate(words) if i and w.lower() in _PREPOSITIONS), len(words))
    head_phrase = words[:cut]
    lowered = {w.lower() for w in head_phrase}
    if lowered & _COMPARISONS:
        return False
    if lowered & _COORDINATORS:
        return True
    first = head_phrase[0].lower()
    if len(head_phrase) >= 3 and first.endswith("ing") and first not in _ING_NOUNS:
        return False  # a gerund phrase: "Onboarding new employees", "Managing the cloud"
    return _word_is_plural(head_phrase[-1])


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
        return cls(topic_in_sentence(topic), topic_in_sentence(_shorten(topic)))

    @cached_property
    def plural(self) -> bool:
        """Whether the topic takes plural agreement (the subject shares its head noun)."""
        return topic_is_plural(self.topic)

    @cached_property
    def _own_capitals(self) -> frozenset[str]:
        """The topic's capitalised words: they keep their capital wherever they stand."""
        words = (w.strip(_PUNCTUATION) for w in f"{self.topic} {self.subject}".split())
        return frozenset(w for w in words if w[:1].isupper())

    def mid_sentence(self, phrase: str) -> str:
        """A phrase for use mid-sentence: its first letter lower-cased, unless the first word is
        one the topic capitalises ("Kubernetes cost control today: ...") or is cased on
        purpose ("GitHub")."""
        first = phrase.split(" ", 1)[0].strip(_PUNCTUATION)
        return phrase if first in self._own_capitals else mid_sentence(phrase)

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
        plural = self.plural
        return {
            "topic": self.topic,
            "Topic": capitalise(self.topic),
            "subject": self.subject,
            "Subject": capitalise(self.subject),
            # Agreement with the topic: "{Topic} {is}", "what {it} involve{s}".
            "is": "are" if plural else "is",
            "has": "have" if plural else "has",
            "it": "they" if plural else "it",
            "It": "They" if plural else "It",
            "them": "them" if plural else "it",
            "s": "" if plural else "s",
        }

    def fill(self, template: str, x: str = "") -> str:
        """A phrase table entry with the topic, subject, agreement words and {x} filled in."""
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
