"""Small text helpers every role of the offline model shares.

Token and word counts, the list-line and sentence-break patterns, casing, list formatting, and
the stable hash behind every deterministic "choice". They favour plain string operations over
regular expressions on whole reports: a benchmark pushes 1,000 topics through the model.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def count_tokens(text: str) -> int:
    """Estimate tokens at about four characters each (at least 1 for non-empty text).

    Not tiktoken: it downloads its encodings at run time, so it cannot run offline. Cost
    displays only need a deterministic, roughly right number.
    """
    return math.ceil(len(text) / 4) if text else 0


def stable_hash(*parts: str) -> int:
    """A stable hash of the parts (the built-in hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")


def pick(options: Sequence[T], *parts: str) -> T:
    """The option that a stable hash of the parts chooses."""
    return options[stable_hash(*parts) % len(options)]


LIST_ITEM = re.compile(r"\s*(?:[-*+]|\d+[.)])\s+")  # a bullet or numbered list line (use .match)
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[^\W_][\w'’-]*")
_STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "into", "is",
    "it", "its", "of", "on", "or", "the", "to", "what", "when", "where", "which", "who", "why",
    "with", "your", "guide", "practical",
})  # fmt: skip


def word_count(text: str) -> int:
    """Word count, as `wc -w` gives it for tidy text. Counting separators is several times
    faster than splitting, and this runs thousands of times in a benchmark."""
    text = text.strip()
    if not text:
        return 0
    return text.count(" ") + text.count("\n") - text.count("  ") - text.count("\n\n") + 1


def contains_any(text: str, cues: Sequence[str]) -> bool:
    """Whether any cue occurs in the text (plain substring tests are fast)."""
    return any(c in text for c in cues)


def content_words(text: str) -> set[str]:
    """The lower-cased words of the text that carry meaning (no stop words)."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS}


def strip_list_marker(line: str) -> str:
    """A list line without its marker ("- ", "2. ")."""
    m = LIST_ITEM.match(line)
    return line[m.end() :] if m else line


def is_prose(block: str) -> bool:
    """Whether a block is a paragraph (not a list or a heading)."""
    return not LIST_ITEM.match(block) and not block.startswith("#")


def list_items(blocks: list[str]) -> list[str]:
    """The list lines in the blocks, markers included."""
    return [ln for b in blocks for ln in b.splitlines() if LIST_ITEM.match(ln)]


def prose_word_count(blocks: list[str]) -> int:
    """Words outside lists and headings."""
    total = 0
    for b in blocks:  # a paragraph is usually one line: skip splitting it into lines
        lines = b.splitlines() if "\n" in b else (b,)
        total += sum(
            word_count(ln) for ln in lines if not LIST_ITEM.match(ln) and not ln.startswith("#")
        )
    return total


def deliberate_casing(word: str) -> bool:
    """Whether a word's casing is deliberate and must survive any sentence position: it has a
    capital after its first letter ("iPhone", "eBPF", "macOS", "GitHub", "AI")."""
    return any(c.isupper() for c in word[1:])


def capitalise(text: str) -> str:
    """The text with its first letter upper-cased for a sentence start (the rest untouched).

    A first word with deliberate casing stays as written: "iPhone repair" must not become
    "IPhone repair". Words that are lower-case on purpose ("npm") cannot be told apart from
    ordinary words, so they are capitalised like any other.
    """
    if deliberate_casing(text.split(" ", 1)[0]):
        return text
    return text[:1].upper() + text[1:]


def mid_sentence(phrase: str) -> str:
    """Lower-case a phrase's first letter for use mid-sentence, unless its first word's casing is
    deliberate (an acronym such as "AI", or "GitHub", "McKinsey").

    Without knowing the phrase this cannot tell "Python" from "Roles": callers that know the
    topic use `TopicContext.mid_sentence`, which also keeps the topic's own capitals.
    """
    first = phrase.split(" ", 1)[0]
    if deliberate_casing(first) or first == "I":
        return phrase
    return phrase[:1].lower() + phrase[1:]


def join_with_and(items: list[str]) -> str:
    """Join with commas and a final "and": "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def markdown_list(items: Sequence[str], numbered: bool = False) -> str:
    """The items as a Markdown list, bulleted or numbered."""
    return "\n".join(f"{i}. {t}" if numbered else f"- {t}" for i, t in enumerate(items, 1))
