"""The kit's own errors: what went wrong, in words a user can act on."""

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


class LLMOutputError(RefineKitError):
    """The model's answer could not be used, even after re-asking."""
