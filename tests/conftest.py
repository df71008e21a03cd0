"""Test setup: offline, instant, and isolated from the user's Flyte cache and API keys."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before refine_kit or flyte is imported, so every run in this session sees them.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="refine-kit-tests-"))
(_SESSION_DIR / "config.yaml").write_text("{}\n")
os.environ["FLYTECTL_CONFIG"] = str(_SESSION_DIR / "config.yaml")  # Flyte's cache lives beside it
os.environ["DO_NOT_TRACK"] = "1"
for name in list(os.environ):
    if name.startswith("REFINE_KIT_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        del os.environ[name]
os.environ["REFINE_KIT_OFFLINE_LATENCY"] = "0"
os.environ["REFINE_KIT_RETRY_BACKOFF"] = "0"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def model_stats():
    """The offline model's own counters, zeroed for this test."""
    from refine_kit.offline_transport import offline_stats

    offline_stats.reset()
    return offline_stats
