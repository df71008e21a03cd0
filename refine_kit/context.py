"""The run context: everything the LLM calls of one run share, held in one object.

A batch sets it once, in `report_batch_pipeline`. Flyte's local mode runs child tasks as
asyncio tasks of the same event loop, and they inherit it, so every call of the batch sees
the same configuration, call gate, checkpoint store, ledgers and client. Each attempt of a
topic derives its own view (`for_topic`) with its replay position and its ledger.

A task started on its own (on a cluster pod, or with `flyte.run(refine_report, ...)`) finds
no enclosing run and opens one for itself. When a run ends, its client and store are
closed, so nothing of it outlives the run: a second run in the same notebook kernel starts
from what is on disk, never from what an earlier run left in memory. What does live for the
whole process does so on purpose, and its module says why: what endpoints accept and URL
credentials (`endpoint`), progress listeners (`progress`), the offline model's counters
(`offline.transport`) and what Flyte is connected to (`connection`).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import flyte

from refine_kit.accounting import Ledger
from refine_kit.settings import LLMConfig

if TYPE_CHECKING:
    import openai

    from refine_kit.pacing import Pacer
    from refine_kit.replay import CheckpointStore


@dataclass
class ReplayScope:
    """One attempt of one topic's work: which step comes next, and where steps are kept.

    Positions restart at every attempt, so a retry meets its completed steps in order.
    """

    work: str
    store: CheckpointStore | None
    fresh: bool
    position: int = 0

    def next_position(self) -> int:
        self.position += 1
        return self.position - 1


@dataclass
class RunResources:
    """What a run opens once and shares between its topics (and closes at its end)."""

    ledgers: dict[str, Ledger] = field(default_factory=dict)
    client: openai.AsyncOpenAI | None = None
    client_loop: asyncio.AbstractEventLoop | None = None
    _probe_lock: asyncio.Lock | None = None
    pacer: Pacer | None = None

    def probe_lock(self) -> asyncio.Lock:
        """The lock calls take while the endpoint's request shape is still being found out."""
        if self._probe_lock is None:
            self._probe_lock = asyncio.Lock()
        return self._probe_lock


@dataclass(frozen=True)
class RunContext:
    """What every LLM call of one run reads: configuration, call gate, replay scope, ledger."""

    config: LLMConfig
    gate: asyncio.Semaphore | None = None  # most calls in flight; None: no limit
    store: CheckpointStore | None = None  # local checkpoints; None: no replay
    fresh: bool = False  # record steps, but never serve them back
    replay: ReplayScope | None = None  # set for one attempt of one topic
    ledger: Ledger = field(default_factory=Ledger)  # the current topic's costs
    resources: RunResources = field(default_factory=RunResources)

    def for_topic(self, work: str) -> RunContext:
        """This run's view for one attempt of one topic's work (its ledger spans attempts)."""
        ledger = self.resources.ledgers.setdefault(work, Ledger())
        ledger.attempts += 1
        scope = ReplayScope(work=work, store=self.store, fresh=self.fresh)
        return dataclasses.replace(self, replay=scope, ledger=ledger)


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "refine_kit_run_context", default=None
)


def current() -> RunContext | None:
    """The run context of the code running now, or None outside any run."""
    return _current.get()


@contextmanager
def use(ctx: RunContext) -> Iterator[RunContext]:
    """Make `ctx` the current run context inside this block (the one place it is set)."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@asynccontextmanager
async def run(
    config: LLMConfig,
    *,
    max_in_flight: int | None = None,
    store: CheckpointStore | None = None,
    fresh: bool = False,
) -> AsyncIterator[RunContext]:
    """Open a run: its call gate, store and client live exactly as long as this block."""
    gate = asyncio.Semaphore(max_in_flight) if max_in_flight else None
    ctx = RunContext(config=config, gate=gate, store=store, fresh=fresh)
    try:
        with use(ctx):
            yield ctx
    finally:
        await close(ctx)


@asynccontextmanager
async def topic(config: LLMConfig, work: str) -> AsyncIterator[RunContext]:
    """One attempt of one topic: inside the enclosing run, or in a run of its own."""
    outer = current()
    if outer is not None and outer.config == config:
        with use(outer.for_topic(work)) as ctx:
            yield ctx
        return
    async with run(config) as own:
        with use(own.for_topic(work)) as ctx:
            yield ctx


async def close(ctx: RunContext) -> None:
    """Release what the run opened: the client's connections and the checkpoint store."""
    client, ctx.resources.client = ctx.resources.client, None
    if client is not None:
        await client.close()
    if ctx.store is not None:
        ctx.store.close()


def is_local() -> bool:
    """True when Flyte runs tasks in this process (no cluster involved)."""
    flyte_ctx = flyte.ctx()
    return flyte_ctx is None or flyte_ctx.mode == "local"


def run_name() -> str:
    """The Flyte run the current task belongs to ('' outside a task)."""
    flyte_ctx = flyte.ctx()
    return (flyte_ctx.action.run_name if flyte_ctx and flyte_ctx.action else None) or ""
