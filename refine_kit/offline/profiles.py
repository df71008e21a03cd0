"""Server profiles: the documented quirks of the OpenAI-compatible servers people run, as data.

The kit's tests drive the pipeline through the offline server to show it works against real
servers, so the server must refuse what they refuse and answer as oddly as they answer. A
`ServerProfile` is a few fields (accepted `response_format` types, honoured token parameters,
rate-limit headers, context window) and two small hooks: the shape of its error bodies and how
its model's answer reaches `content`. `check_chat` applies a profile's request rules before
any model work. The model-quirk profiles (`fenced`, `reasoning`, `no-json-mode`) are `openai`
with only that quirk changed, so a test isolates one misbehaviour at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any

from refine_kit.offline.model import count_tokens
from refine_kit.offline.ratelimit import RateLimits  # the headers' format lives with the limiter
from refine_kit.settings import OFFLINE_MODEL

#: The models `/v1/models` announces; any other name is refused with 404, as OpenAI does.
SERVED_MODELS: tuple[str, ...] = (OFFLINE_MODEL,)
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: Tokens of chat-template framing per message, counted as servers count them. It also bounds
#: the number of messages a window admits, so no request can make the model loop for long.
MESSAGE_OVERHEAD = 4
#: Parameters this server does not implement: refused rather than silently ignored.
UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call")
OPENAI_FORMATS = frozenset({"text", "json_object", "json_schema"})
_MISSING = "missing_required_parameter"


@dataclass(frozen=True)
class ApiError:
    """One refusal, before a profile words and shapes it (fields as in OpenAI's errors)."""

    status: int
    message: str
    kind: str = "invalid_request_error"  # OpenAI's `type`
    param: str | None = None
    code: str | None = None
    rule: str = ""  # which check refused, for a profile's own wording or shape
    details: Mapping[str, object] = field(default_factory=dict)  # fills that wording


ErrorShape = Callable[[ApiError], dict[str, Any]]
#: (the model's answer, the pipeline step it answers) -> what the server puts in `content`.
Rewrite = Callable[[str, str], str]


def openai_error(error: ApiError) -> dict[str, Any]:
    """OpenAI's error body (LM Studio's and most gateways' too)."""
    body = {"message": error.message, "type": error.kind, "param": error.param, "code": error.code}
    return {"error": body}


def flat_error(error: ApiError) -> dict[str, Any]:
    """`{"error": "text"}`: the openai SDK keeps the text only in the exception's `body`."""
    return {"error": error.message}


def vllm_error(error: ApiError) -> dict[str, Any]:
    """vLLM's flat body: `type` names the HTTP error and `code` is the status number."""
    phrase = HTTPStatus(error.status).phrase.title().replace(" ", "").replace("-", "")
    kind = phrase if phrase.endswith("Error") else phrase + "Error"
    return {"object": "error", **openai_error(error)["error"], "type": kind, "code": error.status}


def _as_is(content: str, step: str) -> str:
    return content


def _around_critiques(template: str) -> Rewrite:
    """A model that does not answer bare JSON when nothing enforces it: each critique (the
    JSON answer) goes where `{}` is in `template`; other answers pass as they are."""
    return lambda content, step: template.format(content) if step == "critique" else content


_THOUGHTS = {
    "draft": "The user wants a report. I should plan its sections first. Then I write it.",
    "critique": "I must judge this report. Let me check structure and evidence. JSON only.",
    "revise": "I have a report and improvements. I apply each one. Then I return it whole.",
    "summary": "I need an executive summary. Let me pick the main findings. Keep it short.",
}


def _thinking_first(content: str, step: str) -> str:
    """A reasoning model served without a reasoning parser: its thoughts lead `content`."""
    thought = _THOUGHTS.get(step, "Let me think about what is asked. Then I will answer.")
    return f"<think>\n{thought}\n</think>\n\n{content}"


@dataclass(frozen=True, eq=False)
class ServerProfile:
    """How one kind of server behaves: what it refuses, how it words errors and answers."""

    name: str
    summary: str  # one line, for help texts
    #: The `response_format.type` values accepted; None: ignored (not checked, not obeyed).
    response_formats: frozenset[str] | None = OPENAI_FORMATS
    #: Check `strict: true` schemas as OpenAI does (every property required, no extras).
    strict_schemas: bool = True
    #: The token parameters that cap an answer, first present wins; others are ignored.
    token_params: tuple[str, ...] = ("max_completion_tokens", "max_tokens")
    context_window: int = 32_768
    rate_limits: RateLimits | None = RateLimits()
    error_shape: ErrorShape = openai_error
    error_shapes: Mapping[str, ErrorShape] = field(default_factory=dict)  # by ApiError.rule
    wording: Mapping[str, str] = field(default_factory=dict)  # message templates by rule
    rewrite: Rewrite = _as_is

    @property
    def passes_json_mode(self) -> bool:
        """Whether the model is told about `response_format` at all."""
        return self.response_formats is not None

    def error_body(self, error: ApiError) -> dict[str, Any]:
        """The body this server sends for `error`, in its words and its shape."""
        template = self.wording.get(error.rule)
        if template is not None:
            error = replace(error, message=template.format(**error.details))
        return self.error_shapes.get(error.rule, self.error_shape)(error)


OPENAI = ServerProfile("openai", "Strict like OpenAI: OpenAI-shaped errors, rate-limit headers")
PROFILES: dict[str, ServerProfile] = {
    p.name: p
    for p in (
        OPENAI,
        ServerProfile(
            "lmstudio",
            "LM Studio: refuses response_format json_object (json_schema or text only)",
            response_formats=frozenset({"text", "json_schema"}),
            strict_schemas=False,
            rate_limits=None,
            # This one refusal arrives flat (lmstudio-bug-tracker #189); others are OpenAI's.
            error_shapes={"response_format_type": flat_error},
            wording={
                "response_format_type": "'response_format.type' must be 'json_schema' or 'text'"
            },
        ),
        ServerProfile(
            "ollama",
            "Ollama: flat error bodies, no rate-limit headers, only max_tokens, any API key",
            strict_schemas=False,
            token_params=("max_tokens",),  # max_completion_tokens is not a field it knows
            rate_limits=None,
            error_shape=flat_error,
            wording={"unknown_model": 'model "{model}" not found, try pulling it first'},
        ),
        ServerProfile(
            "vllm",
            "vLLM: flat {'object': 'error'} bodies, both token parameters, no rate limits",
            strict_schemas=False,
            rate_limits=None,
            error_shape=vllm_error,
            wording={"unknown_model": "The model `{model}` does not exist."},
        ),
        replace(
            OPENAI,
            name="fenced",
            summary="A model that wraps its JSON critiques in a ```json fence after a sentence",
            rewrite=_around_critiques("Here is the critique as JSON:\n\n```json\n{}\n```"),
        ),
        replace(
            OPENAI,
            name="reasoning",
            summary="A reasoning model without a reasoning parser: <think>...</think> first",
            rewrite=_thinking_first,
        ),
        replace(
            OPENAI,
            name="json-mode-only",
            summary="An older server: JSON mode (json_object) but no JSON schemas",
            response_formats=frozenset({"text", "json_object"}),
        ),
        replace(
            OPENAI,
            name="no-response-format",
            summary="A gateway route that refuses any response_format with a 400",
            response_formats=frozenset({"text"}),
        ),
        replace(
            OPENAI,
            name="no-json-mode",
            summary="A server that ignores response_format: prose around the JSON critique",
            response_formats=None,
            rewrite=_around_critiques("Here is my assessment: {} I hope this helps."),
        ),
    )
}


def profile_named(profile: str | ServerProfile) -> ServerProfile:
    """The profile with that name (a profile object passes through)."""
    if isinstance(profile, ServerProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ValueError(f"unknown server profile {profile!r}; choose one of: {known}") from None


# ---------------------------------------------------------------------------------------------
# What a server refuses before any model work


def message_text(content: object) -> str:
    """A message's text: a string, or the text parts of an OpenAI content list."""
    if isinstance(content, list):
        return "".join(str(p["text"]) for p in content if isinstance(p, dict) and "text" in p)
    return content if isinstance(content, str) else ""


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """The prompt's size as the server counts it against the context window."""
    return sum(count_tokens(message_text(m.get("content"))) + MESSAGE_OVERHEAD for m in messages)


def requested_limit(body: dict[str, Any], profile: ServerProfile) -> int | None:
    """The completion cap the client asked for, in the first parameter the server honours."""
    given = (int(body[name]) for name in profile.token_params if body.get(name) is not None)
    return next(given, None)


def check_chat(body: object, profile: ServerProfile) -> ApiError | None:
    """Why `profile`'s server would refuse this chat request, or None to answer it.

    The request's shape first (400), then the model (404), then the context window (400),
    as OpenAI orders them. Every check is linear in the request's size.
    """
    if not isinstance(body, dict):
        return ApiError(400, "The request body must be a JSON object", code="invalid_type")
    for check in (_messages, _streaming, _unsupported, _response_format, _token_limits):
        if (error := check(body, profile)) is not None:
            return error
    model = body.get("model")
    if model not in SERVED_MODELS:
        name = model if isinstance(model, str) else ""
        message = f"The model `{name}` does not exist or you do not have access to it."
        return ApiError(
            404, message, code="model_not_found", rule="unknown_model", details={"model": name}
        )
    return _context_window(body, profile)


def _text_or_none(value: object) -> str | None:
    """A field that must be a string, or None: a list or object there cannot be looked up."""
    return value if isinstance(value, str) else None


def _invalid(param: str, message: str, code: str = "invalid_value", rule: str = "") -> ApiError:
    return ApiError(400, message, param=param, code=code, rule=rule)


def _messages(body: dict[str, Any], profile: ServerProfile) -> ApiError | None:
    messages = body.get("messages")
    if messages is None:
        return _invalid("messages", "Missing required parameter: 'messages'.", _MISSING)
    if not isinstance(messages, list):
        message = "'messages' must be a list of {'role', 'content'} objects"
        return _invalid("messages", message, "invalid_type")
    if not messages:
        message = "Invalid 'messages': empty array. Expected an array with at least 1 message."
        return _invalid("messages", message, "empty_array")
    for i, item in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            return _invalid(where, f"'{where}' must be a {{'role', 'content'}} object")
        if _text_or_none(item.get("role")) not in ROLES:
            roles = ", ".join(sorted(ROLES))
            return _invalid(f"{where}.role", f"Invalid '{where}.role': expected one of {roles}.")
        content = item.get("content")
        if not (
            isinstance(content, str | list) or (content is None and item["role"] == "assistant")
        ):
            message = f"Invalid type for '{where}.content': expected a string or a list of parts."
            return _invalid(f"{where}.content", message, "invalid_type")
    return None


def _streaming(body: dict[str, Any], profile: ServerProfile) -> ApiError | None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return _invalid("stream", "Invalid type for 'stream': expected a boolean.", "invalid_type")
    options = body.get("stream_options")
    if options is not None and not (stream and isinstance(options, dict)):
        message = "'stream_options' must be an object, and is only allowed when 'stream' is true."
        return _invalid("stream_options", message)
    return None


def _unsupported(body: dict[str, Any], profile: ServerProfile) -> ApiError | None:
    n = body.get("n")
    if n is not None and (n != 1 or isinstance(n, bool)):
        message = f"Unsupported value: 'n' must be 1 on this server (one choice), got {n!r}."
        return _invalid("n", message, "unsupported_value")
    for name in UNSUPPORTED:
        if body.get(name) is not None:
            message = f"Unsupported parameter: '{name}' (function calling) is not supported here."
            return _invalid(name, message, "unsupported_parameter")
    return None


def _response_format(body: dict[str, Any], profile: ServerProfile) -> ApiError | None:
    fmt = body.get("response_format")
    allowed = profile.response_formats
    if fmt is None or allowed is None:
        return None
    if not isinstance(fmt, dict):
        message = "'response_format' must be an object such as {'type': 'json_object'}"
        return _invalid("response_format", message, "invalid_type")
    kind = fmt.get("type")
    if _text_or_none(kind) not in allowed:
        supported = ", ".join(f"'{k}'" for k in sorted(allowed))
        got = repr(kind) if isinstance(kind, str | None) else f"a {type(kind).__name__}"
        message = f"Invalid value for 'response_format.type': {got}. Supported: {supported}."
        return _invalid("response_format.type", message, rule="response_format_type")
    if kind != "json_schema":
        return None
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        message = "Missing required parameter: 'response_format.json_schema' with a 'name'."
        return _invalid("response_format.json_schema", message, _MISSING)
    if not isinstance(spec.get("schema"), dict):
        message = "Missing required parameter: 'response_format.json_schema.schema' (an object)."
        return _invalid("response_format.json_schema.schema", message, _MISSING)
    strict = profile.strict_schemas and spec.get("strict") is True
    if strict and (problem := _strict_problem(spec["schema"])) is not None:
        message = f"Invalid schema for response_format '{spec['name']}': {problem}"
        return _invalid("response_format", message, "invalid_json_schema")
    return None


def _strict_problem(schema: dict[str, Any]) -> str | None:
    """What OpenAI's strict mode objects to in a schema's objects, else None.

    Strict mode needs every property listed in `required` and `additionalProperties: false`.
    Iterative (a deep schema cannot exhaust the stack) and frugal: a 1 MB schema holds tens
    of thousands of nodes, so nothing is built per node but the stack entry.
    """
    stack: list[tuple[str, object]] = [("the root", schema)]
    while stack:
        name, node = stack.pop()  # name: the property (or definition) the node describes
        if isinstance(node, list):  # anyOf, prefixItems...
            stack.extend((name, item) for item in node if isinstance(item, dict | list))
            continue
        if not isinstance(node, dict):
            continue
        properties = node.get("properties")
        if isinstance(properties, dict):
            listed = node.get("required")  # a set: a list would make this check quadratic
            required = {r for r in listed if isinstance(r, str)} if isinstance(listed, list) else ()
            if missing := next((k for k in properties if k not in required), None):
                return f"in {name}, 'required' must list every property; {missing!r} is missing."
            if node.get("additionalProperties") is not False:
                return f"in {name}, 'additionalProperties' must be false."
        for key, value in node.items():
            if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
                stack.extend((k, v) for k, v in value.items() if isinstance(v, dict | list))
            elif isinstance(value, dict | list) and key not in ("required", "enum", "const"):
                stack.append((name, value))
    return None


def _token_limits(body: dict[str, Any], profile: ServerProfile) -> ApiError | None:
    for name in profile.token_params:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            return _invalid(
                name, f"Invalid type for '{name}': expected an integer.", "invalid_type"
            )
        if value < 1:
            message = (
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, "
                f"but got {value} instead."
            )
            return _invalid(name, message, "integer_below_min_value")
    return None


def _context_window(body: dict[str, Any], profile: ServerProfile) -> ApiError | None:
    """The vLLM/OpenAI context check: prompt plus requested output must fit the window."""
    window = profile.context_window
    prompt = prompt_tokens(body["messages"])
    limit = requested_limit(body, profile)
    if (prompt < window) if limit is None else (prompt + limit <= window):
        return None
    asked = (
        f"your messages resulted in {prompt} tokens. Please reduce the length of the messages."
        if limit is None
        else f"you requested {prompt + limit} tokens ({prompt} in the messages, {limit} in the "
        "completion). Please reduce the length of the messages or completion."
    )
    message = f"This model's maximum context length is {window} tokens. However, {asked}"
    return _invalid("messages", message, "context_length_exceeded")
