"""Cache keys that see everything that changes a result.

Flyte's default key covers a task's inputs and its own function body only: an edit to a
prompt, a helper or the offline model would come back as a stale cached result. The
version here hashes the kit's source files and the prompt texts in force, and the
settings travel as task inputs, so any change of topic, settings, prompts, model or code
gives a fresh result.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Literal

import flyte

from refine_kit import prompts
from refine_kit.version import __version__

_PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def source_digest() -> str:
    """A hash of every module of the kit, computed once per process (about 1 ms)."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_version() -> str:
    """The version for `refine_report`'s cache: kit version, source and live prompt texts."""
    digest = hashlib.sha256(source_digest().encode())
    for name, text in sorted(prompts.all_prompts().items()):
        digest.update(f"{name}\0{text}\0".encode())
    return f"{__version__}-{digest.hexdigest()[:16]}"


def cache_policy(enabled: bool, refresh: bool = False) -> flyte.Cache | Literal["disable"]:
    """What `refine_report` runs with: versioned caching, or none at all.

    `refresh` computes again and overwrites the stored result ("override" never reads):
    what a notebook section wants when it must show the work every time it is run.
    """
    if not enabled:
        return "disable"
    return flyte.Cache(behavior="override" if refresh else "auto", version_override=cache_version())
