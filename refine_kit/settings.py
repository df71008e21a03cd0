"""One validated settings object, read from arguments first and `REFINE_KIT_*` variables second.

`Settings` is what users set. `LLMConfig` is the secret-free part that travels into Flyte
tasks as an input (and so into the cache key): API keys never leave the process
environment, so they cannot reach task inputs, caches, records or checkpoints.
"""

# No `from __future__ import annotations`: LLMConfig and RunOptions cross task boundaries,
# where Flyte reads their type hints on every conversion (see models.py).
import functools
import os
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

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


class SettingFields(BaseModel):
    """Every knob of a run, declared once: its type, default, bounds and meaning.

    `Settings` is this read from arguments and `REFINE_KIT_*` variables; defaults, bounds and
    help come from here, which loads no environment machinery (see `settings_class`).
    """

    # defer_build: the CLI's help reads the fields' defaults, not the validators.
    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)

    backend: Backend = Field(
        default="auto",
        description="'offline', 'openai' (any OpenAI-compatible server), or 'auto': "
        "openai when an API key or base_url is set, offline otherwise",
    )
    model: str | None = Field(
        default=None, description=f"Model name; default {DEFAULT_OPENAI_MODEL} or {OFFLINE_MODEL}"
    )
    base_url: str | None = Field(
        default=None, description="An OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"
    )
    max_iterations: int = Field(default=3, ge=1, le=10, description="Most revisions per topic")
    quality_threshold: int = Field(
        default=8, ge=1, le=10, description="Stop once a draft scores this"
    )
    max_concurrency: int = Field(
        default=REPLICAS * CONCURRENCY_PER_REPLICA,
        ge=1,
        le=256,
        description="Most LLM calls in flight (default: llm_env's replicas x concurrency)",
    )
    requests_per_minute: int | None = Field(
        default=None,
        gt=0,
        description="Your tier's requests per minute; paced under it (also learned from "
        "x-ratelimit-* headers)",
    )
    tokens_per_minute: int | None = Field(
        default=None,
        gt=0,
        description="Your tier's tokens per minute (prompt + max_tokens per request); paced "
        "under it",
    )
    request_timeout: float = Field(default=60.0, gt=0, le=600, description="Seconds per request")
    client_max_retries: int = Field(
        default=2, ge=0, le=10, description="OpenAI client retries of transient HTTP errors"
    )
    max_tokens: int = Field(default=2000, ge=64, le=32_000, description="Completion token cap")
    reasks: int = Field(
        default=2, ge=0, le=5, description="Re-asks when a structured answer fails validation"
    )
    offline_latency: float = Field(
        default=0.2, ge=0, le=60, description="Seconds the offline model takes per call"
    )
    client_backoff: float = Field(
        default=0.5, ge=0, le=60, description="First wait before a client retry (no Retry-After)"
    )
    faults: FaultPlan = Field(
        default=FaultPlan(), description="Faults the offline back-end injects (JSON in env)"
    )
    task_retries: int = Field(default=3, ge=0, le=10, description="Flyte retries of refine_report")
    retry_backoff: float = Field(
        default=0.5, ge=0, le=60, description="First wait between task retries, in seconds"
    )
    output_dir: Path = Field(default=Path("refine_outputs"), description="Where files are written")
    cache: bool = Field(default=True, description="Reuse cached results of unchanged work")
    refresh_cache: bool = Field(
        default=False,
        description="Compute every topic again and store the new results in the cache",
    )
    fresh: bool = Field(
        default=False, description="Pay for every call again: no cache, no checkpoint replay"
    )
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="Extra USD per 1M tokens (input, output) by model"
    )
    verbose: bool = Field(default=False, description="Show Flyte's own logs")
    cluster: str | None = Field(
        default=None,
        description="Run on a Flyte cluster: a Flyte config file path, or 'auto' for Flyte's "
        "usual config discovery; unset runs locally",
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
            backend=backend,
            model=model,
            # Credentials stay in this process; the config (a task input) carries the bare URL.
            base_url=endpoint.remember_credentials(base_url) if base_url else None,
            request_timeout=self.request_timeout,
            client_max_retries=self.client_max_retries,
            max_tokens=self.max_tokens,
            offline_latency=self.offline_latency if backend == "offline" else 0.0,
            reasks=self.reasks,
            client_backoff=self.client_backoff,
            faults=self.faults if backend == "offline" else FaultPlan(),
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
        )


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
    faults: FaultPlan = FaultPlan()
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

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


def describe_settings() -> str:
    """The settings as a docstring section: name, default and meaning, from `Settings` itself."""
    lines = ["", "", "    Settings (each also read from REFINE_KIT_<NAME>):", ""]
    for name, info in SettingFields.model_fields.items():
        value = default(name)
        shown = f"{type(value).__name__}()" if isinstance(value, BaseModel) else repr(value)
        text = f"{name} (default {shown}): {info.description}."
        lines.append(textwrap.fill(text, 96, initial_indent=" " * 8, subsequent_indent=" " * 12))
    return "\n".join(lines) + "\n"


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
            llm=settings.llm_config(),
            max_concurrency=settings.max_concurrency,
            task_retries=settings.task_retries,
            retry_backoff=settings.retry_backoff,
            cache=settings.uses_cache,
            refresh_cache=settings.refresh_cache,
            fresh=settings.fresh,
            # A remote task's disk is not the user's: the client writes the files instead.
            output_dir=None if settings.cluster else str(settings.output_dir),
            prices=settings.prices,
        )
