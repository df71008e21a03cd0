"""The two Flyte task environments, with the tutorial's names and settings.

`llm_env` does the LLM work. It is reusable: on a cluster its containers stay warm between
tasks (2 replicas x 4 concurrent tasks), which is also where the default in-flight limit of
8 LLM calls comes from. `driver_env` only orchestrates and so needs no reuse.

Both images carry the kit itself, not only its dependencies: a remote task imports the
same `refine_kit` code that was deployed, never a stale or missing module.
"""

from __future__ import annotations

import importlib.metadata
from datetime import timedelta
from pathlib import Path

import flyte

from refine_kit.cache import cache_version
from refine_kit.endpoint import API_KEY_ENV, API_KEY_SECRET
from refine_kit.settings import CONCURRENCY_PER_REPLICA, REPLICAS

PACKAGE_DIR = Path(__file__).resolve().parent
#: Where the kit's source goes in an image: Flyte's Debian base has its parent on PYTHONPATH.
IMAGE_PACKAGE_DIR = "/root/refine_kit"


def kit_requirements() -> list[str]:
    """The kit's runtime dependencies as installed, so pyproject.toml stays the one source."""
    requirements = importlib.metadata.requires("refine_kit") or []
    return [r for r in requirements if "extra ==" not in r]


def kit_image(*extra_packages: str) -> flyte.Image:
    """A Debian image with the kit's dependencies, any extras, and the kit's own source."""
    return (
        flyte.Image.from_debian_base(python_version=(3, 12))
        .with_pip_packages(*kit_requirements(), *extra_packages)
        .with_source_folder(PACKAGE_DIR, dst=IMAGE_PACKAGE_DIR)
    )


llm_env = flyte.TaskEnvironment(
    name="llm-worker",
    secrets=[flyte.Secret(key=API_KEY_SECRET, as_env_var=API_KEY_ENV)],
    image=kit_image("unionai-reuse>=0.1.10"),
    resources=flyte.Resources(cpu=1, memory="2Gi"),
    reusable=flyte.ReusePolicy(
        replicas=REPLICAS,
        concurrency=CONCURRENCY_PER_REPLICA,
        scaledown_ttl=timedelta(minutes=5),
        idle_ttl=timedelta(minutes=30),
    ),
    cache=flyte.Cache(behavior="auto", version_override=cache_version()),
)

driver_env = flyte.TaskEnvironment(
    name="driver",
    image=kit_image(),
    resources=flyte.Resources(cpu=1, memory="1Gi"),
    depends_on=[llm_env],
)
