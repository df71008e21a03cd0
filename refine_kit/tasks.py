"""The Flyte tasks: orchestration only (no prompt text, no HTTP).

`refine_report` runs one topic's generate -> critique -> revise ... -> summarise chain in
`llm_env`; `format_outputs` writes its files; `report_batch_pipeline` fans topics out from
`driver_env` under an in-flight limit and keeps going when a topic fails for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import flyte
from flyte.errors import NonRecoverableError

from refine_kit import accounting, context, loop, outputs, progress, replay
from refine_kit.cache import cache_policy, cache_version
from refine_kit.envs import driver_env as driver_env  # re-exported: the environments with
from refine_kit.envs import llm_env as llm_env  # their tasks (see refine_kit/__init__.py)
from refine_kit.errors import ConfigError, PermanentError
from refine_kit.models import (
    Accounting,
    BatchResult,
    RefineResult,
    TopicOutcome,
    Usage,
)
from refine_kit.redaction import one_line
from refine_kit.settings import (
    LLMConfig,
    RunOptions,
    Settings,
    check_setting,
    default,
    validate_topic,
    validate_topics,
)
from refine_kit.traced import (
    critique_content,
    generate_initial_draft,
    generate_summary,
    revise_content,
)

#: The loop's steps in a task: each a traced, checkpointed LLM call.
TRACED_STEPS = loop.Steps(
    draft=generate_initial_draft,
    critique=critique_content,
    revise=revise_content,
    summary=generate_summary,
)

#: Where a batch keeps its local checkpoints, inside its output folder.
CHECKPOINT_FILE = Path(".refine_kit") / replay.STORE_NAME


@llm_env.task(retries=default("task_retries"))
async def refine_report(
    topic: str,
    max_iterations: int = default("max_iterations"),
    quality_threshold: int = default("quality_threshold"),
    config: LLMConfig | None = None,
) -> RefineResult:
    """Draft, then critique and revise until the score reaches the threshold, then summarise.

    The loop itself is `loop.refine_loop`; this task gives it the traced steps, a
    `flyte.group` per round (so the Flyte UI shows a topic's calls in the rounds the
    notebooks teach), progress events, retries, the cache and the accounting.
    """
    started = time.time()
    try:
        topic = validate_topic(topic)
        check_setting("max_iterations", max_iterations)
        check_setting("quality_threshold", quality_threshold)
        config = config or Settings().llm_config()
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None

    run_name = context.run_name()
    work = topic_work_key(topic, max_iterations, quality_threshold, config)

    def on_step(step: str, iteration: int, score: int | None) -> None:
        progress.publish(topic, "step", step=step, iteration=iteration, score=score)

    async with context.topic(config, work) as ctx, permanent_failures_not_retried():
        outcome = await loop.refine_loop(
            topic,
            TRACED_STEPS,
            max_iterations=max_iterations,
            quality_threshold=quality_threshold,
            round_scope=flyte.group,
            on_step=on_step,
        )

    total = Usage()
    for call in outcome.calls:
        total += call.usage
    best = outcome.best
    return RefineResult(
        topic=topic,
        report=outcome.drafts[best],
        summary=outcome.summary,
        score=outcome.iterations[best].score,
        best_iteration=best,
        stop_reason=outcome.stop_reason,
        quality_threshold=quality_threshold,
        max_iterations=max_iterations,
        iterations=outcome.iterations,
        drafts=outcome.drafts,
        calls=outcome.calls,
        usage=total,
        accounting=accounting.summarise(outcome.calls, ctx.ledger),
        seconds=time.time() - started,
        model=config.model,
        backend=config.backend,
        endpoint=config.endpoint_url,
        run_name=run_name,
    )


@llm_env.task(cache="disable")
async def format_outputs(result: RefineResult, output_dir: str) -> str:
    """Write the topic's report.md, report.html, summary.md and record.json; return the folder."""
    return str(outputs.write_topic_outputs(result, Path(output_dir)))


