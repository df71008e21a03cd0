"""One-call entry points for notebooks and scripts: `refine` and `refine_batch`.

They validate everything first (so bad input fails before any LLM call), start Flyte
quietly, run the pipeline with `flyte.run` and hand back the result objects.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flyte
from filelock import FileLock, Timeout
from typing_extensions import TypedDict, Unpack

from refine_kit import connection, endpoint, notices, outputs, progress, replay
from refine_kit.errors import ConfigError, RefineKitError
from refine_kit.models import BatchResult, RefineResult
from refine_kit.offline.faults import FaultPlan
from refine_kit.setting_docs import shows_settings
from refine_kit.settings import (
    Backend,
    RunOptions,
    Settings,
    load_settings,
    validate_topic,
    validate_topics,
)
from refine_kit.tasks import CHECKPOINT_FILE, report_batch_pipeline


class TopicFailed(RefineKitError):
    """`refine` could not produce a report for its topic, even after retries."""


class BatchInterrupted(KeyboardInterrupt):
    """The batch was stopped (Ctrl-C, or a notebook's interrupt) before every topic finished.

    What finished is on disk with a manifest, and `batch` holds it; topics that were stopped
    have the status "interrupted". Running the same batch again replays their saved steps.
    """

    def __init__(self, batch: BatchResult) -> None:
        done = len(batch.outcomes) - len(batch.interrupted)
        super().__init__(
            f"stopped: {done} of {len(batch.outcomes)} topics finished; files and "
            f"manifest.json in {batch.output_dir}"
        )
        self.batch = batch


def init_flyte(verbose: bool = False, cluster: str | None = None) -> None:
    """Start Flyte locally, or connect it to a cluster, with its log noise off unless `verbose`.

    Called by the entry points; call it yourself only to change verbosity mid-session.
    """
    if cluster is None:
        connection.connect_local(verbose=verbose)
    else:
        connection.connect(cluster, verbose=verbose)


@dataclass
class Submission:
    """A batch handed to Flyte. Local runs have finished already; remote ones are running."""

    run: Any
    remote: bool
    dry_run: bool
    output_dir: Path

    @property
    def url(self) -> str | None:
        """Where to watch the run in the Flyte UI (remote runs)."""
        url = getattr(self.run, "url", None)
        link = re.search(r"\[link=([^\]]+)\]", url or "")
        return link.group(1) if link else url

    def result(self) -> BatchResult:
        """Wait for the batch; for a remote run, write its files here as a local run would."""
        if self.dry_run:
            raise RefineKitError("a dry run submits nothing, so it has no result")
        if not self.remote:
            batch: BatchResult = self.run.outputs()[0]
            return batch
        self.run.wait(quiet=True)
        return outputs.write_batch(self.run.outputs()[0], self.output_dir)


class SettingKeywords(TypedDict, total=False):
    """The settings as keyword arguments of `refine`, `refine_batch` and `submit_batch`.

    Why a list written out: type checkers and editors read types without running code, so
    they cannot see `SettingFields`. This one list serves all three functions through
    `**overrides: Unpack[SettingKeywords]` (so `refine(..., quality_threshold="x")` is a
    type error), and `shows_settings` gives them the same keywords at run time, for
    `inspect.signature` (JupyterLab's Shift-Tab, `help()`). tests/test_architecture.py
    fails when it and `SettingFields` differ. None means "not given": the `REFINE_KIT_*`
    variable, or else the default, applies.
    """

    backend: Backend | None
    model: str | None
    base_url: str | None
    max_iterations: int | None
    quality_threshold: int | None
    max_concurrency: int | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    max_tokens: int | None
    request_timeout: float | None
    client_max_retries: int | None
    client_backoff: float | None
    reasks: int | None
    task_retries: int | None
    retry_backoff: float | None
    output_dir: str | Path | None
    cache: bool | None
    refresh_cache: bool | None
    fresh: bool | None
    prices: dict[str, tuple[float, float]] | None
    offline_latency: float | None
    faults: FaultPlan | None
    verbose: bool | None
    cluster: str | None


@shows_settings(SettingKeywords, strict=False)  # an unknown setting: a ConfigError naming it
def submit_batch(
    topics: Sequence[str],
    *,
    settings: Settings | None = None,
    on_progress: progress.Listener | None = None,
    dry_run: bool = False,
    **overrides: Unpack[SettingKeywords],
) -> Submission:
    """Validate, connect and hand the batch to Flyte; `refine_batch` is this plus `.result()`.

    The settings are keywords, as for `refine_batch`. With `cluster` set the batch
    runs on that Flyte cluster; `dry_run=True` then serialises everything a cluster would
    receive without contacting one.
    """
    resolved = load_settings(settings, **overrides)
    clean = validate_topics(topics)
    options = RunOptions.from_settings(resolved)
    remote = resolved.cluster is not None
    if dry_run and not remote:
        raise ConfigError("dry_run: only a cluster run can be a dry run; set cluster=...")
    # Before the first call, say where the calls will go (and so what they may cost).
    notices.say(_where(len(clean), options, dry_run))
    lock: FileLock | None = None
    if not remote:
        folder = Path(resolved.output_dir)
        _check_writable(folder)
        lock = _claim(folder)
    try:
        if not remote:
            # A damaged store fails here, before any call (with fresh=True it is set aside).
            replay.check_store(folder / CHECKPOINT_FILE, fresh=resolved.fresh)
        return _submit(clean, resolved, options, on_progress, dry_run)
    finally:
        if lock is not None:
            lock.release()  # a local run has finished by now


def _where(topics: int, options: RunOptions, dry_run: bool) -> str:
    """Where a run's calls go, or for a dry run, that nothing goes anywhere."""
    count = f"{topics} topic{'s' if topics != 1 else ''}"
    if dry_run:
        return (
            f"dry run of {count} for the cluster: serialised here, nothing sent "
            f"(a real run would call {options.llm.describe()})"
        )
    return f"{count} on {options.llm.describe()}"


def _submit(
    clean: list[str],
    resolved: Settings,
    options: RunOptions,
    on_progress: progress.Listener | None,
    dry_run: bool,
) -> Submission:
    remote = resolved.cluster is not None
    if not remote:
        init_flyte(resolved.verbose)
    elif dry_run:
        # A config file is read as for a real run (Flyte connects lazily); "auto" may find
        # none, so it serialises against a placeholder endpoint instead.
        if resolved.cluster == "auto":
            connection.connect_dry_run()
        else:
            connection.connect(str(resolved.cluster), verbose=resolved.verbose)
    else:
        init_flyte(resolved.verbose, resolved.cluster)
    runner = flyte.with_runcontext(
        mode="remote" if remote else "local",
        dry_run=dry_run,
        disable_run_cache=not resolved.uses_cache,
    )
    inputs = {
        "topics": clean,
        "max_iterations": resolved.max_iterations,
        "quality_threshold": resolved.quality_threshold,
        "options": options,
    }
    with progress.listening(on_progress):
        if remote:
            run = runner.run(report_batch_pipeline, **inputs)
        else:
            run = _run_here(runner, inputs, Path(resolved.output_dir))
    return Submission(run=run, remote=remote, dry_run=dry_run, output_dir=resolved.output_dir)


#: Seconds to wait, after a Ctrl-C, for the batch to write what finished.
STOP_WAIT = 30.0


def _run_here(runner: Any, inputs: dict[str, Any], output_dir: Path) -> Any:
    """Run the batch in this process, so that Ctrl-C stops it cleanly.

    `flyte.run` waits for a batch running on Flyte's own event loop thread: a Ctrl-C ends the
    wait but not the batch, which would go on writing files unseen. Here the run is awaited
    on a loop of its own, so an interrupt cancels it; the batch task then writes the manifest
    of what finished, and `BatchInterrupted` carries that partial batch. A second Ctrl-C
    while it winds down stops waiting at once.
    """
    loop = asyncio.new_event_loop()
    work = loop.create_task(runner.run.aio(report_batch_pipeline, **inputs))
    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["run"] = loop.run_until_complete(work)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc
        finally:
            loop.close()

    stopped = threading.Event()  # the batch task has written what finished

    def on_stop(event: progress.ProgressEvent) -> None:
        if event.kind == "stopped":
            stopped.set()

    thread = threading.Thread(target=drive, name="refine-kit-batch", daemon=True)
    with progress.listening(on_stop):
        thread.start()
        try:
            thread.join()
        except KeyboardInterrupt:
            loop.call_soon_threadsafe(work.cancel)
            # The batch task winds down on Flyte's loop; a Ctrl-C before it started has
            # nothing to write, hence the bound.
            if stopped.wait(timeout=STOP_WAIT):
                raise BatchInterrupted(outputs.read_batch(output_dir)) from None
            raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["run"]


@shows_settings(SettingKeywords)
def refine_batch(
    topics: Sequence[str],
    *,
    settings: Settings | None = None,
    on_progress: progress.Listener | None = None,
    **overrides: Unpack[SettingKeywords],
) -> BatchResult:
    """Refine a batch of topics and write their files; one failing topic does not stop the rest.

    Every keyword left as None takes its `REFINE_KIT_*` environment variable, or else the
    default listed below; `settings` supplies a whole `Settings` object instead.
    `on_progress` receives a `ProgressEvent` as each topic moves on (local runs; a cluster
    run is watched in the Flyte UI).
    """
    submission = submit_batch(topics, settings=settings, on_progress=on_progress, **overrides)
    if submission.remote:
        notices.say(f"running on the cluster: {submission.url}")
    batch = submission.result()
    for line in notices.reuse(batch):
        notices.say(line)
    return batch


@shows_settings(SettingKeywords)
def refine(
    topic: str,
    *,
    settings: Settings | None = None,
    on_progress: progress.Listener | None = None,
    **overrides: Unpack[SettingKeywords],
) -> RefineResult:
    """Refine one topic, write its files, and return its result (raises `TopicFailed`).

    Its settings are those of `refine_batch`, listed below.
    """
    clean = validate_topic(topic)
    batch = refine_batch([clean], settings=settings, on_progress=on_progress, **overrides)
    outcome = batch.outcomes[0]
    if outcome.result is None:
        raise TopicFailed(f"{clean!r} failed: {outcome.error}")
    return outcome.result


def reset(output_dir: str | Path | None = None) -> None:
    """Start a notebook section (or a test) clean, so it teaches the same lesson every time.

    Each run opens and closes its own client, checkpoint store and fault plan; what lives
    longer (see the README's "Run state") is on disk and in the process:

    - with `output_dir`, that folder is emptied (reports, records, manifests, checkpoints,
      nested runs) and marked as the kit's, so the next reset knows it may empty it. A folder
      that holds anything else is refused, so a mistyped path deletes nothing;
    - the offline model's request counters (`refine_kit.offline.transport.offline_stats`)
      and what the kit learned about endpoints go back to zero.

    Flyte's cache of finished topics is left alone: a run skips it with `cache=False`, or
    does its work again and stores the new result with `refresh_cache=True`.
    """
    if output_dir is not None:
        folder = Path(output_dir)
        mark = folder / CHECKPOINT_FILE.parent
        if folder.exists():
            kit_run = folder.is_dir() and (
                not any(folder.iterdir())
                or mark.is_dir()
                or (folder / outputs.MANIFEST_JSON).exists()
            )
            if not kit_run:
                raise ConfigError(
                    f"output_dir: {folder} is not a refine_kit run folder; delete it yourself "
                    "or choose another folder"
                )
            shutil.rmtree(folder)
        mark.mkdir(parents=True)
    from refine_kit.offline.transport import offline_stats

    offline_stats.reset()
    endpoint.forget()


def _check_writable(folder: Path) -> None:
    """Fail before any call when the output folder cannot be written, saying why."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output_dir: {folder} is a file; give a folder for the results")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(
            f"output_dir: cannot write to {folder} ({exc.strerror or exc}); choose a writable "
            "folder with output_dir= (--output-dir)"
        ) from None


def _claim(folder: Path) -> FileLock:
    """One batch at a time per output folder: a second one would mix their manifests."""
    mark = folder / CHECKPOINT_FILE.parent
    mark.mkdir(parents=True, exist_ok=True)
    lock = FileLock(mark / "batch.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"output_dir: another batch is writing to {folder} right now; wait for it to "
            "finish, or choose another folder with output_dir= (--output-dir)"
        ) from None
    return lock
