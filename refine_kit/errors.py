"""The kit's own errors: what went wrong, in words a user can act on.

Errors no retry can mend are `PermanentError`s: they are also Flyte's
`NonRecoverableError`, so a task that raises one is not retried (a retry would only repeat
requests the client already made), and they keep their own class name in Flyte's reports.
"""

from __future__ import annotations

from flyte.errors import NonRecoverableError
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


class PermanentError(RefineKitError, NonRecoverableError):
    """A failure that no retry at any layer can mend; the task is not retried."""

    def __init__(self, message: str) -> None:
        NonRecoverableError.__init__(self, message, code=type(self).__name__)


class LLMOutputError(PermanentError):
    """The model's answer could not be used, even after re-asking."""


class TruncatedAnswer(LLMOutputError):
    """The answer was cut at the token limit (`finish_reason: "length"`)."""


class EndpointError(PermanentError):
    """The LLM endpoint failed for good: it names the URL, the status and the server's reason."""
