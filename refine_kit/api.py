"""One-call entry points for notebooks and scripts: `refine` and `refine_batch`.

They validate everything first (so bad input fails before any LLM call), start Flyte
quietly, run the pipeline with `flyte.run` and hand back the result objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flyte

from refine_kit import progress, replay
from refine_kit.errors import RefineKitError
from refine_kit.models import BatchResult, RefineResult
from refine_kit.settings import RunOptions, Settings, load_settings, validate_topic, validate_topics
from refine_kit.tasks import CHECKPOINT_FILE, report_batch_pipeline

_initialised_verbose: bool | None = None


class TopicFailed(RefineKitError):
    """`refine` could not produce a report for its topic, even after retries."""


def init_flyte(verbose: bool = False) -> None:
    """Start Flyte for local runs, with its log noise off unless `verbose`.

    Called by the entry points; call it yourself only to change verbosity mid-session.
    """
    global _initialised_verbose
    if _initialised_verbose == verbose:
        return
    flyte.init(log_level=logging.INFO if verbose else logging.CRITICAL)
    _initialised_verbose = verbose


def refine_batch(
    topics: Sequence[str],
    *,
    settings: Settings | None = None,
    on_progress: progress.Listener | None = None,
    **overrides: Any,
) -> BatchResult:
    """Refine a batch of topics and write their files; one failing topic does not stop the rest.

    `overrides` are any `Settings` fields (max_iterations=2, quality_threshold=9, cache=False,
    output_dir="out", ...). `on_progress` receives a `ProgressEvent` as each topic moves on.
    """
    resolved = load_settings(settings, **overrides)
    clean = validate_topics(topics)
    options = RunOptions.from_settings(resolved)
    replay.open_store(Path(options.output_dir) / CHECKPOINT_FILE)  # a damaged store fails here
    init_flyte(resolved.verbose)
    with progress.listening(on_progress):
        run = _runner(resolved).run(
            report_batch_pipeline,
            topics=clean,
            max_iterations=resolved.max_iterations,
            quality_threshold=resolved.quality_threshold,
            options=options,
        )
        return run.outputs()[0]


def refine(
    topic: str,
    *,
    settings: Settings | None = None,
    on_progress: progress.Listener | None = None,
    **overrides: Any,
) -> RefineResult:
    """Refine one topic, write its files, and return its result (raises `TopicFailed`)."""
    clean = validate_topic(topic)
    batch = refine_batch([clean], settings=settings, on_progress=on_progress, **overrides)
    outcome = batch.outcomes[0]
    if outcome.result is None:
        raise TopicFailed(f"{clean!r} failed: {outcome.error}")
    return outcome.result


def _runner(settings: Settings) -> Any:
    """A run context, without Flyte's run cache when caching is off (or a fresh run)."""
    return flyte.with_runcontext(disable_run_cache=not settings.cache or settings.fresh)
