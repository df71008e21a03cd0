"""The pipeline end to end, through real local Flyte runs and the offline model."""

from __future__ import annotations

import json
from pathlib import Path

import flyte
import pytest

import refine_kit
from refine_kit import prompts
from refine_kit.offline import transport as offline_transport
from refine_kit.outputs import read_record, topic_folder_name
from refine_kit.settings import LLMConfig


def test_refine_scores_every_draft_and_returns_the_best(out_dir: Path, model_stats) -> None:
    result = refine_kit.refine(
        "Heat pumps in cold climates", output_dir=out_dir, quality_threshold=10, max_iterations=2
    )
    revisions = len(result.iterations) - 1
    assert revisions == 2 and result.stop_reason == "max_iterations"
    # The revision made on the last iteration was critiqued too: every draft has a score.
    assert [it.index for it in result.iterations] == [0, 1, 2]
    assert len(result.drafts) == 3 and result.report == result.drafts[result.best_iteration]
    steps = [c.step for c in result.calls]
    assert steps == ["draft", "critique", "revise", "critique", "revise", "critique", "summary"]
    # Counted at the model: one request per traced call, nothing hidden.
    assert model_stats.calls == len(result.calls) == result.requests_sent
    best = max(range(3), key=lambda i: (result.iterations[i].score, i))
    assert result.best_iteration == best and result.score == result.iterations[best].score
    assert result.usage.total_tokens == sum(c.usage.total_tokens for c in result.calls) > 0
    assert result.usage.total_tokens == model_stats.prompt_tokens + model_stats.completion_tokens
    assert result.backend == "offline" and result.model == "refine-kit-offline"
    assert "heat pump" in result.report.lower() and result.summary


def test_scores_rise_across_iterations(out_dir: Path) -> None:
    result = refine_kit.refine(
        "Community solar gardens", output_dir=out_dir, quality_threshold=10, max_iterations=3
    )
    scores = result.scores
    assert scores == sorted(scores), scores
    assert scores[-1] > scores[0]
    assert result.report == result.report.strip() and "[REVISED]" not in result.report


def test_threshold_changes_the_number_of_iterations(out_dir: Path) -> None:
    topics = ["Urban beekeeping", "Microplastics in drinking water", "Tidal power"]
    low = refine_kit.refine_batch(topics, output_dir=out_dir / "low", quality_threshold=6)
    high = refine_kit.refine_batch(topics, output_dir=out_dir / "high", quality_threshold=9)
    low_its = [len(o.result.iterations) for o in low.outcomes]
    high_its = [len(o.result.iterations) for o in high.outcomes]
    assert all(a <= b for a, b in zip(low_its, high_its, strict=True))
    assert sum(high_its) > sum(low_its)
    for outcome in low.outcomes:
        assert outcome.result.stop_reason == "threshold" and outcome.result.score >= 6


def test_batch_writes_every_file_and_a_manifest(out_dir: Path) -> None:
    topics = ["Rainwater harvesting", "Café culture in Vienna / Wien", "../escape attempt"]
    batch = refine_kit.refine_batch(topics, output_dir=out_dir)
    assert [o.topic for o in batch.outcomes] == topics
    for outcome in batch.outcomes:
        folder = Path(outcome.folder)
        assert folder.parent == out_dir and folder.name == topic_folder_name(outcome.topic)
        for name in ("report.md", "report.html", "summary.md", "record.json"):
            assert (folder / name).stat().st_size > 0
        record = read_record(folder)
        assert record["status"] == "succeeded" and record["score"] == outcome.result.score
        assert "<h1>" in (folder / "report.html").read_text()
    manifest = json.loads(Path(batch.manifest).read_text())
    assert manifest["counts"] == {"topics": 3, "succeeded": 3, "failed": 0}
    # No temp files left behind; the only hidden entry is the checkpoint store.
    assert [p.name for p in out_dir.glob(".*")] == [".refine_kit"]
    assert not [p for o in batch.outcomes for p in Path(o.folder).glob(".*")]


