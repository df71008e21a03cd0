"""What went wrong with an endpoint, in one message a user can act on.

The OpenAI SDK's own messages drop what matters ("Connection error.", a bare 404, "Error
code: 400" with the server's reason hidden in `exc.body`). `explain` names the URL, the
status, the server's own message and how many requests were made, and adds a hint where
the cause is known: a base URL missing `/v1`, a page that is not an API, a wrong model name,
a refused key, a context too small for `max_tokens`. Everything is redacted.
"""

from __future__ import annotations

import errno
import socket
from typing import Any
from urllib.parse import urlsplit

import openai

from refine_kit.redaction import one_line

#: The client turns a 200 that is not a chat completion into this status (see client.py).
NOT_A_COMPLETION = 502
NOT_A_COMPLETION_CODE = "not_a_chat_completion"


def server_message(body: object) -> str:
    """The server's own reason, from any of the error shapes servers use."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or "")
        if isinstance(error, str):
            return error  # Ollama's flat {"error": "text"}
    if isinstance(body, str):
        return body
    return ""


def error_code(exc: openai.APIStatusError) -> str:
    body = exc.body
    error = body.get("error", body) if isinstance(body, dict) else None
    return str(error.get("code") or error.get("type") or "") if isinstance(error, dict) else ""


def explain(exc: Exception, *, url: str, model: str, timeout: float, requests: int) -> str:
    """One line: what failed, where, what the server said, and what to try."""
    tries = f"after {requests} request{'s' if requests != 1 else ''}"
    where = f"{url}/chat/completions"
    if isinstance(exc, openai.APITimeoutError):
        return one_line(
            f"{where} gave no answer within request_timeout={timeout:g} s ({tries}); "
            "is the server overloaded, or the model still loading?"
        )
    if isinstance(exc, openai.APIConnectionError):
        reason = _connection_reason(exc)
        if reason == UNRESOLVED:
            host = urlsplit(url).hostname or url
            hint = f"; check the host name {host!r} in base_url (a typo, or a VPN not connected?)"
        else:
            hint = " (is the server running, and is this its address and port?)"
        return one_line(f"could not connect to {where}: {reason} ({tries}){hint}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = server_message(exc.body) or exc.message
        text = f"{where} answered HTTP {status} ({tries}): {message}"
        if error_code(exc) == NOT_A_COMPLETION_CODE:  # our stand-in status for a bad 200
            text = f"{where}: {message} ({tries})"
        hint = _hint(exc, status, message, url=url, model=model)
        # The server's reason often ends in a period of its own.
        return one_line(f"{text.rstrip(' .')}. {hint}" if hint else text, limit=600)
    return one_line(f"{type(exc).__name__} from {where} ({tries}): {exc}")


#: What a failed name lookup is called, whatever the platform's resolver said.
UNRESOLVED = "the host name did not resolve"
_RESOLVER_WORDS = (
    "name or service not known",  # glibc
    "temporary failure in name resolution",  # glibc, no DNS reachable
    "nodename nor servname",  # macOS
    "no address associated with hostname",
    "getaddrinfo failed",  # Windows
)


def _connection_reason(exc: Exception) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return UNRESOLVED
        if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
            return "connection refused"
        text = str(cause).lower()
        if any(words in text for words in _RESOLVER_WORDS):
            return UNRESOLVED
        if "refused" in text:
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return str(exc.__cause__ or exc) or "the connection failed"


def _hint(exc: openai.APIStatusError, status: int, message: str, *, url: str, model: str) -> str:
    code, lower = error_code(exc), message.lower()
    if code == NOT_A_COMPLETION_CODE:
        return "Is base_url the server's OpenAI-compatible API (it usually ends in /v1)?"
    if status in (401, 403):
        return "The endpoint refused the API key: check OPENAI_API_KEY for this server."
    if status == 404 and ("model" in lower or code == "model_not_found"):
        return f"The server does not serve model {model!r}: set model to one of {url}/models."
    if status == 404 and not url.rstrip("/").endswith("/v1"):
        return f"OpenAI-compatible servers serve the API under /v1: try base_url={url}/v1."
    if status == 404:
        return "Is base_url the server's OpenAI-compatible API?"
    if "context" in lower and ("length" in lower or "window" in lower or "exceed" in lower):
        return "The prompt plus max_tokens exceed the model's context: lower max_tokens."
    if status == 429:
        return "The endpoint kept rate-limiting: lower max_concurrency, or wait and run again."
    return ""


def is_format_refusal(exc: openai.BadRequestError) -> bool:
    """A 400 that refuses the requested `response_format` (so a simpler one may work)."""
    text = f"{server_message(exc.body)} {getattr(exc, 'param', '') or ''}".lower()
    return any(word in text for word in ("response_format", "json_schema", "json_object"))


def refused_parameter(exc: openai.BadRequestError, *names: str) -> str | None:
    """Which of `names` a 400 says is not supported, if any."""
    body: Any = exc.body
    error = body.get("error", body) if isinstance(body, dict) else {}
    param = error.get("param") if isinstance(error, dict) else None
    text = server_message(exc.body).lower()
    for name in names:
        if param == name or (name in text and ("unsupported" in text or "not supported" in text)):
            return name
    return None
