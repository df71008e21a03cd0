"""Progress events from a running batch, for live displays (the CLI's bar, notebook widgets).

Local runs execute tasks in this process, so tasks publish events to listeners registered
here. On a cluster, tasks run elsewhere and progress is watched in the Flyte UI instead;
publishing then simply reaches no one.

The listeners are kept for the process, not in the run context: a local batch opens its run
context inside its task, on a thread of its own, and a function cannot be a task input. A
listener stays only while the call that registered it runs (`listening`), so none outlives
its run; two batches running at once in one process tell both listeners.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from pydantic import BaseModel

#: "waiting": calls are held for a rate limit (the message says which, and what helps);
#: "stopped": the whole batch was interrupted, after writing what finished (topic "").
EventKind = Literal["queued", "started", "step", "succeeded", "failed", "waiting", "stopped"]


class ProgressEvent(BaseModel):
    """One thing that happened to one topic."""

    topic: str
    kind: EventKind
    step: str | None = None
    score: int | None = None
    iteration: int | None = None
    message: str | None = None


Listener = Callable[[ProgressEvent], None]

_listeners: list[Listener] = []
_lock = threading.Lock()


@contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Deliver every event published inside this block to `listener`."""
    if listener is None:
        yield
        return
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def publish(topic: str, kind: EventKind, **details: object) -> None:
    """Tell every listener; a failing display must never fail the pipeline."""
    if not _listeners:
        return
    event = ProgressEvent(topic=topic, kind=kind, **details)
    for listener in list(_listeners):
        with contextlib.suppress(Exception):  # displays are best effort
            listener(event)
