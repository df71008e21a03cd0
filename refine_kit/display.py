"""Rich notebook views of results: reports, critiques, plots, diffs, accounting, live progress.

Notebooks stay short and teach the ideas; the rendering lives here, tested like any code.
IPython, matplotlib and ipywidgets come with the `notebooks` extra, so they are imported
inside the functions: the core package imports without them. Topics and reports are user
or model text, so every value that reaches HTML is escaped (raw HTML in a report is shown
as text, never run).

One word for the drafts, everywhere: draft 0 is the *first draft*, and draft k (k >= 1) is
*revision k*, so a result with n scored drafts wrote n - 1 revisions (`max_iterations` is
the most revisions a run may write). The CLI counts the same way.
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from refine_kit.diffs import diff_html
from refine_kit.models import Accounting, BatchResult, RefineResult
from refine_kit.progress import ProgressEvent
from refine_kit.report_page import markdown_parser

#: One colour per traced step, shared by every plot so a legend means the same everywhere.
STEP_COLOURS = {
    "draft": "#4C72B0",
    "critique": "#DD8452",
    "revise": "#55A868",
    "summary": "#8172B3",
}
_TABLE = 'style="border-collapse:collapse;text-align:left"'
_CELL = 'style="border:1px solid #ccc;padding:3px 8px;vertical-align:top;text-align:left"'


def _html(markup: str) -> Any:
    from IPython.display import HTML

    return HTML(markup)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain HTML table; every cell is escaped, so callers pass raw values."""
    head = "".join(f"<th {_CELL}>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td {_CELL}>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table {_TABLE}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "<br>".join(f"&bull; {html.escape(str(v))}" for v in value)
    return "" if value is None else html.escape(str(value))


def draft_name(index: int) -> str:
    """What the notebooks call draft `index`: "first draft" for 0, else "revision <index>"."""
    return "first draft" if index == 0 else f"revision {index}"


def _stop_words(result: RefineResult) -> str:
    if result.stop_reason == "threshold":
        return f"reached the threshold ({result.quality_threshold})"
    return f"no revision left (max_iterations={result.max_iterations})"


def report_html(result: RefineResult) -> str:
    """The final report as HTML. Raw HTML inside the model's Markdown is escaped, not rendered."""
    body = markdown_parser().render(result.report)
    return (
        f"<p><b>{html.escape(result.topic)}</b>: score {result.score} "
        f"({draft_name(result.best_iteration)}, stop: {html.escape(result.stop_reason)})</p>"
        f"{body}"
    )


def show_report(result: RefineResult) -> Any:
    """Render the best report the way a reader would see it (see also `framed_report`)."""
    return _html(report_html(result))


#: How many levels a framed report's headings go down: its `#` title becomes an `<h4>`.
DEMOTE_HEADINGS = 3


def framed_report_html(result: RefineResult, *, summary: bool = True) -> str:
    """The returned report inside a visible frame, as HTML.

    The caption names the topic, the score and the draft the report came from; the
    executive summary (unless `summary=False`) comes next, then the report. The report's
    headings go down `DEMOTE_HEADINGS` levels (never below `<h6>`), so its `# Title` cannot
    be mistaken for a section of the notebook around it. Raw HTML in the model's Markdown is
    shown as text, never rendered.
    """
    revisions = len(result.iterations) - 1
    origin = (
        "the first draft"
        if result.best_iteration == 0
        else f"revision {result.best_iteration} of {revisions}"
    )
    caption = (
        f"Report &middot; <b>{html.escape(result.topic)}</b> &middot; "
        f"score {result.score}/10 &middot; {origin} &middot; "
        f"stop: {html.escape(_stop_words(result))}"
    )
    intro = (
        '<div style="padding:2px 0;border-bottom:1px solid #ddd"><p><i>Executive summary</i></p>'
        f"{_demoted_html(result.summary)}</div>"
        if summary and result.summary
        else ""
    )
    body = _demoted_html(result.report)
    return (
        '<figure style="border:2px solid #8172B3;border-radius:6px;margin:8px 0;padding:0">'
        '<figcaption style="background:#8172B3;color:#fff;padding:4px 12px;font-size:90%">'
        f"{caption}</figcaption>"
        f'<div style="padding:4px 14px 8px">{intro}{body}</div></figure>'
    )


def _demoted_html(markdown: str) -> str:
    """Markdown as HTML, every heading `DEMOTE_HEADINGS` levels down (never below `<h6>`)."""
    md = markdown_parser()
    tokens = md.parse(markdown)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1:]) + DEMOTE_HEADINGS, 6)}"
    return str(md.renderer.render(tokens, md.options, {}))


