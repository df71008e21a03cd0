"""What `refine-kit run` and `batch` print: live step counts, the results table, the totals.

Rich draws it; everything from outside (topics, errors, URLs) goes through `plain`, so no
text can carry markup or terminal control sequences onto the user's screen.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from refine_kit.redaction import plain

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from refine_kit.models import Accounting, BatchResult
    from refine_kit.progress import ProgressEvent


@functools.cache
def console(stderr: bool = False) -> Console:
    """Rich, loaded when a command prints: `--help` (plain click help) never does."""
    from rich.console import Console

    return Console(stderr=stderr)


def report(result: BatchResult) -> None:
    """The results table, each failure's reason, and the run's totals."""
    console().print(results_table(result))
    for line in failure_lines(result):
        console().print(line, soft_wrap=True)
    # Whole lines (soft_wrap): the terminal wraps them; copied text stays one line.
    stopped = f", {len(result.interrupted)} stopped" if result.interrupted else ""
    console().print(
        f"{len(result.succeeded)} succeeded, {len(result.failed)} failed{stopped} in "
        f"{result.seconds:.1f} s; files in {plain(result.output_dir)}",
        soft_wrap=True,
    )
    console().print(accounting_line(result.accounting), soft_wrap=True)
    if result.interrupted:
        console().print(rerun_line(result), soft_wrap=True)


def rerun_line(result: BatchResult) -> str:
    """What the same command will still pay for after a Ctrl-C."""
    saved = sum(o.saved_steps for o in result.interrupted)
    stopped = len(result.interrupted)
    finished = len(result.outcomes) - stopped
    reused = f"the {finished} finished are reused, " if finished else ""
    return (
        "[yellow]interrupted[/]: the same command again resumes: "
        f"{reused}{saved} saved step{'s' if saved != 1 else ''} of the {stopped} stopped "
        f"topic{'s' if stopped != 1 else ''} are replayed, and only the rest is paid for"
    )


class StepCount:
    """LLM steps finished out of those known so far, so the bar moves with the work.

    A topic needs at least a draft, a critique and a summary; each revision it starts adds
    a revision and its critique. Topics served from the cache finish all at once.
    """

    def __init__(self, topics: int) -> None:
        self.total = 3 * topics
        self.done = 0
        self._started: dict[str, int] = {}

    def see(self, event: ProgressEvent) -> None:
        if event.kind == "step":
            started = self._started.get(event.topic, 0)
            if started:
                self.done += 1  # the topic's previous step has finished
            self._started[event.topic] = started + 1
            if event.step == "revise":
                self.total += 2
        elif event.kind in ("succeeded", "failed"):
            started = self._started.pop(event.topic, 0)
            self.done += 3 if started == 0 else 1  # cached (all at once), or its last step
            self.done = min(self.done, self.total)


def results_table(result: BatchResult) -> Table:
    """One row per topic, the numbers a user checks first; it reads at 80 columns."""
    from rich import box
    from rich.table import Table

    table = Table(title="refine_kit results", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Topic", ratio=1, min_width=16, overflow="fold")
    for column in ("Status", "Score", "Revisions", "Stop", "Requests", "Seconds"):
        table.add_column(column, justify="left" if column in ("Status", "Stop") else "right")
    for o in result.outcomes:
        r = o.result
        if r is None:
            spent = o.accounting.requests_sent
            status = "[yellow]stopped[/]" if o.status == "interrupted" else "[red]failed[/]"
            table.add_row(plain(o.topic), status, "", "", "", str(spent), "")
            continue
        table.add_row(
            plain(o.topic),
            "cached" if o.from_cache else "[green]ok[/]",
            str(r.score),
            str(len(r.iterations) - 1),
            "threshold" if r.stop_reason == "threshold" else "max revs",
            str(r.requests_sent),
            "cached" if o.from_cache else f"{r.seconds:.1f}",
        )
    return table


def failure_lines(result: BatchResult) -> list[str]:
    """One line per failed topic: its name and the error, as plain text."""
    return [f"[red]failed[/] {plain(o.topic)}: {plain(o.error or '')}" for o in result.failed]


def accounting_line(acc: Accounting) -> str:
    """What the run paid for and what checkpoints and the cache saved, in one line."""
    cost = "unknown" if acc.cost_usd is None else f"${acc.cost_usd:.4f}"
    return (
        f"requests sent {acc.requests_sent}, answers received {acc.answers_received} "
        f"(steps replayed {acc.replayed}, from cache {acc.cached}); "
        f"client retries {acc.client_retries}, re-asks {acc.reasks}, "
        f"task attempts {acc.task_attempts}; tokens used {acc.tokens_used:,}, "
        f"saved {acc.tokens_saved:,}; estimated cost {cost}"
    )


def outcome_note(event: ProgressEvent) -> str:
    if event.score is not None:
        return f" (score {event.score})"
    return " (reason below)" if event.kind == "failed" else ""
