"""Local replay of traced calls: a completed LLM call is never paid for twice.

On a Flyte cluster, `@flyte.trace` replays completed calls when a task is retried. Flyte's
local mode does not, so locally the kit records each completed step in a SQLite file and
serves it back when the same step comes round again: on a task retry in the same run, or
when the same topics with the same settings are started again after the process died.

A step is identified by the work it belongs to (topic, settings, prompts and kit code), its
position in that work's chain, its name and a hash of its inputs. Only completed, validated
steps are written, in one transaction each, so a kill at any moment leaves either the whole
record or nothing. Each payload carries a SHA-256 digest that is checked on every read.
The store holds model answers and usage only: settings travel without secrets, so no key
can reach it. A run opens its store when it starts and closes it when it ends (`context.run`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from flyte.errors import NonRecoverableError

from refine_kit import context
from refine_kit.errors import RefineKitError
from refine_kit.models import StepResult

SCHEMA_VERSION = "1"
STORE_NAME = "checkpoints.sqlite"

M = TypeVar("M", bound=StepResult)


class CheckpointStoreError(RefineKitError):
    """The checkpoint file is damaged or not ours; it is reported, never trusted."""


class CheckpointStore:
    """A file of completed steps, safe to share between concurrent topics of one process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._check_and_prepare()
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(Exception):
                self._db.close()
            raise CheckpointStoreError(
                f"checkpoint store {self.path} is unreadable ({exc}); start with fresh=True "
                "(--fresh), which sets it aside and pays for every call again, or delete it"
            ) from None

    def _check_and_prepare(self) -> None:
        verdict = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {verdict}")
        # WAL: a killed writer never damages what was committed; NORMAL sync keeps commits
        # cheap (a power cut may lose the last few, which are then simply paid again).
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS steps (key TEXT PRIMARY KEY, work TEXT NOT NULL, "
            "position INTEGER NOT NULL, step TEXT NOT NULL, payload TEXT NOT NULL, "
            "digest TEXT NOT NULL, created REAL NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        row = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema {row[0]!r}, expected {SCHEMA_VERSION!r}")

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT payload, digest FROM steps WHERE key=?", (key,)
            ).fetchone()
        if row is None:
            return None
        payload, digest = row
        if hashlib.sha256(payload.encode()).hexdigest() != digest:
            raise CheckpointStoreError(
                f"checkpoint store {self.path}: a record failed its checksum; delete the file "
                "or start with fresh=True (--fresh)"
            )
        return str(payload)

    def put(self, key: str, work: str, position: int, step: str, payload: str) -> None:
        digest = hashlib.sha256(payload.encode()).hexdigest()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, work, position, step, payload, digest, time.time()),
            )

    def saved_steps(self, work: str) -> int:
        """How many of a topic's steps are saved, so a rerun can replay them."""
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM steps WHERE work=?", (work,)).fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def check_store(path: Path, *, fresh: bool = False) -> None:
    """Open the store at `path` once and close it: a damaged file is reported before any call.

    With `fresh` (nothing will be replayed anyway) a damaged file is renamed aside, kept for
    inspection, and a new store starts in its place.
    """
    try:
        CheckpointStore(path).close()
    except CheckpointStoreError:
        if not fresh:
            raise
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").rename(f"{aside}{suffix}")
        CheckpointStore(path).close()


def work_key(*parts: Any) -> str:
    """A stable identity for a topic's work: everything that changes its calls."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def replayable(fn: Callable[..., Awaitable[M]]) -> Callable[..., Awaitable[M]]:
    """Serve a step's result from the local store when that step already completed.

    Step results carry a `call` record; a replayed one is marked `replayed=True` so that
    accounting can tell it from a paid call. Outside a topic's replay scope (or on a
    cluster, where Flyte replays traces itself, so no store is opened) the step simply runs.
    """
    result_type: type[M] = fn.__annotations__["return"]
    if isinstance(result_type, str):
        result_type = fn.__globals__[result_type]

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> M:
        ctx = context.current()
        scope = ctx.replay if ctx is not None else None
        if scope is None or scope.store is None:
            return await fn(*args, **kwargs)
        position = scope.next_position()
        inputs = work_key(fn.__name__, args, kwargs)
        key = work_key(scope.work, position, inputs)
        if not scope.fresh:
            try:
                stored = scope.store.get(key)
            except CheckpointStoreError as exc:
                raise NonRecoverableError(str(exc)) from None  # retrying cannot mend the file
            if stored is not None:
                result = result_type.model_validate_json(stored)
                return result.model_copy(
                    update={"call": result.call.model_copy(update={"replayed": True})}
                )
        result = await fn(*args, **kwargs)
        scope.store.put(key, scope.work, position, fn.__name__, result.model_dump_json())
        return result

    return wrapper
