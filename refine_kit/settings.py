"""One validated settings object, read from arguments first and `REFINE_KIT_*` variables second.

`SettingFields` declares every setting once: type, default, bounds, meaning and CLI option.
`Settings` is what users set. `LLMConfig` and `RunOptions` are the secret-free parts that
travel into Flyte tasks as inputs (and so into the cache key): API keys never leave the
process environment, so they cannot reach task inputs, caches, records or checkpoints.
"""

# No `from __future__ import annotations`: LLMConfig and RunOptions cross task boundaries,
# where Flyte reads their type hints on every conversion (see models.py).
import functools
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from refine_kit import endpoint
from refine_kit.endpoint import API_KEY_ENV
from refine_kit.errors import ConfigError
from refine_kit.models import BoundaryModel
from refine_kit.offline.faults import FaultPlan

Backend = Literal["auto", "offline", "openai"]
ResolvedBackend = Literal["offline", "openai"]

OFFLINE_MODEL = "refine-kit-offline"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

# Model names OpenAI's own API serves; any name is allowed when base_url points elsewhere.
_OPENAI_MODEL_PATTERN = re.compile(r"^(gpt-|o\d|chatgpt-|ft:gpt-)[A-Za-z0-9._:-]*$")

# llm_env's reuse policy (envs.py): 2 warm replicas x 4 concurrent tasks. Each task makes
# one LLM call at a time, so a batch's default in-flight limit is their product, locally
# and on a cluster alike.
REPLICAS = 2
CONCURRENCY_PER_REPLICA = 4

_URL = re.compile(r"^https?://[^\s/]+")
_URL_RULE = "must be an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1"

MAX_TOPIC_CHARS = 300
MAX_TOPICS = 10_000


class CommandLine:
    """How a setting is spelled on the command line, when not `--<name-with-dashes>`.

    `CommandLine("--threshold", "-t")` renames it and adds a short alias;
    `CommandLine("--cache/--no-cache")` gives an on/off pair (a bool's flag only turns it on).
    """

    def __init__(self, *names: str) -> None:
        self.names = names


