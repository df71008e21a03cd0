"""Which endpoint a run talks to, and what that endpoint accepts.

Identity: the base URL without credentials, plus the model. The URL comes from the
`base_url` setting, else from `OPENAI_BASE_URL` exactly as the OpenAI SDK reads it, else
OpenAI's own API. It is shown before the first call, written in records and manifests, and
is part of the cache and replay keys, so server A's answers are never served for server B.

Capabilities differ between servers: LM Studio refuses `json_object`, reasoning models
refuse `max_tokens`, some servers have no JSON mode at all. The client steps down when a
server refuses a request shape and remembers here, per endpoint, what worked, for as long
as the process runs: finding out costs refused requests, and the answer is the same for
the next run, so each fallback is paid once per process. `refine_kit.reset()` forgets.

The structured-output shape is also remembered across runs, in the user's cache folder
(`endpoints.json`, for `REMEMBER_FOR`): finding it out makes a new endpoint's critiques wait
for the first one's answer, and a notebook or a papermill job starts a new process each
time. Nothing else is stored there: no key, no credentials, no prompts.

A base URL's credentials also live here for the whole process (`remember_credentials`):
like the API key in the environment they must never travel with a run, so task inputs,
caches and records carry the bare URL, and the client looks the credentials up by it.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic reads only this one on Python 3.11

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


def sent_credentials() -> list[str]:
    """Every form in which this process sends a URL's credentials, for redaction.

    httpx turns `http://user:pass@host` into `Authorization: Basic base64(user:pass)`, so a
    server echoing that header shows neither the URL nor the password, only the base64.
    """
    with _lock:
        urls = list(_credentials.values())
    forms: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        pair = f"{user}:{password}"
        encoded = base64.b64encode(pair.encode()).decode()
        forms += [encoded, encoded.rstrip("="), pair, parts.netloc.rpartition("@")[0]]
        if len(password) >= 4:  # shorter would mask ordinary words; the forms above stay
            forms.append(password)
    return sorted({f for f in forms if f}, key=len, reverse=True)  # longest first


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

#: How long a remembered structured-output shape is trusted: servers are upgraded and
#: models swapped behind the same URL. A shape that is refused later is stepped down anyway.
REMEMBER_FOR = timedelta(days=7)
#: The file keeps the endpoints used most recently (loopback test servers change port).
REMEMBERED_ENDPOINTS = 64


class Remembered(TypedDict):
    """One endpoint's line in `endpoints.json` (validated by pydantic when read)."""

    structured: StructuredMode
    learned_at: AwareDatetime


@functools.cache
def _remembered_file() -> TypeAdapter[dict[str, Remembered]]:
    return TypeAdapter(dict[str, Remembered])  # built by the first run that reads the file


def state_file() -> Path:
    """Where structured-output shapes are remembered across runs (the user's cache folder)."""
    import platformdirs  # only a run that talks to an endpoint needs it

    return Path(platformdirs.user_cache_dir("refine_kit")) / "endpoints.json"


def capabilities(url: str, model: str, *, remember: bool = True) -> Capabilities:
    """The shared record for (url, model): on first use, what an earlier run remembered.

    `remember=False` (the offline model) neither reads nor writes the file.
    """
    with _lock:
        caps = _known.get((url, model))
        if caps is None:
            caps = _known[(url, model)] = Capabilities(
                structured=_recall(url, model) if remember else None
            )
        return caps


def learn_structured(url: str, model: str, mode: StructuredMode, *, remember: bool = True) -> None:
    """Record the structured-output shape that worked; only ever a step down the ladder.

    Every structured call reports its shape; only a change is written. Calls in flight may
    report in any order: a shape the server refused can never come back that way.
    """
    caps = capabilities(url, model, remember=remember)
    with _lock:
        known = caps.structured
        if known is not None and STRUCTURED_LADDER.index(mode) <= STRUCTURED_LADDER.index(known):
            return
        caps.structured = mode
    if remember:
        _persist(url, model, mode)


def forget() -> None:
    """Forget every endpoint's capabilities, here and on disk (the next calls probe again)."""
    with _lock:
        _known.clear()
        with contextlib.suppress(OSError):
            state_file().unlink(missing_ok=True)


def _entry(url: str, model: str) -> str:
    return f"{model} @ {url}"


def _read_remembered(path: Path) -> dict[str, Remembered]:
    """The file's entries; an unreadable or malformed file counts as empty."""
    try:
        return _remembered_file().validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return {}


def _recall(url: str, model: str) -> StructuredMode | None:
    entry = _read_remembered(state_file()).get(_entry(url, model))
    if entry is None or datetime.now(timezone.utc) - entry["learned_at"] > REMEMBER_FOR:
        return None
    return entry["structured"]


def _persist(url: str, model: str, mode: StructuredMode) -> None:
    """Add one endpoint to the file: merged under a lock, replaced whole, never half-written.

    A read-only or full disk (a cluster pod, say) only means the next run probes again.
    """
    from filelock import FileLock

    path = state_file()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.with_suffix(".lock"), timeout=5):
            entries = _read_remembered(path)
            entries[_entry(url, model)] = {
                "structured": mode,
                "learned_at": datetime.now(timezone.utc),
            }
            newest = sorted(entries.items(), key=lambda kv: kv[1]["learned_at"])
            kept = dict(newest[-REMEMBERED_ENDPOINTS:])
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(_remembered_file().dump_json(kept, indent=1))
            os.replace(partial, path)


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema in the strict subset OpenAI's structured outputs accept.

    Every object (nested models in `$defs` too) lists all its properties as required and
    allows no others, and only keywords the strict mode knows are kept; bounds such as the
    score's 1..10 are checked by pydantic on the answer instead. A new copy every call, so a
    caller may change it without changing anyone else's.
    """
    schema: dict[str, Any] = json.loads(_strict_schema_text(model))
    return schema


#: The JSON-schema keywords OpenAI's strict mode accepts (others are dropped, not refused).
_STRICT_KEYWORDS = {"type", "description", "enum", "const", "required", "additionalProperties"}


@functools.cache
def _strict_schema_text(model: type[BaseModel]) -> str:
    """Built once per model (every structured request carries it), kept as text: immutable."""

    def strip(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in node:  # a reference stands alone in strict mode
            return {"$ref": node["$ref"]}
        kept: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("properties", "$defs"):
                kept[key] = {name: strip(sub) for name, sub in value.items()}
            elif key == "items" and isinstance(value, dict):
                kept[key] = strip(value)
            elif key == "anyOf":  # Optional fields: [{...}, {"type": "null"}]
                kept[key] = [strip(option) for option in value]
            elif key in _STRICT_KEYWORDS:
                kept[key] = value
        if "properties" in kept:
            kept["required"] = list(kept["properties"])
            kept["additionalProperties"] = False
        return kept

    return json.dumps(strip(model.model_json_schema()))


def response_format(mode: StructuredMode, model: type[BaseModel] | None) -> dict[str, Any] | None:
    """The `response_format` for a structured request in `mode` (None: ask by prompt only)."""
    if mode == "json_schema" and model is not None:
        schema = {"name": model.__name__, "schema": strict_schema(model), "strict": True}
        return {"type": "json_schema", "json_schema": schema}
    if mode in ("json_schema", "json_object"):
        return {"type": "json_object"}
    return None
