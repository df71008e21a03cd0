"""What the kit tells the user about a run, beyond its results: one line each, one place.

A run says where its calls go before the first one, and afterwards whether it reused
earlier work instead of paying for it: replayed checkpoints of an earlier run in the same
folder, or topics served whole from the cache. Without that line, a rerun that replays
everything looks like a run that did nothing (a fault demo that shows no fault, a resume
that reports "from cache"), so it says from when, and how to pay again.
"""

from __future__ import annotations

import sys
from datetime import datetime

from refine_kit.models import BatchResult


def say(text: str) -> None:
    """Tell the user `text`, as the kit tells every notice (on stderr, flushed)."""
    print(f"refine_kit: {text}", file=sys.stderr, flush=True)


def _when(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp)
    today = moment.date() == datetime.now().date()
    return moment.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def reuse(batch: BatchResult) -> list[str]:
    """What the batch reused instead of paying for, and how to pay again: a line per kind."""
    lines = []
    cached = [o.result for o in batch.outcomes if o.from_cache and o.result is not None]
    ran = [o.result for o in batch.outcomes if not o.from_cache and o.result is not None]
    if cached:
        first = min(c.started_at for r in cached for c in r.calls)
        runs = sorted({r.run_name for r in cached if r.run_name})
        by = f"run {runs[0]}" if len(runs) == 1 else f"{len(runs)} earlier runs"
        lines.append(
            f"{len(cached)} of {_plural(len(batch.outcomes), 'topic')} came from the cache, "
            f"computed at {_when(first)} by {by}: none of their calls were made again. To "
            "compute them again: --refresh-cache or --no-cache (refresh_cache=True, cache=False)"
        )
    replayed = [c for r in ran for c in r.calls if c.replayed]
    replayed_total = sum(o.accounting.replayed for o in batch.outcomes if not o.from_cache)
    if replayed_total:
        steps = sum(len(r.calls) for r in ran)
        since = f" at {_when(min(c.started_at for c in replayed))}" if replayed else ""
        where = batch.output_dir or "the output folder"
        lines.append(
            f"{replayed_total} of {_plural(steps, 'step')} were replayed from checkpoints saved "
            f"in {where} by an earlier run{since}: not paid again. To pay for them again: "
            "--fresh or another --output-dir (fresh=True, output_dir=...)"
        )
    return lines
