"""The notebook display helpers, on real results from offline runs.

They must escape user and model text (a topic is rendered in several places), draw what
their docstrings promise, and degrade to static HTML when widgets cannot be shown.
"""

from __future__ import annotations

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


def test_critique_table_has_one_row_per_scored_draft(result: RefineResult):
    markup = _markup(display.critique_table(result))
    assert markup.count("<tr>") == len(result.iterations) + 1  # plus the header row
    for it in result.iterations:
        assert f"<td {display._CELL}>{it.score}</td>" in markup


def test_revision_diff_marks_additions_and_handles_missing_drafts(result: RefineResult):
    assert len(result.drafts) == len(result.iterations) >= 2
    markup = _markup(display.revision_diff(result, 0, len(result.drafts) - 1))
    assert markup.count("<h4>") == 1 and "<ins" in markup
    pairs = _markup(display.revision_diff(result))
    assert pairs.count("<h4>") == len(result.drafts) - 1
    bare = result.model_copy(update={"drafts": []})
    assert "No revision to compare" in _markup(display.revision_diff(bare))


def test_diff_html_counts_words_and_escapes():
    markup = display.diff_html("a <b> c", "a <b> d e")
    assert "(+2 / -1 words)" in markup
    assert "&lt;b&gt;" in markup and "<b>" not in markup


def test_accounting_table_for_result_and_batch(result: RefineResult, batch: BatchResult):
    one = _markup(display.accounting_table(result))
    assert f"<td {display._CELL}>{result.accounting.requests_sent}</td>" in one
    total = _markup(display.accounting_table(batch))
    assert f"<td {display._CELL}>{batch.accounting.requests_sent}</td>" in total


def test_plot_scores_draws_scores_threshold_and_best(result: RefineResult):
    fig = display.plot_scores(result)
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


def test_batch_progress_survives_odd_events():
    progress = display.BatchProgress(["x"], widgets=False)
    progress(ProgressEvent(topic="unknown", kind="step", step="draft", iteration=0))
    progress(ProgressEvent(topic="x", kind="failed", message="<boom>"))
    markup = progress.to_html()
    assert "failed: &lt;boom&gt;" in markup and "unknown" in markup


def test_widgets_are_off_outside_a_kernel_or_without_ipywidgets(monkeypatch: pytest.MonkeyPatch):
    assert display.BatchProgress(["x"]).widgets is False  # pytest is not a Jupyter kernel
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # as if not installed
    assert display._widgets_available() is False