def framed_report(result: RefineResult, *, summary: bool = True) -> Any:
    """Show the returned report in a frame, headings demoted (see `framed_report_html`)."""
    return _html(framed_report_html(result, summary=summary))


def critique_table(result: RefineResult) -> Any:
    """One row per scored draft (the first draft, then each revision): what the critic liked
    and what it asked to change."""
    rows = [
        (draft_name(it.index), it.score, it.words, c.strengths, c.improvements, c.summary)
        for it in result.iterations
        for c in [it.critique]
    ]
    headers = ["draft", "score", "words", "strengths", "improvements", "summary"]
    return _html(_table(headers, rows))


def plot_scores(result: RefineResult) -> Any:
    """Score of each draft (0 = the first draft, k = revision k) against the threshold, with
    the returned (best) draft circled."""
    import matplotlib.pyplot as plt

    xs = [it.index for it in result.iterations]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(xs, result.scores, marker="o", label="score")
    ax.axhline(result.quality_threshold, linestyle="--", color="grey", label="threshold")
    best = result.iterations[result.best_iteration]
    ax.plot([best.index], [best.score], "o", markersize=14, fillstyle="none", label="returned")
    ax.set(xlabel="revision (0 = the first draft)", ylabel="score", ylim=(0, 10.5), xticks=xs)
    # parse_math off: a topic with "$...$" is text, not mathtext (which would fail to draw).
    ax.set_title(f"{result.topic[:60]}: stop = {result.stop_reason}", parse_math=False)
    ax.legend(loc="lower right")
    fig.tight_layout()
    plt.close(fig)  # the returned figure is shown once, as the cell's value
    return fig


def _pair_title(a: int, b: int) -> str:
    """The name of a comparison: "Revision 1 → 2", or "First draft → revision 1"."""
    if a > 0 and b > 0:
        return f"Revision {a} &rarr; {b}"
    return f"{draft_name(a).capitalize()} &rarr; {draft_name(b)}"


def revision_diff(result: RefineResult, a: int | None = None, b: int | None = None) -> Any:
    """What the reviser changed between drafts `a` and `b` (default: each revision against the
    draft before it), word by word: removed text struck through in red, added text in green.

    Each comparison is folded (an HTML `<details>` that opens on a click) behind a summary
    line such as "Revision 1 → 2: +40 words, -12 words", and shows only the changed regions
    with a little context: see `diff_html`.
    """
    drafts: list[str] = list(getattr(result, "drafts", None) or [])
    if len(drafts) < 2:
        return _html(
            "<p><i>No revision to compare: this result keeps "
            f"{len(drafts)} draft(s) (scores {html.escape(str(result.scores))}).</i></p>"
        )
    pairs = (
        [(a, b)] if a is not None and b is not None else [(i - 1, i) for i in range(1, len(drafts))]
    )
    parts = [diff_html(drafts[x], drafts[y], _pair_title(x, y)) for x, y in pairs]
    return _html("".join(parts))


def accounting_table(result: RefineResult | BatchResult) -> Any:
    """What a topic or a whole batch paid for, and what replay and the cache saved."""
    acc: Accounting = result.accounting
    cost = "unknown model" if acc.cost_usd is None else f"${acc.cost_usd:.4f}"
    rows = [
        ("LLM calls (HTTP requests)", acc.requests_sent),
        ("steps replayed from checkpoints", acc.replayed),
        ("steps served from the cache", acc.cached),
        ("client retries", acc.client_retries),
        ("re-asks after bad output", acc.reasks),
        ("task attempts", acc.task_attempts),
        ("prompt tokens used", f"{acc.prompt_tokens_used:,}"),
        ("completion tokens used", f"{acc.completion_tokens_used:,}"),
        ("tokens saved", f"{acc.tokens_saved:,}"),
        ("estimated cost", cost),
    ]
    return _html(_table(("what", "count"), rows))


