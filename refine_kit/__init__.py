"""refine_kit: resilient LLM report refinement on Flyte 2, offline by default.

import refine_kit
result = refine_kit.refine("Heat pumps in cold climates")
batch = refine_kit.refine_batch(["Tidal power", "Urban beekeeping"], quality_threshold=9)
"""

import importlib
import os
from typing import TYPE_CHECKING, Any

from refine_kit.version import __version__

# Flyte's usage telemetry would try to leave the machine; the kit keeps runs local and quiet.
os.environ.setdefault("DO_NOT_TRACK", "1")

# The public API, imported on first use: `refine-kit --help` and `import refine_kit` stay
# fast, and Flyte and the OpenAI SDK load only when a run needs them.
_EXPORTS = {
    "BatchInterrupted": "api",
    "Submission": "api",
    "TopicFailed": "api",
    "init_flyte": "api",
    "refine": "api",
    "refine_batch": "api",
    "reset": "api",
    "submit_batch": "api",
    "call_llm": "client",
    "llm_session": "client",
    # From `tasks`, not `envs`: importing the tasks is what puts them on the environments,
    # so `flyte.deploy(refine_kit.driver_env)` ships refine_report and the batch pipeline.
    "driver_env": "tasks",
    "llm_env": "tasks",
    "ConfigError": "errors",
    "EndpointError": "errors",
    "LLMOutputError": "errors",
    "RefineKitError": "errors",
    "BatchResult": "models",
    "CallRecord": "models",
    "Critique": "models",
    "Iteration": "models",
    "RefineResult": "models",
    "TopicOutcome": "models",
    "Usage": "models",
    "ProgressEvent": "progress",
    "CRITIC_SYSTEM_PROMPT": "prompts",
    "GENERATOR_SYSTEM_PROMPT": "prompts",
    "REVISER_SYSTEM_PROMPT": "prompts",
    "SUMMARY_SYSTEM_PROMPT": "prompts",
    "LLMConfig": "settings",
    "RunOptions": "settings",
    "Settings": "settings",
    "format_outputs": "tasks",
    "refine_report": "tasks",
    "report_batch_pipeline": "tasks",
    "critique_content": "traced",
    "generate_initial_draft": "traced",
    "generate_summary": "traced",
    "revise_content": "traced",
}

if TYPE_CHECKING:
    from refine_kit.api import (
        BatchInterrupted,
        Submission,
        TopicFailed,
        init_flyte,
        refine,
        refine_batch,
        reset,
        submit_batch,
    )
    from refine_kit.client import call_llm, llm_session
    from refine_kit.envs import driver_env, llm_env
    from refine_kit.errors import ConfigError, EndpointError, LLMOutputError, RefineKitError
    from refine_kit.models import (
        BatchResult,
        CallRecord,
        Critique,
        Iteration,
        RefineResult,
        TopicOutcome,
        Usage,
    )
    from refine_kit.progress import ProgressEvent
    from refine_kit.prompts import (
        CRITIC_SYSTEM_PROMPT,
        GENERATOR_SYSTEM_PROMPT,
        REVISER_SYSTEM_PROMPT,
        SUMMARY_SYSTEM_PROMPT,
    )
    from refine_kit.settings import LLMConfig, RunOptions, Settings
    from refine_kit.tasks import format_outputs, refine_report, report_batch_pipeline
    from refine_kit.traced import (
        critique_content,
        generate_initial_draft,
        generate_summary,
        revise_content,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'refine_kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"refine_kit.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "BatchInterrupted",
    "BatchResult",
    "CRITIC_SYSTEM_PROMPT",
    "CallRecord",
    "ConfigError",
    "Critique",
    "EndpointError",
    "GENERATOR_SYSTEM_PROMPT",
    "Iteration",
    "LLMConfig",
    "LLMOutputError",
    "ProgressEvent",
    "REVISER_SYSTEM_PROMPT",
    "RefineKitError",
    "RefineResult",
    "RunOptions",
    "SUMMARY_SYSTEM_PROMPT",
    "Settings",
    "Submission",
    "TopicFailed",
    "TopicOutcome",
    "Usage",
    "__version__",
    "call_llm",
    "critique_content",
    "driver_env",
    "format_outputs",
    "generate_initial_draft",
    "generate_summary",
    "init_flyte",
    "llm_env",
    "llm_session",
    "refine",
    "refine_batch",
    "refine_report",
    "report_batch_pipeline",
    "reset",
    "revise_content",
    "submit_batch",
]
