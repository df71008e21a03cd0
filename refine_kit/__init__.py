"""refine_kit: resilient LLM report refinement on Flyte 2, offline by default.

import refine_kit
result = refine_kit.refine("Heat pumps in cold climates")
batch = refine_kit.refine_batch(["Tidal power", "Urban beekeeping"], quality_threshold=9)
"""

import os

# Flyte's usage telemetry would try to leave the machine; the kit keeps runs local and quiet.
os.environ.setdefault("DO_NOT_TRACK", "1")

from refine_kit.api import (  # noqa: E402
    Submission,
    TopicFailed,
    init_flyte,
    refine,
    refine_batch,
    reset,
    submit_batch,
)
from refine_kit.client import call_llm, llm_session  # noqa: E402
from refine_kit.envs import driver_env, llm_env  # noqa: E402
from refine_kit.errors import ConfigError, LLMOutputError, RefineKitError  # noqa: E402
from refine_kit.models import (  # noqa: E402
    BatchResult,
    CallRecord,
    Critique,
    Iteration,
    RefineResult,
    TopicOutcome,
    Usage,
)
from refine_kit.progress import ProgressEvent  # noqa: E402
from refine_kit.prompts import (  # noqa: E402
    CRITIC_SYSTEM_PROMPT,
    GENERATOR_SYSTEM_PROMPT,
    REVISER_SYSTEM_PROMPT,
    SUMMARY_SYSTEM_PROMPT,
)
from refine_kit.settings import LLMConfig, RunOptions, Settings  # noqa: E402
from refine_kit.tasks import (  # noqa: E402
    format_outputs,
    refine_report,
    report_batch_pipeline,
)
from refine_kit.traced import (  # noqa: E402
    critique_content,
    generate_initial_draft,
    generate_summary,
    revise_content,
)
from refine_kit.version import __version__  # noqa: E402

__all__ = [
    "BatchResult",
    "CRITIC_SYSTEM_PROMPT",
    "CallRecord",
    "ConfigError",
    "Critique",
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
