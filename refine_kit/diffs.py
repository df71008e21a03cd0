"""Word-level diffs of two drafts, folded to the changes: what a revision really changed.

A revision often keeps most of a draft; printing both whole buries the few sentences that
moved. `diff_html` shows only the changed regions with a little context, collapses the rest
into "… N unchanged words …" markers and folds the whole comparison into a `<details>`
element, so a notebook shows one summary line per revision until a reader opens it.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Sequence

#: Unchanged words shown either side of a change; longer unchanged stretches are folded.
DIFF_CONTEXT_WORDS = 3


def diff_html(old: str, new: str, title: str = "", context: int = DIFF_CONTEXT_WORDS) -> str:
    """A folded word-level diff of two texts as escaped HTML (`title` is trusted markup).

    Only the changed regions are shown, each with `context` unchanged words either side;
    every unchanged stretch in between is collapsed into a "… N unchanged words …" marker.
    It all sits in an HTML `<details>` element, closed until clicked, whose summary line
    reads "<title>: +N words, -M words". Saved notebooks keep it: it is static HTML.
    """
    # Words and the whitespace between them alternate, so the layout of the text survives.
    old_words, new_words = re.split(r"(\s+)", old), re.split(r"(\s+)", new)
    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    added = removed = 0
    out: list[str] = []
    shown = 0  # old tokens already shown or folded
    # Every change is in some group; only unchanged stretches are trimmed to their context,
    # and a word comes with the whitespace after it: 2 tokens per word of context.
    for group in matcher.get_grouped_opcodes(2 * context):
        out.append(_folded(_count_words(old_words[shown : group[0][1]])))
        for op, i1, i2, j1, j2 in group:
            if op == "equal":
                out.append(html.escape("".join(old_words[i1:i2])))
            if op in ("delete", "replace"):
                removed += _count_words(old_words[i1:i2])
                removed_text = html.escape("".join(old_words[i1:i2]))
                out.append(f'<del style="color:#b00">{removed_text}</del>')
            if op in ("insert", "replace"):
                added += _count_words(new_words[j1:j2])
                out.append(
                    '<ins style="color:#070;background:#efe">'
                    f"{html.escape(''.join(new_words[j1:j2]))}</ins>"
                )
        shown = group[-1][2]
    out.append(_folded(_count_words(old_words[shown:])))
    counts = f"+{added} words, -{removed} words"
    label = f"<b>{title}</b>: {counts}" if title else counts
    return (
        f'<details style="margin:4px 0"><summary style="cursor:pointer">{label}</summary>'
        '<div style="white-space:pre-wrap;font-family:monospace;font-size:85%;'
        'border-left:3px solid #ddd;padding-left:8px">'
        f"{''.join(out)}</div></details>"
    )


def _count_words(tokens: Sequence[str]) -> int:
    return sum(1 for t in tokens if t.strip())


def _folded(words: int) -> str:
    """The marker standing for an unchanged stretch of `words` words ("" for none)."""
    if not words:
        return ""
    unit = "word" if words == 1 else "words"
    return (
        '<div style="color:#888;font-style:italic;margin:2px 0">'
        f"&hellip; {words} unchanged {unit} &hellip;</div>"
    )