@driver_env.task
async def report_batch_pipeline(
    topics: list[str],
    max_iterations: int = default("max_iterations"),
    quality_threshold: int = default("quality_threshold"),
    options: RunOptions | None = None,
) -> BatchResult:
    """Refine every topic concurrently, never more than `max_concurrency` LLM calls in flight.

    Locally (where Flyte applies no limit of its own) one gate admits every LLM call, so
    topics interleave freely and the call slots stay busy. On a cluster, topics run in
    other containers; each makes its calls one after another, so bounding the topics in
    flight bounds the calls. A topic that fails for good is reported with its error; the
    others carry on. The whole fan-out is one `flyte.group` in the Flyte UI.
    """
    started = time.time()
    try:
        topics = validate_topics(topics)
        check_setting("max_iterations", max_iterations)
        check_setting("quality_threshold", quality_threshold)
        options = options or RunOptions.from_settings(Settings())
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None

    task = configured_refine_task(options)
    # Locally every call passes one shared gate, so topics may overlap more than calls do:
    # twice the limit keeps every call slot busy without starting all topics at once.
    # On a cluster, topics run in other containers and the topic gate is the limit.
    local = context.is_local()
    gate = asyncio.Semaphore(options.max_concurrency * (2 if local else 1))
    # No output_dir on a cluster: the pod's disk is not the user's, the client writes files.
    root = Path(options.output_dir) if options.output_dir else None
    this_run = context.run_name()

    def failed(topic: str, error: str, spent: Accounting) -> TopicOutcome:
        folder = None
        if root:
            with contextlib.suppress(OSError):  # a full disk: the manifest still says why
                folder = str(outputs.write_failure_record(topic, error, root, spent))
        progress.publish(topic, "failed", message=error)
        return TopicOutcome(topic=topic, status="failed", error=error, folder=folder, spent=spent)

    finished: dict[str, TopicOutcome] = {}  # as topics end: what a stopped batch still has

    async def one(topic: str) -> TopicOutcome:
        outcome = await attempt(topic)
        finished[topic] = outcome
        return outcome

    async def attempt(topic: str) -> TopicOutcome:
        async with gate:
            progress.publish(topic, "started")
            try:
                result = await task(topic, max_iterations, quality_threshold, options.llm)
            except Exception as exc:  # noqa: BLE001 - one topic's failure must not stop the rest
                spent = _spent(topic, max_iterations, quality_threshold, options)
                return failed(topic, describe_error(exc), spent)
        from_cache = result.run_name != this_run
        result = accounting.price(result, from_cache, options.prices)
        try:
            folder = await format_outputs(result, str(root)) if root else None
        except Exception as exc:  # noqa: BLE001 - a full disk fails this topic, not the batch
            return failed(
                topic, f"could not write its files: {describe_error(exc)}", result.accounting
            )
        progress.publish(topic, "succeeded", score=result.score)
        return TopicOutcome(
            topic=topic, status="succeeded", result=result, folder=folder, from_cache=from_cache
        )

    for topic in topics:
        progress.publish(topic, "queued")
    # Replay is local only: on a cluster, Flyte replays traced calls itself.
    store = replay.CheckpointStore(root / CHECKPOINT_FILE) if root and local else None
    async with context.run(
        options.llm, max_in_flight=options.max_concurrency, store=store, fresh=options.fresh
    ):
        try:
            with flyte.group("fan-out"):
                outcomes = list(await asyncio.gather(*(one(t) for t in topics)))
        except asyncio.CancelledError:  # Ctrl-C: what finished is kept, with a manifest
            if root is not None:
                stopped = [
                    finished.get(t) or _interrupted(t, max_iterations, quality_threshold, options)
                    for t in topics
                ]
                settings = _batch_settings(max_iterations, quality_threshold, options)
                seconds = time.time() - started
                outputs.write_manifest(
                    stopped, root, seconds=seconds, max_concurrency=options.max_concurrency,
                    settings=settings,
                )  # fmt: skip
            progress.publish("", "stopped")
            raise
    seconds = time.time() - started
    batch = BatchResult(
        outcomes=outcomes,
        output_dir=str(root or ""),
        manifest="",
        seconds=seconds,
        max_concurrency=options.max_concurrency,
        settings=_batch_settings(max_iterations, quality_threshold, options),
    )
    if root is None:
        return batch
    manifest = outputs.write_manifest(
        outcomes,
        root,
        seconds=seconds,
        max_concurrency=options.max_concurrency,
        settings=batch.settings,
    )
    return batch.model_copy(update={"manifest": str(manifest)})


