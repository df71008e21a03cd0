"""The standalone report.html page: the report under a header, safe to open from disk.

A report is model output, so the page treats it as untrusted: raw HTML in the Markdown is
shown as text, images and remote resources are refused, and a Content-Security-Policy lets
the page load nothing at all. The header says what a reader needs first: topic, score,
model and endpoint, date, and the executive summary.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from functools import lru_cache

from markdown_it import MarkdownIt

from refine_kit.models import RefineResult
from refine_kit.redaction import redact

_CSS = """\
body { max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1f2328;
  font: 16px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1, h2, h3 { line-height: 1.25; margin-top: 1.6em; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
a { color: #0969da; }
code { background: #f6f8fa; padding: .1em .3em; border-radius: 4px; font-size: .9em; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; border-radius: 6px; }
pre code { background: none; padding: 0; }
blockquote { margin: 0; padding: 0 1em; color: #57606a; border-left: .25em solid #d0d7de; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #d0d7de; padding: .4em .8em; text-align: left; }
th { background: #f6f8fa; }
header.run { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: 0 1rem; }
header.run dl { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }
header.run dt { font-weight: 600; } header.run dd { margin: 0; }
"""
# The page shows model output, so it may load nothing at all: no scripts, fonts or remote images.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@lru_cache(maxsize=1)
def markdown_parser() -> MarkdownIt:
    """One shared parser: CommonMark plus GFM tables, with raw HTML switched off.

    The ``commonmark`` preset allows raw HTML by default; a report is LLM output, so it is
    untrusted and any ``<script>`` in it must come out as visible text, not as markup.
    markdown-it also refuses ``javascript:``/``vbscript:``/``file:`` link targets itself.
    No images either (``![alt](url)`` reads as "!" and a link): a report must fetch nothing.
    """
    return MarkdownIt("commonmark", {"html": False}).enable("table").disable("image")


def _header_html(result: RefineResult, written_at: str) -> str:
    """What a reader needs before the report: the topic, how good, which model, when, in short."""
    stop = f"threshold ({result.quality_threshold})"
    if result.stop_reason != "threshold":
        stop = f"max iterations ({result.max_iterations})"
    model = f"{result.model}, {result.backend} back-end"
    if result.endpoint and result.endpoint != result.backend:
        model += f", {redact(result.endpoint)}"  # a URL may carry credentials
    if result.backend == "offline":
        model += " (a deterministic stand-in, not an LLM)"
    score = f"{result.score}/10, stopped at {stop}"
    facts = (("Topic", result.topic), ("Score", score), ("Model", model))
    dl = "".join(f"<dt>{k}</dt><dd>{html.escape(v)}</dd>\n" for k, v in facts)
    date = html.escape(written_at)
    dl += f'<dt>Written</dt><dd><time datetime="{date}">{date}</time> (UTC)</dd>\n'
    # The summary is model output too, so it is rendered just as safely as the report.
    summary = "<h2>Executive summary</h2>\n" + markdown_parser().render(result.summary)
    return f'<header class="run">\n<dl>\n{dl}</dl>\n{summary}</header>\n'


def render_html(
    markdown_text: str, title: str, *, result: RefineResult | None = None, written_at: str = ""
) -> str:
    """Render a Markdown report as a complete, standalone HTML5 page (no external assets).

    It opens straight from disk: UTF-8, an escaped ``<title>``, inline styles, and a CSP that
    lets it load nothing, as the report is untrusted model output. Given the `result`, a header
    above the report's ``<article>`` shows its topic, score, model, date and summary.
    """
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = _header_html(result, written_at or now) if result else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>\n{_CSS}</style>\n</head>\n<body>\n<main>\n{header}"
        f'<article class="report">\n{markdown_parser().render(markdown_text)}</article>\n'
        "</main>\n</body>\n</html>\n"
    )