def results_table(batch: BatchResult) -> Any:
    """One row per topic, in the order given; a failed topic shows its error instead."""
    rows: list[tuple[object, ...]] = []
    for o in batch.outcomes:
        r = o.result
        if r is None:
            spent = o.accounting.requests_sent
            rows.append((o.topic, o.status, "", "", "", spent, "", "", o.error))
            continue
        cached = "yes" if o.from_cache else "no"
        # A cached result ran in an earlier run: its seconds are not this run's.
        seconds = "cached" if o.from_cache else f"{r.seconds:.2f}"
        revisions = len(r.iterations) - 1
        rows.append(
            (
                o.topic,
                o.status,
                revisions,
                r.score,
                r.stop_reason,
                r.requests_sent,
                seconds,
                cached,
                "",
            )
        )
    headers = [
        "topic",
        "status",
        "revisions",
        "score",
        "stop",
        "calls",
        "seconds",
        "cached",
        "error",
    ]
    return _html(_table(headers, rows))


def timeline_calls(batch: BatchResult) -> list[tuple[str, str, float, float]]:
    """(topic, step, start, seconds) of every call this run paid for, start relative to the
    first. Cached topics and replayed steps ran in an earlier run, so they are left out."""
    calls = [
        (o.topic, c.step, c.started_at, c.seconds)
        for o in batch.outcomes
        if o.result is not None and not o.from_cache
        for c in o.result.calls
        if not c.replayed
    ]
    t0 = min((c[2] for c in calls), default=0.0)
    return [(topic, step, start - t0, secs) for topic, step, start, secs in calls]


def in_flight(calls: Sequence[tuple[str, str, float, float]]) -> list[tuple[float, int]]:
    """A step function of calls in flight: (time, count after that time)."""
    edges = sorted([(s, 1) for _, _, s, _ in calls] + [(s + d, -1) for _, _, s, d in calls])
    points, level = [(0.0, 0)], 0
    for t, delta in sorted(edges, key=lambda e: (e[0], e[1])):  # ends before starts on a tie
        level += delta
        points.append((t, level))
    return points