class SettingFields(BaseModel):
    """Every knob of a run, declared once: its type, default, bounds, meaning and CLI option.

    `Settings` is this read from arguments and `REFINE_KIT_*` variables. The rest is derived
    (`setting_docs.py`): the `refine-kit run`/`batch` options, the docstrings of `refine` and
    `refine_batch`, the README's table; tests hold `api.SettingKeywords` and the task inputs
    `LLMConfig` and `RunOptions` to it. This class loads no environment machinery (see
    `settings_class`), so the CLI's help can read it quickly.
    """

    # defer_build: the CLI's help reads the fields' defaults, not the validators.
    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)

    # Where calls go.
    backend: Backend = Field(
        default="auto",
        description="'offline', 'openai' (any OpenAI-compatible server), or 'auto': openai "
        f"when {API_KEY_ENV} or base_url is set, offline otherwise",
    )
    model: str | None = Field(
        default=None,
        description=f"Model name; unset: {DEFAULT_OPENAI_MODEL}, or {OFFLINE_MODEL} when offline",
    )
    base_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1 for Ollama",
    )
    # How far each topic is refined.
    max_iterations: Annotated[int, CommandLine("--max-iterations", "-n")] = Field(
        default=3, ge=1, le=10, description="Most revisions per topic; every one is scored"
    )
    quality_threshold: Annotated[int, CommandLine("--threshold", "-t")] = Field(
        default=8, ge=1, le=10, description="Score that ends refinement"
    )
    # How fast calls are made.
    max_concurrency: Annotated[int, CommandLine("--concurrency", "-c")] = Field(
        default=REPLICAS * CONCURRENCY_PER_REPLICA,
        ge=1,
        le=256,
        description=f"Most LLM calls in flight; by default llm_env's {REPLICAS} replicas x "
        f"{CONCURRENCY_PER_REPLICA} concurrent tasks",
    )
    requests_per_minute: Annotated[int | None, CommandLine("--rpm")] = Field(
        default=None,
        gt=0,
        description="Your tier's requests-per-minute limit; calls are paced under it, and under "
        "what x-ratelimit-* headers say",
    )
    tokens_per_minute: Annotated[int | None, CommandLine("--tpm")] = Field(
        default=None,
        gt=0,
        description="Your tier's tokens-per-minute limit, a request counting its prompt and "
        "max_tokens; calls are paced under it",
    )
    # Each call, and what absorbs its failures.
    max_tokens: int = Field(
        default=2000,
        ge=64,
        le=32_000,
        description="Most tokens per answer; an answer cut at it is an error",
    )
    request_timeout: Annotated[float, CommandLine("--timeout")] = Field(
        default=60.0, gt=0, le=600, description="Seconds to wait for each request"
    )
    client_max_retries: Annotated[int, CommandLine("--client-retries")] = Field(
        default=2,
        ge=0,
        le=10,
        description="Client retries of a transient failure (429, 5xx, a dropped connection): "
        "one call makes at most this + 1 requests",
    )
    client_backoff: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="Seconds before the first client retry when the server sends no Retry-After",
    )
    reasks: int = Field(
        default=2, ge=0, le=5, description="Re-asks of a critique that is not valid Critique JSON"
    )
    task_retries: Annotated[int, CommandLine("--retries")] = Field(
        default=3,
        ge=0,
        le=10,
        description="Flyte retries of refine_report; completed steps are replayed, not paid again",
    )
    retry_backoff: float = Field(
        default=0.5, ge=0, le=60, description="Seconds before the first task retry"
    )
    # What is kept, and what is reused.
    output_dir: Annotated[Path, CommandLine("--output-dir", "-o")] = Field(
        default=Path("refine_outputs"), description="Where files are written"
    )
    cache: Annotated[bool, CommandLine("--cache/--no-cache")] = Field(
        default=True,
        description="Reuse results of unchanged work; never for runs with injected faults",
    )
    refresh_cache: bool = Field(
        default=False, description="Do the work again and store the new results in the cache"
    )
    fresh: bool = Field(
        default=False, description="Pay for every call again: no cache, no checkpoint replay"
    )
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Extra prices in USD per 1M tokens, [input, output] by model, e.g. "
        '{"my-model": [0.15, 0.6]}',
    )
    # The offline model.
    offline_latency: Annotated[float, CommandLine("--latency")] = Field(
        default=0.2, ge=0, le=60, description="Seconds the offline model takes per call"
    )
    faults: FaultPlan = Field(
        default=FaultPlan(),
        description='Failures the offline back-end injects, e.g. {"rate": 0.2} or '
        '{"step": "critique", "nth": 2} (see refine_kit.offline.faults)',
    )
    # Where the run happens, and what it shows.
    verbose: Annotated[bool, CommandLine("--verbose/--quiet")] = Field(
        default=False, description="Show Flyte's own logs"
    )
    cluster: str | None = Field(
        default=None,
        description="Run on a Flyte cluster: a Flyte config file, or 'auto' for Flyte's own "
        "discovery; unset runs locally",
    )

    @field_validator("model", "base_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.match(value):
            raise ValueError(_URL_RULE)
        return value.rstrip("/") if value else value

    @property
    def uses_cache(self) -> bool:
        """Whether results are read from and written to Flyte's cache.

        Not for a fresh run, and never for a run with injected faults: a demo of failure must
        fail again next time, not be served from the cache (or leave a result there).
        """
        return self.cache and not self.fresh and not self.faults.active

    @property
    def resolved_base_url(self) -> str | None:
        """`base_url`, else `OPENAI_BASE_URL` as the OpenAI SDK reads it (None: OpenAI's API)."""
        return endpoint.configured_base_url(self.base_url)

    @property
    def resolved_backend(self) -> ResolvedBackend:
        if self.backend != "auto":
            return self.backend
        configured = self.resolved_base_url or os.environ.get(API_KEY_ENV)
        return "openai" if configured else "offline"

    @property
    def resolved_model(self) -> str:
        if self.model:
            return self.model
        return OFFLINE_MODEL if self.resolved_backend == "offline" else DEFAULT_OPENAI_MODEL

    def llm_config(self) -> "LLMConfig":
        """The secret-free view a task receives; validates the model/back-end pairing."""
        backend, model = self.resolved_backend, self.resolved_model
        base_url = self.resolved_base_url if backend == "openai" else None
        if base_url and not self.base_url and not _URL.match(base_url):
            raise ConfigError(f"{endpoint.BASE_URL_ENV}: {_URL_RULE}, got {base_url!r}")
        if backend == "offline" and self.base_url:
            raise ConfigError(
                f"base_url: {endpoint.url_without_credentials(self.base_url)} is set, but the "
                "back-end is 'offline'; set backend='openai' (or 'auto') to call that server"
            )
        if backend == "offline" and model != OFFLINE_MODEL:
            raise ConfigError(
                f"model: the offline back-end serves only {OFFLINE_MODEL!r}, not {model!r}; "
                "set backend='openai' (with an API key or base_url) to use other models"
            )
        official = endpoint.is_openai(base_url)
        if backend == "openai" and official and not _OPENAI_MODEL_PATTERN.match(model):
            raise ConfigError(
                f"model: {model!r} is not an OpenAI model name (gpt-*, o1/o3/o4*, chatgpt-*); "
                "for other models set base_url to the server that serves them"
            )
        # On a cluster the key comes from the API_KEY_SECRET secret, not this process.
        needs_local_key = self.cluster is None and official
        if backend == "openai" and needs_local_key and not os.environ.get(API_KEY_ENV):
            raise ConfigError(
                f"backend 'openai' needs an API key: set {API_KEY_ENV}, or set base_url to an "
                "OpenAI-compatible server, or use backend='offline'"
            )
        return LLMConfig(
            **self._carried_by(
                LLMConfig,
                backend=backend,
                model=model,
                # Credentials stay here; the config (a task input) carries the bare URL.
                base_url=endpoint.remember_credentials(base_url) if base_url else None,
                offline_latency=self.offline_latency if backend == "offline" else 0.0,
                faults=self.faults if backend == "offline" else FaultPlan(),
            )
        )

    def _carried_by(self, boundary: type[BaseModel], **computed: Any) -> dict[str, Any]:
        """A task input's values: each field named like a setting carries it as it is, unless
        computed from the settings here. (A field added to both needs no line of its own.)"""
        fields = type(self).model_fields
        carried = {name: getattr(self, name) for name in boundary.model_fields if name in fields}
        return {**carried, **computed}


if TYPE_CHECKING:
    Settings = SettingFields  # to a type checker: the same fields and methods


@functools.cache
def settings_class() -> type[SettingFields]:
    """`Settings`, made on first use: pydantic-settings takes a tenth of a second to import,
    and `refine-kit --help` (which needs only `SettingFields`) should not pay it."""
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Settings(BaseSettings, SettingFields):
        """Every knob of a run. Arguments win over `REFINE_KIT_*` environment variables."""

        model_config = SettingsConfigDict(
            env_prefix="REFINE_KIT_", extra="forbid", validate_default=True
        )

    Settings.__module__, Settings.__qualname__ = __name__, "Settings"
    return Settings


def __getattr__(name: str) -> Any:
    """`refine_kit.settings.Settings` (PEP 562): built by `settings_class` when first asked."""
    if name == "Settings":
        return settings_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default(name: str) -> Any:
    """A setting's default, as declared once on `SettingFields` (tasks and models derive theirs)."""
    return SettingFields.model_fields[name].get_default(call_default_factory=True)


def check_setting(name: str, value: Any) -> Any:
    """Validate one value against the `Settings` field it belongs to (type and bounds).

    Tasks call this for their own inputs: they can be started directly, without `Settings`.
    """
    try:
        validated = SettingFields.__pydantic_validator__.validate_assignment(
            SettingFields.model_construct(), name, value, strict=True
        )
    except ValidationError as exc:
        raise ConfigError.from_validation(exc) from None
    return getattr(validated, name)


class LLMConfig(BoundaryModel):
    """How to reach the model: the part of the settings a task needs, and nothing secret."""

    # The docstring is part of the literal type a cluster records: notes go in comments.
    # Fields are written out, as Flyte and type checkers read them; one named like a setting
    # has that setting's type and default (a test checks) and carries its value.

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: ResolvedBackend
    model: str
    base_url: str | None = None
    request_timeout: float = default("request_timeout")
    client_max_retries: int = default("client_max_retries")
    max_tokens: int = default("max_tokens")
    offline_latency: float = 0.0  # a task on its own answers at once; Settings passes its own
    reasks: int = default("reasks")
    client_backoff: float = default("client_backoff")
    faults: FaultPlan = default("faults")
    requests_per_minute: int | None = default("requests_per_minute")
    tokens_per_minute: int | None = default("tokens_per_minute")

    @property
    def endpoint_url(self) -> str:
        """Where calls go, as shown and recorded: 'offline', or the URL without credentials."""
        return "offline" if self.backend == "offline" else endpoint.shown(self.base_url)

    def applied(self) -> dict[str, Any]:
        """The settings that shaped this run's calls, for the manifest: the offline model's
        own knobs (its latency, injected faults) only when it answered."""
        offline_only = {"offline_latency", "faults"} if self.backend != "offline" else set()
        return self.model_dump(mode="json", exclude=offline_only)

    def describe(self) -> str:
        """The endpoint identity in words, for the line printed before a run's first call."""
        if self.backend == "offline":
            return f"the offline model ({self.model}), no network"
        return f"{self.endpoint_url}, model {self.model}"


def load_settings(settings: "Settings | None" = None, **overrides: Any) -> "Settings":
    """Build settings from keyword arguments (None means 'not given') over the environment.

    Raises `ConfigError` naming each bad field and what it allows, so bad input fails
    before any LLM call.
    """
    from pydantic_settings import SettingsError  # loaded by settings_class() below anyway

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        base = settings.model_dump(exclude_unset=True) if settings is not None else {}
        return settings_class()(**{**base, **given})
    except ValidationError as exc:
        raise ConfigError.from_validation(exc) from None
    except SettingsError as exc:  # an environment variable that is not even JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"REFINE_KIT_{field.group(1).upper()}" if field else "REFINE_KIT_* variable"
        raise ConfigError(f"{name}: not valid JSON ({exc.__cause__ or exc})") from None


def validate_topics(topics: Sequence[str]) -> list[str]:
    """Check a batch's topics and return them cleaned (surrounding whitespace removed).

    Duplicates are rejected rather than merged: two entries would write to the same folder
    and a silent merge would hide a typo in a topic list.
    """
    if isinstance(topics, str):
        raise ConfigError("topics: expected a list of topic strings, got a single string")
    topics = list(topics)
    if not topics:
        raise ConfigError("topics: the list is empty; give at least one topic")
    if len(topics) > MAX_TOPICS:
        raise ConfigError(f"topics: {len(topics)} topics given; at most {MAX_TOPICS} per batch")
    cleaned: list[str] = []
    seen: dict[str, int] = {}
    for i, topic in enumerate(topics):
        field = f"topics[{i}]"
        cleaned.append(validate_topic(topic, field=field))
        key = " ".join(cleaned[-1].split()).casefold()
        if key in seen:
            raise ConfigError(
                f"{field}: {cleaned[-1]!r} duplicates topics[{seen[key]}]; "
                "each topic may appear once (compared ignoring case and spacing)"
            )
        seen[key] = i
    return cleaned


def validate_topic(topic: object, *, field: str = "topic") -> str:
    """One topic: a non-blank string of at most MAX_TOPIC_CHARS printable characters."""
    if not isinstance(topic, str):
        raise ConfigError(f"{field}: expected a string, got {type(topic).__name__}")
    text = topic.strip()
    if not text:
        raise ConfigError(f"{field}: is blank; give a topic such as 'Solar power in cities'")
    if len(text) > MAX_TOPIC_CHARS:
        raise ConfigError(
            f"{field}: is {len(text)} characters; at most {MAX_TOPIC_CHARS} are allowed"
        )
    if any(not ch.isprintable() for ch in text):
        raise ConfigError(f"{field}: contains control characters; use plain text on one line")
    return text


class RunOptions(BoundaryModel):
    """What the batch task needs besides its topics. Secret-free, so it is safe as a task input."""

    # As in `LLMConfig`: a field named like a setting has its type and default, and carries it.

    model_config = ConfigDict(frozen=True, extra="forbid")

    llm: LLMConfig
    max_concurrency: int = default("max_concurrency")
    task_retries: int = default("task_retries")
    retry_backoff: float = default("retry_backoff")
    cache: bool = default("cache")
    refresh_cache: bool = default("refresh_cache")
    fresh: bool = default("fresh")
    output_dir: str | None = Field(
        default=str(default("output_dir")),
        description="None: the caller writes the files (remote runs)",
    )
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "RunOptions":
        return cls(
            **settings._carried_by(
                cls,
                llm=settings.llm_config(),
                cache=settings.uses_cache,
                # A remote task's disk is not the user's: the client writes the files instead.
                output_dir=None if settings.cluster else str(settings.output_dir),
            )
        )
