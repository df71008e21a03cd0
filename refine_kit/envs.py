"""The two Flyte task environments, with the tutorial's names and settings.

`llm_env` does the LLM work. It is reusable: on a cluster its containers stay warm between
tasks (2 replicas x 4 concurrent tasks), which is also where the default in-flight limit of
8 LLM calls comes from. `driver_env` only orchestrates and so needs no reuse.
"""

from __future__ import annotations

from datetime import timedelta

import flyte

from refine_kit.cache import cache_version

REPLICAS = 2
CONCURRENCY_PER_REPLICA = 4
#: The batch's default limit on LLM calls in flight: one call at a time per running task.
DEFAULT_MAX_CONCURRENCY = REPLICAS * CONCURRENCY_PER_REPLICA

llm_env = flyte.TaskEnvironment(
    name="llm-worker",
    secrets=[flyte.Secret(key="openai-api-key", as_env_var="OPENAI_API_KEY")],
    image=flyte.Image.from_debian_base(python_version=(3, 12)).with_pip_packages(
        "unionai-reuse>=0.1.10",
        "openai>=3.50,<4",
        "pydantic>=2.7",
    ),
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
    image=flyte.Image.from_debian_base(python_version=(3, 12)).with_pip_packages(
        "pydantic>=2.7",
    ),
    resources=flyte.Resources(cpu=1, memory="1Gi"),
    depends_on=[llm_env],
)
