"""The kit's own errors: what went wrong, in words a user can act on.

Errors no retry can mend are `PermanentError`s: the task that meets one hands it to Flyte
as a `NonRecoverableError` under its own class name (see `tasks.py`), so it is not retried
(a retry would only repeat requests the client already made). This module imports nothing
heavy, so settings and the CLI load fast.
"""

from __future__ import annotations

from pydantic import ValidationError


class RefineKitError(Exception):
    """Base class for errors the kit raises on purpose."""


class ConfigError(RefineKitError, ValueError):
    """Bad input or settings, found before any LLM call. Retrying cannot fix it."""

    @classmethod
    def from_validation(cls, exc: ValidationError) -> ConfigError:
        """Turn pydantic's report into one line per field: `field: what is allowed`."""
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            if err["type"] == "extra_forbidden":
                lines.append(f"{field}: unknown setting")
            else:
                lines.append(f"{field}: {err['msg']} (got {err.get('input')!r})")
        return cls("; ".join(lines))


class PermanentError(RefineKitError):
    """A failure that no retry at any layer can mend; the task is not retried."""


class LLMOutputError(PermanentError):
    """The model's answer could not be used, even after re-asking."""


class TruncatedAnswer(LLMOutputError):
    """The answer was cut at the token limit (`finish_reason: "length"`)."""


class EndpointError(PermanentError):
    """The LLM endpoint failed for good: it names the URL, the status and the server's reason."""


class RetryableEndpointError(RefineKitError):
    """A failure the server marked not to retry at once (`x-should-retry: false`).

    The client does not repeat it; the task retry does, later, replaying every step that
    had completed, which is what that header asks of a caller.
    """
