"""A run's state ends with the run: each opens and closes its own run context.

A notebook is run many times in one kernel; what a run leaves behind must be what is on
disk, so deleting an output folder (or calling `refine_kit.reset`) really starts clean.
What the kit keeps for the whole process on purpose is listed in the README ("Run state").
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import refine_kit
from refine_kit import context
from refine_kit.client import get_client
from refine_kit.offline.faults import FaultPlan
from refine_kit.offline.transport import offline_stats
from refine_kit.replay import CheckpointStore
from refine_kit.settings import Settings

FAST = {"offline_latency": 0, "client_backoff": 0, "retry_backoff": 0, "cache": False}
FAIL_FIRST_DRAFT = FaultPlan(step="draft", nth=1)


def test_a_deleted_output_folder_is_not_replayed_from_memory(tmp_path: Path, model_stats) -> None:
    out = tmp_path / "out"
    refine_kit.refine("District heating", output_dir=out, **FAST)
    refine_kit.reset(out)
    assert [p.name for p in out.rglob("*")] == [".refine_kit"]  # emptied, and marked as ours
    # Nothing to replay now: the first draft call reaches the model and fails for good.
    with pytest.raises(refine_kit.TopicFailed, match="injected"):
        refine_kit.refine(
            "District heating", output_dir=out, faults=FAIL_FIRST_DRAFT, task_retries=0, **FAST
        )


def test_every_run_counts_its_fault_plan_from_zero(tmp_path: Path, model_stats) -> None:
    for attempt in range(2):  # the same cell, run twice, teaches the same thing
        refine_kit.reset()
        result = refine_kit.refine(
            "Tidal power", output_dir=tmp_path / str(attempt), faults=FAIL_FIRST_DRAFT, **FAST
        )
        assert result.accounting.task_attempts == 2
        assert offline_stats.injected == {"hard": 1}


def test_reset_deletes_only_a_kit_run(tmp_path: Path, model_stats) -> None:
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("keep me")
    with pytest.raises(refine_kit.ConfigError, match="not a refine_kit run folder"):
        refine_kit.reset(mine)
    assert (mine / "thesis.txt").read_text() == "keep me"

    run = tmp_path / "run"
    refine_kit.refine("Urban beekeeping", output_dir=run, **FAST)
    assert model_stats.calls > 0
    refine_kit.reset(run)
    assert [p.name for p in run.rglob("*")] == [".refine_kit"] and model_stats.calls == 0
    nested = tmp_path / "never-made"
    refine_kit.reset(nested)  # made, and marked: runs in subfolders can follow
    refine_kit.refine("Urban beekeeping", output_dir=nested / "a", **FAST)
    (nested / "notes.txt").write_text("the notebook's own summary")
    refine_kit.reset(nested)
    assert [p.name for p in nested.rglob("*")] == [".refine_kit"]


def test_no_run_context_outlives_its_run(tmp_path: Path) -> None:
    """Every block gives back the context it found, and a run's client and store close with it.

    Checked inside one asyncio task, where a context left behind would be seen: Flyte runs
    each task in a task of its own (a copy of the context), so from outside a pipeline run a
    leaked context could never show.
    """
    config = Settings(offline_latency=0).llm_config()
    other = Settings(offline_latency=0, max_tokens=1000).llm_config()

    async def runs() -> None:
        assert context.current() is None
        store = CheckpointStore(tmp_path / "checkpoints.sqlite")
        async with context.run(config, store=store) as run:
            assert context.current() is run
            async with context.topic(config, "work") as attempt:  # a view of this run
                assert context.current() is attempt and attempt.resources is run.resources
                client = get_client(attempt)
            assert context.current() is run
            async with context.topic(other, "work") as own:  # another config: a run of its own
                assert context.current() is own and own.resources is not run.resources
                own_client = get_client(own)
            assert context.current() is run and own_client.is_closed()
            with refine_kit.llm_session(other):  # steps called by hand
                assert context.current() is not run
            assert context.current() is run
            assert not client.is_closed()
        assert context.current() is None
        assert client.is_closed() and run.resources.client is None
        with pytest.raises(sqlite3.ProgrammingError):  # closed: nothing of the run is left open
            store.get("any step")

    asyncio.run(runs())
    # A whole run, start to end, leaves none behind in the caller either.
    refine_kit.refine("Glaciers", output_dir=tmp_path / "out", **FAST)
    assert context.current() is None


def test_a_step_called_by_hand_opens_a_short_run_of_its_own(model_stats) -> None:
    step = asyncio.run(refine_kit.generate_initial_draft("Community gardens"))
    assert step.text.startswith("#") and step.call.requests == 1
    assert model_stats.calls == 1

    async def in_session() -> int:
        with refine_kit.llm_session(Settings(offline_latency=0).llm_config()):
            review = await refine_kit.critique_content(step.text)
        return review.critique.score

    assert 1 <= asyncio.run(in_session()) <= 10


def test_a_run_with_injected_faults_never_uses_the_cache(tmp_path: Path, model_stats) -> None:
    settings = {**FAST, "cache": True, "faults": FAIL_FIRST_DRAFT}
    for attempt in range(2):  # a failure demo must fail again, not come back from the cache
        batch = refine_kit.refine_batch(
            ["Sea level rise"], output_dir=tmp_path / str(attempt), **settings
        )
        assert not batch.outcomes[0].from_cache
        assert batch.accounting.task_attempts == 2
