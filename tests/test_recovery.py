"""Failure recovery: each layer absorbs its own faults, and no completed call is paid twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import refine_kit
from refine_kit.offline.faults import FaultPlan
from refine_kit.offline.transport import offline_stats
from refine_kit.replay import CheckpointStoreError
from refine_kit.tasks import CHECKPOINT_FILE

FAST = {"offline_latency": 0, "client_backoff": 0, "retry_backoff": 0, "cache": False}


def _chain(out: Path, topic: str) -> list[str]:
    result = refine_kit.refine(topic, output_dir=out, **FAST)
    return [c.step for c in result.calls]


def test_task_retry_pays_only_for_calls_that_had_not_completed(tmp_path: Path, model_stats) -> None:
    topic = "Retry replay: district heating"
    steps = _chain(tmp_path / "baseline", topic)
    n = len(steps)
    assert n >= 5
    for k in range(1, n + 1):  # fail call k of the chain, once, beyond the client's reach
        step = steps[k - 1]
        plan = FaultPlan(step=step, nth=steps[:k].count(step))
        model_stats.reset()
        result = refine_kit.refine(topic, output_dir=tmp_path / f"k{k}", faults=plan, **FAST)
        acc = result.accounting
        # Attempt 1 made k calls (the k-th failed); attempt 2 replayed k-1 and paid the rest.
        assert model_stats.calls == n + 1, k
        assert acc.requests_sent == n + 1 and acc.replayed == k - 1 and acc.task_attempts == 2
        assert [c.step for c in result.calls] == steps
        assert sum(c.replayed for c in result.calls) == k - 1


def test_rerun_after_a_failed_run_replays_from_the_store(tmp_path: Path, model_stats) -> None:
    topic = "Replay across runs: canal restoration"
    out = tmp_path / "out"
    plan = FaultPlan(step="revise", nth=1)
    failed = refine_kit.refine_batch([topic], output_dir=out, faults=plan, task_retries=0, **FAST)
    outcome = failed.outcomes[0]
    assert outcome.status == "failed" and "answered HTTP 500" in outcome.error
    paid_before = model_stats.calls  # draft, critique and the failed revise
    assert paid_before == 3
    model_stats.reset()
    again = refine_kit.refine(topic, output_dir=out, **FAST)
    assert again.accounting.replayed == 2 and model_stats.calls == len(again.calls) - 2
    # fresh=True ignores the store and pays for everything.
    model_stats.reset()
    fresh = refine_kit.refine(topic, output_dir=out, fresh=True, **FAST)
    assert fresh.accounting.replayed == 0 and model_stats.calls == len(fresh.calls)


def test_transient_http_faults_are_absorbed_by_the_client(tmp_path: Path, model_stats) -> None:
    plan = FaultPlan(rate=0.3, kinds=("429", "500", "503", "drop"), seed=11)
    topics = [f"Client retries {i}" for i in range(6)]
    batch = refine_kit.refine_batch(
        topics, output_dir=tmp_path, faults=plan, client_max_retries=5, **FAST
    )
    acc = batch.accounting
    assert len(batch.succeeded) == 6
    assert acc.client_retries > 0 and acc.reasks == 0 and acc.task_attempts == 6
    assert acc.requests_sent == model_stats.calls


def test_slow_responses_time_out_and_are_retried(tmp_path: Path, model_stats) -> None:
    # Enough calls that some are slow whatever the text, and a budget that absorbs them.
    plan = FaultPlan(rate=0.25, kinds=("slow",), slow_seconds=5, seed=2)
    topics = [f"Timeouts {i}: coastal erosion" for i in range(4)]
    batch = refine_kit.refine_batch(
        topics,
        output_dir=tmp_path,
        faults=plan,
        request_timeout=0.05,
        client_max_retries=5,
        **FAST,
    )
    assert len(batch.succeeded) == 4, [o.error for o in batch.failed]
    assert model_stats.injected.get("slow", 0) > 0
    assert batch.accounting.client_retries == model_stats.injected["slow"]
    assert batch.accounting.task_attempts == 4


def test_a_broken_critique_is_fixed_by_a_re_ask(tmp_path: Path, model_stats) -> None:
    for kind in ("bad_json", "bad_critique"):
        model_stats.reset()
        plan = FaultPlan(rate=0.3, kinds=(kind,), seed=5)
        # Enough critiques that some break whatever the text, and a re-ask budget to match.
        topics = [f"Re-ask {kind} {i}" for i in range(3)]
        batch = refine_kit.refine_batch(
            topics, output_dir=tmp_path / kind, faults=plan, reasks=5, **FAST
        )
        assert len(batch.succeeded) == 3, [o.error for o in batch.failed]
        acc = batch.accounting
        assert acc.reasks == model_stats.injected.get(kind, 0) > 0, kind
        assert acc.task_attempts == 3 and acc.client_retries == 0, kind
        calls = sum(len(o.result.calls) for o in batch.succeeded if o.result)
        assert acc.requests_sent == model_stats.calls == calls + acc.reasks


def test_fault_soak_every_topic_finishes_and_the_accounting_adds_up(
    tmp_path: Path, model_stats
) -> None:
    plan = FaultPlan(rate=0.2, seed=43, slow_seconds=5)
    topics = [f"Soak topic {i}: supply chains" for i in range(50)]
    batch = refine_kit.refine_batch(
        topics,
        output_dir=tmp_path,
        faults=plan,
        request_timeout=0.05,
        # One budget per call (no task retry repeats it): sized for a 20% fault rate.
        client_max_retries=6,
        reasks=4,
        **FAST,
    )
    assert len(batch.succeeded) == 50, [o.error for o in batch.failed]
    acc = batch.accounting
    assert acc.requests_sent == model_stats.calls
    assert acc.client_retries > 0 and acc.reasks > 0
    injected = offline_stats.injected
    assert set(injected) == {"429", "500", "503", "drop", "slow", "bad_json", "bad_critique"}


def test_a_damaged_store_is_reported_not_trusted(tmp_path: Path, model_stats) -> None:
    out = tmp_path / "out"
    store = out / CHECKPOINT_FILE
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CheckpointStoreError, match="unreadable.*fresh=True"):
        refine_kit.refine("Damaged store", output_dir=out, **FAST)
    assert model_stats.calls == 0

    # A tampered record fails its checksum: the topic fails clearly instead of using it.
    out2 = tmp_path / "out2"
    refine_kit.refine("Tampered store", output_dir=out2, **FAST)
    with sqlite3.connect(out2 / CHECKPOINT_FILE) as db:
        db.execute("UPDATE steps SET payload = replace(payload, 'a', 'b') WHERE position = 0")
    batch = refine_kit.refine_batch(["Tampered store"], output_dir=out2, **FAST)
    assert batch.outcomes[0].status == "failed" and "checksum" in batch.outcomes[0].error
