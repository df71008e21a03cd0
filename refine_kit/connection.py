"""Connecting Flyte: run tasks in this process, on a cluster, or serialise them for a dry run.

Connecting uses Flyte's own configuration (`flyte.init_from_config`): a config file path,
or Flyte's usual discovery (`./config.yaml`, `.flyte/config.yaml`, `FLYTECTL_CONFIG`,
`~/.flyte/config.yaml`) when the setting is "auto". A dry run connects to a placeholder
endpoint and serialises everything without a cluster. Kept apart from `cluster` (deployment)
so that a local run loads neither the deployment code nor Flyte's file I/O types.

Flyte keeps its configuration for the whole process, so what it is connected to is kept for
the process too, and the kit connects again only when the target (local, a cluster, a dry
run) or the verbosity changes: connecting to a cluster reads its config and builds a client,
which every run would otherwise pay for again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import flyte

from refine_kit.envs import PACKAGE_DIR
from refine_kit.errors import ConfigError

#: Where the code bundle is rooted: the folder that holds the `refine_kit` package.
SOURCE_ROOT = PACKAGE_DIR.parent
#: A placeholder endpoint for dry runs: nothing listens there and nothing is sent to it.
DRY_RUN_ENDPOINT = "dns:///localhost:30080"


# What Flyte is connected to now, so each entry point (re)connects only when that changes.
_current: tuple[str, bool] | None = None


def _connect(target: tuple[str, bool], init: Callable[[], None]) -> None:
    global _current
    if _current != target:
        init()
        _current = target


def connect_local(*, verbose: bool = False) -> None:
    """Run tasks in this process, with Flyte's log noise off unless `verbose`."""
    level = logging.INFO if verbose else logging.CRITICAL
    _connect(("local", verbose), lambda: flyte.init(log_level=level))


def connect(cluster: str, *, verbose: bool = False) -> None:
    """Point Flyte at a cluster: `cluster` is a config file path, or "auto" to discover one."""
    path = None if cluster == "auto" else Path(cluster).expanduser()
    if path is not None and not path.is_file():
        raise ConfigError(f"cluster: config file {cluster!r} does not exist")
    _connect(
        (cluster, verbose),
        lambda: flyte.init_from_config(
            path,
            root_dir=SOURCE_ROOT,
            log_level=logging.INFO if verbose else logging.WARNING,
            sync_local_sys_paths=False,  # the image carries the kit; a local venv must not travel
        ),
    )


def connect_dry_run() -> None:
    """Configure Flyte for serialisation only: no cluster is needed or contacted."""
    _connect(
        ("dry-run", False),
        lambda: flyte.init(
            endpoint=DRY_RUN_ENDPOINT,
            insecure=True,
            project="refine-kit",
            domain="development",
            root_dir=SOURCE_ROOT,
            log_level=logging.CRITICAL,
            sync_local_sys_paths=False,
        ),
    )
