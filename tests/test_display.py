"""The notebook display helpers, on real results from offline runs.

They must escape user and model text (a topic is rendered in several places), draw what
their docstrings promise, and degrade to static HTML when widgets cannot be shown.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

import pytest

pytest.importorskip("IPython")
pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import refine_kit  # noqa: E402
from refine_kit import display  # noqa: E402
from refine_kit.models import BatchResult, RefineResult  # noqa: E402
from refine_kit.progress import ProgressEvent  # noqa: E402

EVIL = "<script>alert(1)</script> & heat pumps"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> RefineResult:
    out = tmp_path_factory.mktemp("display") / "out"
    return refine_kit.refine(EVIL, quality_threshold=9, output_dir=out, offline_latency=0)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> BatchResult:
    out = tmp_path_factory.mktemp("display-batch") / "out"
    topics = [EVIL, "Tidal power", "Urban beekeeping"]
    return refine_kit.refine_batch(
        topics, max_iterations=2, max_concurrency=2, output_dir=out, offline_latency=0.01
    )


def _markup(obj: object) -> str:
    return obj.data if hasattr(obj, "data") else str(obj)


def _assert_escaped(markup: str) -> None:
    assert "<script>" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup


def test_html_helpers_escape_topic_and_report_text(result: RefineResult, batch: BatchResult):
    for view in (
        display.show_report(result),
        display.framed_report(result),
        display.critique_table(result),
        display.revision_diff(result),
        display.results_table(batch),
    ):
        _assert_escaped(_markup(view))


def test_report_html_shows_raw_html_in_markdown_as_text(result: RefineResult):
    hostile = result.model_copy(update={"report": "# Title\n\n<img src=x onerror=alert(1)>\n"})
    markup = display.report_html(hostile)
    assert "<img" not in markup and "&lt;img" in markup
    assert "<h1>Title</h1>" in markup


def test_framed_report_frames_the_report_and_demotes_its_headings(result: RefineResult):
    text = "# Title\n\n## Part\n\n#### Deep\n\n<img src=x onerror=alert(1)>\n"
    hostile = result.model_copy(update={"report": text, "summary": "## Gist\n\nIn <b>short</b>."})
    markup = display.framed_report_html(hostile)
    assert markup.startswith("<figure") and markup.endswith("</figure>")
    assert "border:" in markup and markup.count("<figcaption") == 1
    # A report's headings sit below the notebook's (#, ##, ###), never above h6.
    assert "<h4>Title</h4>" in markup and "<h5>Part</h5>" in markup and "<h6>Deep</h6>" in markup
    assert not any(f"<h{n}>" in markup for n in (1, 2, 3))
    assert "<h5>Gist</h5>" in markup and "&lt;b&gt;short&lt;/b&gt;" in markup
    assert "<img" not in markup and "&lt;img" in markup
    without = display.framed_report_html(hostile, summary=False)
    assert "Executive summary" in markup and "Executive summary" not in without


def test_framed_report_caption_names_topic_score_and_draft(result: RefineResult):
    caption = display.framed_report_html(result).split("</figcaption>")[0]
    _assert_escaped(caption)
    assert f"score {result.score}/10" in caption
    revisions = len(result.iterations) - 1
    best = result.best_iteration
    assert (f"revision {best} of {revisions}" if best else "the first draft") in caption
    first = result.model_copy(update={"best_iteration": 0, "stop_reason": "max_iterations"})
    caption = display.framed_report_html(first).split("</figcaption>")[0]
    assert "the first draft" in caption
    assert f"no revision left (max_iterations={result.max_iterations})" in caption


def test_draft_names_use_one_word_for_revisions():
    assert [display.draft_name(i) for i in range(3)] == ["first draft", "revision 1", "revision 2"]


def test_critique_table_has_one_row_per_scored_draft(result: RefineResult):
    markup = _markup(display.critique_table(result))
    assert markup.count("<tr>") == len(result.iterations) + 1  # plus the header row
    assert f"<th {display._CELL}>draft</th>" in markup and "iteration" not in markup
    for it in result.iterations:
        assert f"<td {display._CELL}>{it.score}</td>" in markup
        assert f"<td {display._CELL}>{display.draft_name(it.index)}</td>" in markup


def test_results_table_counts_revisions_as_the_cli_does(batch: BatchResult):
    markup = _markup(display.results_table(batch))
    assert f"<th {display._CELL}>revisions</th>" in markup and "iteration" not in markup
    for outcome in batch.outcomes:
        revisions = len(outcome.result.iterations) - 1  # drafts after the first
        row = next(r for r in markup.split("<tr>") if html.escape(outcome.topic) in r)
        cells = row.split(f"<td {display._CELL}>")
        assert cells[3].startswith(f"{revisions}</td>")


def test_revision_diff_folds_each_revision_and_handles_missing_drafts(result: RefineResult):
    assert len(result.drafts) == len(result.iterations) >= 3
    last = len(result.drafts) - 1
    markup = _markup(display.revision_diff(result, 0, last))
    assert markup.count("<details") == 1 and "<ins" in markup
    assert f"First draft &rarr; revision {last}</b>: +" in markup
    pairs = _markup(display.revision_diff(result))
    assert pairs.count("<details") == pairs.count("</details>") == len(result.drafts) - 1
    assert "<details open" not in pairs  # each opens on demand
    assert "First draft &rarr; revision 1</b>: +" in pairs
    assert "Revision 1 &rarr; 2</b>: +" in pairs
    bare = result.model_copy(update={"drafts": []})
    assert "No revision to compare" in _markup(display.revision_diff(bare))


def test_revision_diff_is_shorter_than_the_drafts_it_compares(result: RefineResult):
    markup = _markup(display.revision_diff(result))
    assert "unchanged words &hellip;" in markup
    assert len(markup) < sum(len(d) for d in result.drafts[1:])


def test_diff_html_counts_words_and_escapes():
    markup = display.diff_html("a <b> c", "a <b> d e", "Revision 1 &rarr; 2")
    assert (
        "<summary" in markup and "Revision 1 &rarr; 2</b>: +2 words, -1 words</summary>" in markup
    )
    assert "&lt;b&gt;" in markup and "<b>&lt;" not in markup


def test_diff_html_shows_changes_with_context_and_folds_the_rest():
    old = " ".join(f"w{i}" for i in range(100))
    new = old.replace("w50", "CHANGED")
    markup = display.diff_html(old, new, context=3)
    assert "+1 words, -1 words" in markup
    assert '<del style="color:#b00">w50</del>' in markup and ">CHANGED</ins>" in markup
    for shown in ("w47", "w49", "w51", "w53"):  # three words of context either side
        assert shown in markup, shown
    for folded in ("w0 ", "w46", "w54", "w99"):
        assert folded not in markup, folded
    assert "&hellip; 47 unchanged words &hellip;" in markup  # w0 .. w46
    assert "&hellip; 46 unchanged words &hellip;" in markup  # w54 .. w99


def test_diff_html_keeps_nearby_changes_in_one_region_and_text_layout():
    old = "one two three four\n\nfive six seven eight nine ten eleven twelve"
    new = "one TWO three four\n\nfive SIX seven eight nine ten eleven twelve"
    markup = display.diff_html(old, new, context=2)
    assert markup.count("unchanged") == 1  # the two changes share a region
    assert "&hellip; 4 unchanged words &hellip;" in markup  # nine .. twelve
    assert "four\n\nfive" in markup  # paragraphs survive inside the changed region


def test_diff_html_of_identical_texts_folds_everything():
    markup = display.diff_html("same words here", "same words here")
    assert "+0 words, -0 words" in markup and "<ins" not in markup and "<del" not in markup
    assert "&hellip; 3 unchanged words &hellip;" in markup
    assert "&hellip; 1 unchanged word &hellip;" in display.diff_html("a b", "a c", context=0)


def test_accounting_table_for_result_and_batch(result: RefineResult, batch: BatchResult):
    one = _markup(display.accounting_table(result))
    assert f"<td {display._CELL}>{result.accounting.requests_sent}</td>" in one
    total = _markup(display.accounting_table(batch))
    assert f"<td {display._CELL}>{batch.accounting.requests_sent}</td>" in total


def test_plot_scores_draws_scores_threshold_and_best(result: RefineResult):
    fig = display.plot_scores(result)
    assert fig.axes[0].get_xlabel() == "revision (0 = the first draft)"
    lines = fig.axes[0].get_lines()
    scores, threshold, best = lines
    assert list(scores.get_ydata()) == result.scores
    assert threshold.get_linestyle() == "--"
    assert list(threshold.get_ydata()) == [result.quality_threshold] * 2
    assert list(best.get_ydata()) == [result.score]


def test_plot_timeline_has_a_bar_per_paid_call_and_respects_the_limit(batch: BatchResult):
    fig = display.plot_timeline(batch)
    bars, flight = fig.axes
    paid = sum(len(o.result.calls) for o in batch.outcomes)
    assert len(bars.patches) == paid
    assert len(bars.get_yticks()) == len(batch.outcomes)
    levels = flight.get_lines()[0].get_ydata()
    assert max(levels) <= batch.max_concurrency
    assert levels[-1] == 0


def test_timeline_leaves_out_cached_topics(batch: BatchResult):
    cached = batch.model_copy(
        update={"outcomes": [o.model_copy(update={"from_cache": True}) for o in batch.outcomes]}
    )
    assert display.timeline_calls(cached) == []
    display.plot_timeline(cached)  # an empty run still draws


def test_in_flight_counts_overlaps():
    calls = [("a", "draft", 0.0, 2.0), ("b", "draft", 1.0, 2.0), ("c", "draft", 2.0, 1.0)]
    assert max(n for _, n in display.in_flight(calls)) == 2
    assert display.in_flight(calls)[-1] == (3.0, 0)


def test_batch_progress_without_widgets_collects_events_and_escapes(tmp_path: Path):
    topics = [EVIL, "Tidal power"]
    progress = display.BatchProgress(topics, max_iterations=1, widgets=False)
    with progress:
        batch = refine_kit.refine_batch(
            topics, max_iterations=1, output_dir=tmp_path, on_progress=progress
        )
    assert all(o.ok for o in batch.outcomes)
    assert all(row["status"] == "succeeded" for row in progress.state.values())
    markup = progress.to_html()
    _assert_escaped(markup)
    assert markup.count("succeeded") == 2


def test_batch_progress_names_steps_by_draft():
    progress = display.BatchProgress(["x"], widgets=False)
    progress(ProgressEvent(topic="x", kind="step", step="draft", iteration=0))
    assert progress.state["x"]["status"] == "writing the first draft"
    progress(ProgressEvent(topic="x", kind="step", step="revise", iteration=1))
    assert progress.state["x"]["status"] == "writing revision 1"
    progress(ProgressEvent(topic="x", kind="step", step="critique", iteration=1, score=7))
    assert progress.state["x"]["status"] == "critique of revision 1 (score 7)"
    progress(ProgressEvent(topic="x", kind="step", step="summary", iteration=1))
    assert progress.state["x"]["status"] == "summary of revision 1"


def test_batch_progress_survives_odd_events():
    progress = display.BatchProgress(["x"], widgets=False)
    progress(ProgressEvent(topic="unknown", kind="step", step="draft", iteration=0))
    progress(ProgressEvent(topic="x", kind="failed", message="<boom>"))
    markup = progress.to_html()
    assert "failed: &lt;boom&gt;" in markup and "unknown" in markup


def test_batch_progress_says_why_calls_are_held():
    """A wait for a rate limit is about the whole batch: shown above the rows, not as one."""
    progress = display.BatchProgress(["x"], widgets=False)
    why = "calls held 30 s for the requests-per-minute limit (2 RPM, stated) <now>"
    progress(ProgressEvent(topic="", kind="waiting", message=why))
    assert progress.notice == why and set(progress.state) == {"x"}
    assert (
        progress.to_html().startswith("<p>calls held 30 s") and "&lt;now&gt;" in progress.to_html()
    )


def test_widgets_are_off_outside_a_kernel_or_without_ipywidgets(monkeypatch: pytest.MonkeyPatch):
    assert display.BatchProgress(["x"]).widgets is False  # pytest is not a Jupyter kernel
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # as if not installed
    assert display._widgets_available() is False


def test_a_topic_with_dollar_signs_draws_as_text(batch: BatchResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outcome = batch.outcomes[0]
    assert outcome.result is not None
    priced = outcome.result.model_copy(update={"topic": "Costs of $x^2$ and $\\frac{1"})
    figure = display.plot_scores(priced)
    figure.canvas.draw()  # mathtext would raise on the unbalanced "$"
    renamed = batch.model_copy(
        update={"outcomes": [outcome.model_copy(update={"topic": "$\\frac{1 topic"})]}
    )
    display.plot_timeline(renamed).canvas.draw()
    plt.close("all")
