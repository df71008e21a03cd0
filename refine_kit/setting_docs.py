"""The settings as people meet them, all written from `SettingFields`.

Each setting's type, default, bounds, meaning and command-line spelling are declared once,
in `settings.py`. From there come the settings section of the docstrings of `refine` and
`refine_batch`, the keywords Shift-Tab shows for them (typed as `api.SettingKeywords`, which
a test holds to the declarations), the options of `refine-kit run` and `batch` (see
`cli.py`) and the README's settings table (`python -m refine_kit.setting_docs` prints it; a
test compares the two).
"""

from __future__ import annotations

import functools
import inspect
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin, get_type_hints

from pydantic import BaseModel

from refine_kit.settings import CommandLine, SettingFields, default

ENV_PREFIX = "REFINE_KIT_"

#: Types a command line takes as they are; a setting of any other type takes JSON there.
PLAIN_TYPES = (str, int, float, bool, Path)

F = TypeVar("F", bound=Callable[..., Any])


def names() -> list[str]:
    """Every setting, in the order they are declared (and shown)."""
    return list(SettingFields.model_fields)


def variable(name: str) -> str:
    """The environment variable a setting is read from: `REFINE_KIT_QUALITY_THRESHOLD`."""
    return ENV_PREFIX + name.upper()


def command_line(name: str) -> tuple[str, ...]:
    """The setting's option names: as declared with `CommandLine`, else `--name-with-dashes`."""
    for mark in SettingFields.model_fields[name].metadata:
        if isinstance(mark, CommandLine):
            return mark.names
    return ("--" + name.replace("_", "-"),)


def plain_type(name: str) -> Any:
    """The type a command line hands over for a setting (without None), or None when the
    setting holds a structure (a fault plan, prices) and so takes JSON, as its variable does."""
    kind = SettingFields.model_fields[name].annotation
    if get_origin(kind) in (Union, types.UnionType):
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    return kind if kind in PLAIN_TYPES or get_origin(kind) is Literal else None


def default_text(name: str) -> str:
    """The default in words: 'unset' for None, 'on'/'off', 'none' for an empty plan or table."""
    value = default(name)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if (isinstance(value, BaseModel) and value == type(value)()) or value == {}:
        return "none"
    return str(value)


def bounds_text(name: str) -> str:
    """The setting's bounds in words, '1-10' or 'above 0, at most 600'; '' when it has none."""
    words = {"gt": "above", "ge": "at least", "lt": "below", "le": "at most"}
    found = {
        kind: getattr(mark, kind)
        for mark in SettingFields.model_fields[name].metadata  # pydantic's Ge(ge=1), Le(le=10)
        for kind in words
        if isinstance(getattr(mark, kind, None), (int, float))
    }
    if found.keys() == {"ge", "le"}:
        return f"{found['ge']:g}-{found['le']:g}"
    return ", ".join(f"{words[kind]} {found[kind]:g}" for kind in words if kind in found)


def meaning(name: str) -> str:
    """What the setting does, with its bounds."""
    bounds = bounds_text(name)
    text = SettingFields.model_fields[name].description or ""
    return f"{text} ({bounds})" if bounds else text


def describe_settings() -> str:
    """The settings as a docstring section: name, default and meaning."""
    lines = ["", "", f"    Settings (each also read from {ENV_PREFIX}<NAME>):", ""]
    for name in names():
        text = f"{name} (default {default_text(name)}): {meaning(name)}."
        lines.append(textwrap.fill(text, 96, initial_indent=" " * 8, subsequent_indent=" " * 12))
    return "\n".join(lines) + "\n"


def shows_settings(keywords: type, *, strict: bool = True) -> Callable[[F], F]:
    """Give a function that takes `**overrides: Unpack[keywords]` each setting as a keyword of
    its own at run time too, and list the settings in its docstring.

    A type checker reads the `TypedDict`; `inspect.signature` (so JupyterLab's Shift-Tab and
    `help()`) reads `__signature__`, built here from the same `TypedDict`, so both show
    `refine(topic, *, ..., quality_threshold: int | None = None, ...)`. With `strict`, a
    keyword that is no setting is a `TypeError` before the call, as Python raises for any
    function that lists its keywords; otherwise `Settings` names it.
    """
    hints = get_type_hints(keywords)

    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        given = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        first = next((i for i, p in enumerate(given) if p.kind is p.KEYWORD_ONLY), len(given))
        settings = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
            for name, kind in hints.items()
        ]
        shown = signature.replace(parameters=[*given[:first], *settings, *given[first:]])

        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if strict:
                shown.bind(*args, **kwargs)  # "got an unexpected keyword argument 'colour'"
            return func(*args, **kwargs)

        checked.__signature__ = shown  # type: ignore[attr-defined]
        checked.__doc__ = (func.__doc__ or "") + describe_settings()
        return cast(F, checked)

    return decorate


def markdown_table() -> str:
    """The README's settings table: one row per setting, in the order declared."""
    rows = ["| setting | command line | default | meaning |", "|---|---|---|---|"]
    for name in names():
        option = ", ".join(f"`{flag}`" for flag in command_line(name))
        if plain_type(name) is None:
            option += " (JSON)"
        rows.append(f"| `{name}` | {option} | {default_text(name)} | {meaning(name)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