def plot_timeline(batch: BatchResult) -> Any:
    """One row per topic, one bar per LLM call coloured by step, and calls in flight below:
    the picture of the fan-out and of the in-flight limit at work."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    calls = timeline_calls(batch)
    topics = [o.topic for o in batch.outcomes if any(c[0] == o.topic for c in calls)]
    fig, (ax, ax2) = plt.subplots(
        2,
        1,
        figsize=(8, 1.2 + 0.45 * max(len(topics), 1) + 1.5),
        sharex=True,
        gridspec_kw={"height_ratios": [max(len(topics), 1), 2]},
    )
    for topic, step, start, secs in calls:
        ax.barh(topics.index(topic), secs, left=start, color=STEP_COLOURS[step], edgecolor="white")
    labels = [t if len(t) <= 30 else t[:29] + "…" for t in topics]
    ax.set_yticks(range(len(topics)), labels, parse_math=False)  # topics are text, never maths
    ax.invert_yaxis()
    ax.legend(
        handles=[Patch(color=c, label=s) for s, c in STEP_COLOURS.items()],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize="small",
    )
    ax.set_title(f"LLM calls over time (limit {batch.max_concurrency} in flight)")
    points = in_flight(calls)
    ax2.step([t for t, _ in points], [n for _, n in points], where="post", label="calls in flight")
    ax2.axhline(batch.max_concurrency, linestyle="--", color="grey", label="limit")
    ax2.set(xlabel="seconds since the first call", ylabel="in flight")
    ax2.set_ylim(0, batch.max_concurrency + 1)
    ax2.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.tight_layout()
    plt.close(fig)
    return fig


class BatchProgress:
    """Live per-topic progress for `refine_batch(..., on_progress=progress)`.

    In a live notebook it shows a row per topic (label, bar, status) with ipywidgets; when
    the batch ends the rows are replaced by a static HTML table, so a saved notebook (or one
    run by papermill/nbmake, where widget state is not rendered) still reads well. Without
    ipywidgets, or with `widgets=False`, only the final table is shown. Events arrive on
    Flyte's worker thread, so state is locked and widget updates never raise.
    """

    def __init__(
        self, topics: Sequence[str], max_iterations: int = 3, widgets: bool | None = None
    ) -> None:
        self.steps = 2 * max_iterations + 3  # draft, critique, (revise, critique) x n, summary
        self.state: dict[str, dict[str, Any]] = {
            t: {"status": "waiting", "done": 0, "score": None} for t in topics
        }
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[Any, Any]] = {}
        self._handle: Any = None
        self.widgets = _widgets_available() if widgets is None else widgets
        #: The latest word about the whole batch (why calls are held, or that it stopped).
        self.notice = ""
        self._notice_label: Any = None

    def __call__(self, event: ProgressEvent) -> None:
        """The `on_progress` listener."""
        if not event.topic:  # about the whole batch: a wait for a rate limit, or a stop
            self.notice = event.message or f"batch {event.kind}"
            with contextlib.suppress(AttributeError):  # no widgets: the final table says it
                self._notice_label.value = html.escape(self.notice)
            return
        with self._lock:
            row = self.state.setdefault(
                event.topic, {"status": "waiting", "done": 0, "score": None}
            )
            if event.kind == "step":
                row["done"] += 1
                score = f" (score {event.score})" if event.score is not None else ""
                row["status"] = _step_status(event) + score
            elif event.kind == "succeeded":
                row.update(status="succeeded", done=self.steps)
            elif event.kind == "failed":
                row["status"] = f"failed: {event.message}"
            else:
                row["status"] = event.kind
            if event.score is not None:
                row["score"] = event.score
            snapshot = dict(row)
        with contextlib.suppress(Exception):  # a display glitch must never fail the batch
            self._update_widget(event.topic, snapshot)

    def __enter__(self) -> BatchProgress:
        self.show()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def show(self) -> None:
        """Display the live rows (widgets only); the static table comes at `finish`."""
        if not self.widgets:
            return
        import ipywidgets as w
        from IPython.display import display

        for topic in self.state:
            bar = w.IntProgress(value=0, min=0, max=self.steps, layout=w.Layout(width="200px"))
            label = w.HTML(html.escape(self.state[topic]["status"]))
            self._rows[topic] = (bar, label)
        self._notice_label = w.HTML("")
        box = w.VBox(
            [self._notice_label]
            + [
                w.HBox(
                    [
                        w.HTML(f"<b>{html.escape(t[:40])}</b>", layout=w.Layout(width="280px")),
                        bar,
                        label,
                    ]
                )
                for t, (bar, label) in self._rows.items()
            ]
        )
        self._handle = display(box, display_id=True)

    def finish(self) -> None:
        """Replace the live rows with the final table (or show the table if there were none)."""
        try:
            from IPython.display import HTML, display
        except ImportError:  # plain Python: nothing to render into; `to_html()` still works
            return
        table = HTML(self.to_html())
        if self._handle is not None:
            self._handle.update(table)
        else:
            display(table)

    def to_html(self) -> str:
        with self._lock:
            rows = [(t, s["status"], s["score"]) for t, s in self.state.items()]
        table = _table(("topic", "status", "score"), rows)
        return f"<p>{html.escape(self.notice)}</p>{table}" if self.notice else table

    def _repr_html_(self) -> str:
        return self.to_html()

    def _update_widget(self, topic: str, row: dict[str, Any]) -> None:
        if topic in self._rows:
            bar, label = self._rows[topic]
            bar.value = min(row["done"], self.steps)
            bar.bar_style = (
                "danger"
                if row["status"].startswith("failed")
                else ("success" if row["status"] == "succeeded" else "")
            )
            label.value = html.escape(row["status"])


def _step_status(event: ProgressEvent) -> str:
    """A step event in the notebooks' words: "critique of revision 2", "writing revision 1"."""
    if event.iteration is None:
        return str(event.step)
    name = draft_name(event.iteration)
    return {
        "draft": f"writing the {name}",
        "critique": f"critique of {name}",
        "revise": f"writing {name}",
        "summary": f"summary of {name}",
    }.get(str(event.step), f"{event.step} ({name})")


def _widgets_available() -> bool:
    """ipywidgets is installed and we run inside a Jupyter kernel (not a plain script)."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")