def _batch_settings(
    max_iterations: int, quality_threshold: int, options: RunOptions
) -> dict[str, object]:
    """What the batch ran with, as the manifest records it (nothing secret)."""
    return {
        "max_iterations": max_iterations,
        "quality_threshold": quality_threshold,
        **options.llm.applied(),
        "endpoint": options.llm.endpoint_url,
        "cache": options.cache,
        "fresh": options.fresh,
    }


def _interrupted(
    topic: str, max_iterations: int, quality_threshold: int, options: RunOptions
) -> TopicOutcome:
    """A topic the batch was stopped before it finished: what it spent, what a rerun keeps."""
    spent = _spent(topic, max_iterations, quality_threshold, options)
    ctx = context.current()
    work = topic_work_key(topic, max_iterations, quality_threshold, options.llm)
    saved = ctx.store.saved_steps(work) if ctx is not None and ctx.store is not None else 0
    note = f"stopped before it finished; {saved} step{'s' if saved != 1 else ''} saved"
    if saved and not options.fresh:
        note += " (a rerun replays them)"
    return TopicOutcome(
        topic=topic, status="interrupted", error=note, spent=spent, saved_steps=saved
    )


@asynccontextmanager
async def permanent_failures_not_retried() -> AsyncIterator[None]:
    """Hand a `PermanentError` to Flyte as `NonRecoverableError`, keeping its class name.

    Its layer already spent the retry budget (or no retry can help), so a task retry
    would only repeat the same requests.
    """
    try:
        yield
    except PermanentError as exc:
        raise NonRecoverableError(str(exc), code=type(exc).__name__) from None


def configured_refine_task(options: RunOptions) -> flyte.TaskTemplate[..., Any, Any]:
    """`refine_report` with this run's retry policy and a cache version for the live code."""
    backoff = timedelta(seconds=options.retry_backoff)
    retries = flyte.RetryStrategy(
        count=options.task_retries,
        backoff=flyte.Backoff(base=backoff, factor=2.0, cap=max(backoff * 8, timedelta(0))),
    )
    cache = cache_policy(options.cache, refresh=options.refresh_cache)
    return refine_report.override(retries=retries, cache=cache)


def topic_work_key(
    topic: str, max_iterations: int, quality_threshold: int, config: LLMConfig
) -> str:
    """What identifies a topic's chain of calls for replay: everything that changes them.

    How calls are made (latency, timeouts, retries, injected faults) is left out, so a run
    started again after a crash, without the fault that caused it, still finds its steps.
    """
    identity = config.model_dump(include={"backend", "model", "base_url", "max_tokens"})
    return replay.work_key(topic, max_iterations, quality_threshold, identity, cache_version())


def _spent(
    topic: str, max_iterations: int, quality_threshold: int, options: RunOptions
) -> Accounting:
    """A failed topic's costs, from its ledger in this run (locally; a pod's is lost with it)."""
    ctx = context.current()
    work = topic_work_key(topic, max_iterations, quality_threshold, options.llm)
    ledger = ctx.resources.ledgers.get(work) if ctx is not None else None
    llm = options.llm
    return accounting.spent_before_failing(ledger, llm.model, options.prices, llm.endpoint_url)


def describe_error(exc: BaseException) -> str:
    """One line a user can act on, secrets removed. Flyte wraps task errors; keep the class."""
    code = getattr(exc, "code", None)
    message = one_line(exc) or type(exc).__name__
    return f"{code}: {message}" if code and code not in message else message
