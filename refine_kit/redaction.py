"""Keeping secrets and hostile text out of what the kit prints and stores.

Two jobs, applied wherever text from outside (a server's error, a topic, a model's answer)
meets a user's files or terminal:

- `redact` removes secrets: the configured API key, any bearer token, credentials in URLs,
  and every form the kit sends a URL's credentials in (the pair, its base64 in a Basic
  Authorization header, the password). A server that echoes the Authorization header in its
  401 message must not put any of them into records, manifests, logs or tracebacks.
- `plain` makes text safe for a terminal: control characters (ESC/OSC sequences can set the
  window title, clear the screen or write the clipboard) are dropped, and Rich markup is
  escaped so `[/]` cannot crash the CLI and `[link=...]` cannot print a hyperlink.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from refine_kit import endpoint
from refine_kit.endpoint import API_KEY_ENV

MASK = "***"

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
# "Basic" is also an English word: only a token that decodes to a user:password pair is masked.
_BASIC = re.compile(r"(?i)(basic\s+)([A-Za-z0-9+/]{4,}={0,2})")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]*(?::[^/\s@]*)?@")
# Key-like tokens: OpenAI's sk-..., and the common "api_key=..." / "api-key: ..." forms.
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")
_KEY_FIELD = re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+")
# C0 and C1 control characters except newline and tab; with them go ESC/OSC sequences.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def redact(text: str) -> str:
    """`text` with the configured key, bearer tokens and URL credentials masked."""
    key = os.environ.get(API_KEY_ENV, "")
    if len(key) >= 8:  # a real key; a one-letter placeholder would mask half the text
        text = text.replace(key, MASK)
    for form in endpoint.sent_credentials():
        text = text.replace(form, MASK)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    text = _BASIC.sub(_mask_basic, text)
    text = _URL_CREDENTIALS.sub(rf"\g<1>{MASK}@", text)
    text = _KEY_LIKE.sub(MASK, text)
    return _KEY_FIELD.sub(rf"\g<1>{MASK}", text)


def _mask_basic(match: re.Match[str]) -> str:
    token = match.group(2)
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return match.group(1) + MASK if b":" in decoded else match.group(0)


def plain(text: object) -> str:
    """Text from outside, safe to print through Rich: no control characters, no markup."""
    from rich.markup import escape  # here, not at import: `refine-kit --help` needs no Rich

    return escape(_CONTROL.sub("", redact(str(text))))


def one_line(text: object, limit: int = 300) -> str:
    """The first line of a message, redacted and shortened: for tables and records."""
    first = redact(str(text)).strip().splitlines()[0] if str(text).strip() else ""
    first = _CONTROL.sub("", first)
    return first if len(first) <= limit else first[: limit - 1] + "…"