def test_cache_serves_unchanged_rerun_and_misses_on_any_change(
    out_dir: Path, model_stats, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = ["Cache check: wind", "Cache check: tides"]
    first = refine_kit.refine_batch(topics, output_dir=out_dir)
    paid = model_stats.calls
    assert paid == first.requests_sent > 0 and not any(o.from_cache for o in first.outcomes)

    model_stats.reset()
    again = refine_kit.refine_batch(topics, output_dir=out_dir)
    assert model_stats.calls == 0 and all(o.from_cache for o in again.outcomes)
    assert again.requests_sent == 0
    assert [o.result.report for o in again.outcomes] == [o.result.report for o in first.outcomes]

    # A setting that changes the work: fresh results.
    refine_kit.refine_batch(topics, output_dir=out_dir, max_iterations=1)
    assert model_stats.calls > 0

    # A prompt edit: fresh results (Flyte's own key would not see it).
    model_stats.reset()
    monkeypatch.setattr(
        prompts, "SUMMARY_SYSTEM_PROMPT", prompts.SUMMARY_SYSTEM_PROMPT + " Be brief."
    )
    refine_kit.refine_batch(topics, output_dir=out_dir)
    assert model_stats.calls == paid

    # Caching off: the run cache is skipped, and every step comes back from checkpoints.
    model_stats.reset()
    off = refine_kit.refine_batch(topics, output_dir=out_dir, cache=False)
    assert model_stats.calls == 0 and not any(o.from_cache for o in off.outcomes)
    assert all(o.result.accounting.replayed == len(o.result.calls) for o in off.outcomes)

    # fresh=True: no cache, no replay, every call paid again.
    model_stats.reset()
    refine_kit.refine_batch(topics, output_dir=out_dir, fresh=True)
    assert model_stats.calls == paid


def test_failing_topic_leaves_the_others_complete(
    out_dir: Path, model_stats, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = offline_transport.run_offline_chat

    def broken_for_one_topic(model, body):
        if any("Doomed topic" in m["content"] for m in body["messages"]):
            raise RuntimeError("model exploded")
        return real(model, body)

    monkeypatch.setattr(offline_transport, "run_offline_chat", broken_for_one_topic)
    topics = ["Doomed topic", "Survivor one", "Survivor two"]
    batch = refine_kit.refine_batch(topics, output_dir=out_dir, cache=False, task_retries=1)
    statuses = {o.topic: o.status for o in batch.outcomes}
    assert statuses == {
        "Doomed topic": "failed",
        "Survivor one": "succeeded",
        "Survivor two": "succeeded",
    }
    doomed = batch.outcomes[0]
    assert "model exploded" in doomed.error
    assert read_record(Path(doomed.folder))["status"] == "failed"
    for outcome in batch.succeeded:
        assert (Path(outcome.folder) / "report.md").read_text().strip() == outcome.result.report
    manifest = json.loads(Path(batch.manifest).read_text())
    assert manifest["counts"]["failed"] == 1


def test_in_flight_limit_is_never_exceeded(out_dir: Path, model_stats) -> None:
    topics = [f"Concurrency topic {i}" for i in range(12)]
    batch = refine_kit.refine_batch(
        topics, output_dir=out_dir, max_concurrency=3, offline_latency=0.01, cache=False
    )
    assert len(batch.succeeded) == 12
    assert model_stats.max_in_flight == 3  # reached, and never more


def test_refine_report_runs_as_a_task_on_its_own(model_stats) -> None:
    refine_kit.init_flyte()
    config = LLMConfig(backend="offline", model="refine-kit-offline")
    run = flyte.with_runcontext(disable_run_cache=True).run(
        refine_kit.refine_report, topic="Glaciers", max_iterations=1, config=config
    )
    result = run.outputs()[0]
    assert isinstance(result, refine_kit.RefineResult)
    assert result.run_name and model_stats.calls == result.requests_sent


def test_missing_key_for_a_real_endpoint_is_one_clear_error(monkeypatch, model_stats) -> None:
    with pytest.raises(refine_kit.ConfigError, match="OPENAI_API_KEY"):
        refine_kit.refine("Anything", backend="openai")
    # Inside the task (e.g. a cluster without the secret): not retried, clearly worded.
    refine_kit.init_flyte()
    config = LLMConfig(backend="openai", model="gpt-4o-mini")
    with pytest.raises(Exception, match="No API key") as info:
        flyte.with_runcontext(disable_run_cache=True).run(
            refine_kit.refine_report, topic="Anything", config=config
        )
    assert getattr(info.value, "code", "") == "EndpointError"  # a NonRecoverableError: no retry
    assert model_stats.calls == 0
