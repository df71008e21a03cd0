"""Test setup: offline, instant, and isolated from the user's Flyte cache and API keys."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

# Set before refine_kit or flyte is imported, so every run in this session sees them.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="refine-kit-tests-"))
(_SESSION_DIR / "config.yaml").write_text("{}\n")
os.environ["FLYTECTL_CONFIG"] = str(_SESSION_DIR / "config.yaml")  # Flyte's cache lives beside it
os.environ["DO_NOT_TRACK"] = "1"
os.environ["XDG_CACHE_HOME"] = str(_SESSION_DIR / "cache")  # what the kit remembers of endpoints
for name in list(os.environ):
    if name.startswith("REFINE_KIT_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        del os.environ[name]
os.environ["REFINE_KIT_OFFLINE_LATENCY"] = "0"
os.environ["REFINE_KIT_RETRY_BACKOFF"] = "0"


NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything that executes a notebook is in the slow `notebooks` group: the tests that
    use `run_notebook`, and the notebooks nbmake collects (`pytest notebooks/*.ipynb
    --nbmake`). Tests that start a kernel some other way carry the mark themselves."""
    for item in items:
        if "run_notebook" in getattr(item, "fixturenames", ()) or item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)


@pytest.fixture
def run_notebook(tmp_path: Path):
    """Run a tutorial notebook with papermill in tmp_path; return (its JSON summary, outputs).

    The outputs come back as one JSON text, already checked to hold no path of this machine
    (paths inside the task images, shown in the kit's own source, are not this machine's).
    """
    papermill = pytest.importorskip("papermill")
    from refine_kit.envs import IMAGE_PACKAGE_DIR
    from refine_kit.notebook_job import IMAGE_NOTEBOOKS_DIR

    def run(name: str, **parameters: object) -> tuple[dict, str]:
        executed = tmp_path / name
        papermill.execute_notebook(
            str(NOTEBOOKS / name),
            str(executed),
            parameters=parameters,
            cwd=str(tmp_path),
            kernel_name="python3",
            progress_bar=False,
        )
        cells = json.loads(executed.read_text())["cells"]
        outputs = json.dumps([c["outputs"] for c in cells if c["cell_type"] == "code"])
        text = outputs.replace(IMAGE_PACKAGE_DIR, "").replace(IMAGE_NOTEBOOKS_DIR, "")
        for local in (tmp_path, Path.home(), NOTEBOOKS.parent):
            assert str(local) not in text, f"a machine path leaked: {local}"
        summary = tmp_path / str(parameters["output_dir"]) / "notebook_summary.json"
        return json.loads(summary.read_text()), outputs

    return run


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def model_stats():
    """The offline model's own counters, zeroed for this test."""
    from refine_kit.offline.transport import offline_stats

    offline_stats.reset()
    return offline_stats


@pytest.fixture
def serving():
    """Start offline servers with any options; each is stopped when the test ends."""
    from refine_kit.offline.server import OfflineServer

    started: list[OfflineServer] = []

    def start(**options: object) -> OfflineServer:
        started.append(OfflineServer(**options).start())  # type: ignore[arg-type]
        return started[-1]

    yield start
    for server in started:
        server.stop()
