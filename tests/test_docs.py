"""The README's module table ("How it is built") and the package stay in step.

The table is where a reader looks for where something lives: a module missing from it is
code nobody finds, and a row for a module that is gone sends them looking for nothing.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "refine_kit"
SECTION = "## How it is built"


def package_modules() -> set[str]:
    """Every module of the package, as `refine_kit/...` paths (subpackages included)."""
    return {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")}


def table_rows(readme: str) -> list[str]:
    """The module table's rows, from the section's own text only."""
    section = readme.split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `refine_kit/")]


def named_in(row: str) -> list[str]:
    """The modules one row names, as paths.

    The first cell starts with a full path; more names after it (`cache.py`, `version.py`)
    are in the same folder. A row for a folder (`refine_kit/offline/`) names its modules
    anywhere in the row.
    """
    first, rest = row.split("|")[1], "|".join(row.split("|")[2:])
    lead, *others = re.findall(r"`([^`]+)`", first)
    if lead.endswith("/"):
        return [f"{lead}{name}" for name in re.findall(r"`([\w/]+\.py)`", first + rest)]
    folder = PurePosixPath(lead).parent
    return [lead, *(str(folder / name) for name in others if name.endswith(".py"))]


def test_rows_name_modules_as_the_readme_writes_them() -> None:
    assert named_in("| `refine_kit/cache.py`, `version.py` | the cache version |") == [
        "refine_kit/cache.py",
        "refine_kit/version.py",
    ]
    offline = "| `refine_kit/offline/` | `model.py` reads a request for `writer.py`, see `x` |"
    assert named_in(offline) == ["refine_kit/offline/model.py", "refine_kit/offline/writer.py"]
    # A module mentioned in a description belongs to its own row, not to this one.
    assert named_in("| `refine_kit/client.py` | created once per run (see `context.py`) |") == [
        "refine_kit/client.py"
    ]


def test_the_module_table_names_every_module_once_and_nothing_else() -> None:
    named = [path for row in table_rows((ROOT / "README.md").read_text()) for path in named_in(row)]
    modules = package_modules()
    missing = sorted(modules - set(named))
    assert not missing, f"modules missing from the README's table: {missing}"
    gone = sorted(set(named) - modules)
    assert not gone, f"the README's table names modules that do not exist: {gone}"
    twice = sorted({path for path in named if named.count(path) > 1})
    assert not twice, f"modules named in more than one row of the README's table: {twice}"
