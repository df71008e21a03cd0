"""Which endpoint a run talks to, and what that endpoint accepts.

Identity: the base URL without credentials, plus the model. The URL comes from the
`base_url` setting, else from `OPENAI_BASE_URL` exactly as the OpenAI SDK reads it, else
OpenAI's own API. It is shown before the first call, written in records and manifests, and
is part of the cache and replay keys, so server A's answers are never served for server B.

Capabilities differ between servers: LM Studio refuses `json_object`, reasoning models
refuse `max_tokens`, some servers have no JSON mode at all. The client steps down when a
server refuses a request shape and remembers here, per endpoint, what worked, so each
fallback is paid once per process. `refine_kit.reset()` forgets.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
#: The Flyte secret that carries the key on a cluster (mounted as API_KEY_ENV).
API_KEY_SECRET = "openai-api-key"
OPENAI_API_URL = "https://api.openai.com/v1"

StructuredMode = Literal["json_schema", "json_object", "instructions"]
#: From the most to the least help a server gives; "instructions" relies on the prompt.
STRUCTURED_LADDER: tuple[StructuredMode, ...] = ("json_schema", "json_object", "instructions")
TokenParameter = Literal["max_tokens", "max_completion_tokens"]


def configured_base_url(explicit: str | None) -> str | None:
    """The base URL in force: the setting, else `OPENAI_BASE_URL` (as the SDK reads it)."""
    value = explicit or os.environ.get(BASE_URL_ENV, "").strip() or None
    return value.rstrip("/") if value else None


def url_without_credentials(url: str) -> str:
    """A URL as it may be shown and stored: user and password removed."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


_credentials: dict[str, str] = {}


def remember_credentials(base_url: str) -> str:
    """Keep a URL's credentials in this process only; return the URL without them.

    The bare URL is what travels (task inputs, caches, records); the client asks for the
    full one with `with_credentials`. Like the API key, credentials never leave the process.
    """
    bare = url_without_credentials(base_url)
    if bare != base_url:
        with _lock:
            _credentials[bare] = base_url
    return bare


def with_credentials(bare_url: str) -> str:
    """The URL to send requests to: the bare URL with its remembered credentials, if any."""
    with _lock:
        return _credentials.get(bare_url, bare_url)


def shown(base_url: str | None) -> str:
    """The URL to show and store for a configured base URL (None: OpenAI's own API)."""
    return url_without_credentials(base_url) if base_url else OPENAI_API_URL


def is_openai(base_url: str | None) -> bool:
    """True for OpenAI's own API, whose newer models take only `max_completion_tokens`."""
    return base_url is None or (urlsplit(base_url).hostname or "").endswith("api.openai.com")


@dataclass
class Capabilities:
    """What one endpoint has been seen to accept; None means not known yet."""

    structured: StructuredMode | None = None
    token_parameter: TokenParameter | None = None


_known: dict[tuple[str, str], Capabilities] = {}
_lock = threading.Lock()


def capabilities(url: str, model: str) -> Capabilities:
    """The shared record for (url, model); created empty on first use."""
    with _lock:
        return _known.setdefault((url, model), Capabilities())


def forget() -> None:
    """Forget every endpoint's capabilities (the next calls probe again)."""
    with _lock:
        _known.clear()


@functools.cache
def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema in the strict subset OpenAI's structured outputs accept.

    Every property required, no extra properties, and only the keywords the strict mode
    knows; bounds such as the score's 1..10 are checked by pydantic on the answer instead.
    Built once per model (every critique request carries it): read it, do not edit it.
    """
    keep = {"type", "properties", "required", "additionalProperties", "items", "description"}

    def strip(node: dict[str, Any]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties":
                kept[key] = {name: strip(sub) for name, sub in value.items()}
            elif key == "items" and isinstance(value, dict):
                kept[key] = strip(value)
            elif key in keep:
                kept[key] = value
        return kept

    schema = strip(model.model_json_schema())
    schema["required"] = list(schema.get("properties", {}))
    schema["additionalProperties"] = False
    return schema


def response_format(mode: StructuredMode, model: type[BaseModel] | None) -> dict[str, Any] | None:
    """The `response_format` for a structured request in `mode` (None: ask by prompt only)."""
    if mode == "json_schema" and model is not None:
        schema = {"name": model.__name__, "schema": strict_schema(model), "strict": True}
        return {"type": "json_schema", "json_schema": schema}
    if mode in ("json_schema", "json_object"):
        return {"type": "json_object"}
    return None
