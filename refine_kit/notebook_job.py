"""The tutorial notebooks as cluster (or scheduled) jobs: papermill inside a Flyte task.

Chosen over the `flyteplugins-papermill` plugin: the kit's notebooks are ordinary papermill
notebooks with one `parameters` cell, so a plain task that calls papermill needs no extra
plugin or task type, behaves the same locally and on a cluster, takes the same parameters
as `papermill -p`, and can be scheduled with a trigger like any other task. Inside the
job, the notebook runs the pipeline in local mode within its own container.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import flyte
import flyte.io

from refine_kit.endpoint import API_KEY_ENV, API_KEY_SECRET
from refine_kit.envs import PACKAGE_DIR, kit_image
from refine_kit.errors import ConfigError

NOTEBOOKS_DIR = PACKAGE_DIR.parent / "notebooks"
IMAGE_NOTEBOOKS_DIR = "/root/notebooks"

notebook_env = flyte.TaskEnvironment(
    name="notebook-runner",
    image=kit_image(
        "papermill>=2.6", "ipykernel>=6.29", "ipywidgets>=8.1", "matplotlib>=3.8"
    ).with_source_folder(NOTEBOOKS_DIR, dst=IMAGE_NOTEBOOKS_DIR),
    secrets=[flyte.Secret(key=API_KEY_SECRET, as_env_var=API_KEY_ENV)],
    resources=flyte.Resources(cpu=2, memory="4Gi"),
)


def notebook_path(name: str, folder: Path | None = None) -> Path:
    """A notebook of the kit by file name; anything else is refused (no paths from callers)."""
    folder = folder or (
        Path(IMAGE_NOTEBOOKS_DIR) if Path(IMAGE_NOTEBOOKS_DIR).is_dir() else NOTEBOOKS_DIR
    )
    available = sorted(p.name for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if name not in available:
        raise ConfigError(f"notebook: {name!r} is not one of the kit's notebooks: {available}")
    return folder / name


@notebook_env.task(retries=1)
async def run_notebook(notebook: str, parameters_json: str = "{}") -> flyte.io.File:
    """Execute one tutorial notebook with papermill parameters; return the executed copy."""
    import papermill

    source = notebook_path(notebook)
    try:
        parameters = json.loads(parameters_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"parameters_json: not valid JSON ({exc})") from None
    if not isinstance(parameters, dict):
        raise ConfigError("parameters_json: must be a JSON object of parameter names to values")
    workdir = Path(tempfile.mkdtemp(prefix="refine-kit-notebook-"))
    executed = workdir / source.name
    await asyncio.to_thread(
        papermill.execute_notebook,
        str(source),
        str(executed),
        parameters=parameters,
        cwd=str(workdir),
        kernel_name="python3",
        progress_bar=False,
    )
    return await flyte.io.File.from_local(str(executed))
