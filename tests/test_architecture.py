"""The package's shape: layers import downwards only, the offline stand-in stays apart, every
setting is declared once (in `SettingFields`) and reachable everywhere from there."""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path
from typing import Union, get_args, get_origin, get_type_hints

import flyte
import pytest

import refine_kit
from refine_kit.api import SettingKeywords
from refine_kit.errors import ConfigError
from refine_kit.settings import LLMConfig, RunOptions, SettingFields, Settings, load_settings

PACKAGE = Path(refine_kit.__file__).resolve().parent

# Where the core may reach into the offline stand-in: where the back-end is chosen
# (settings holds the fault plan, client plugs in the transport), and the surfaces on top.
MAY_IMPORT_OFFLINE = {
    "refine_kit.settings",
    "refine_kit.client",
    "refine_kit.api",
    "refine_kit.cli",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path) -> set[str]:
    """The refine_kit modules a file imports when it runs (not under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("refine_kit")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("refine_kit"):
            module = node.module or ""
            for alias in node.names:  # `from refine_kit import prompts` imports a module
                sub = f"{module}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                found.add(sub if is_module else module)
    return found - {module_name(path)}


GRAPH = {module_name(p): runtime_imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_import_graph_has_no_cycles() -> None:
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        if module in done:
            return
        for dep in sorted(GRAPH.get(module, ())):
            visit(dep, (*path, module))
        done.add(module)

    for module in GRAPH:
        visit(module, ())


def test_only_the_back_end_choice_reaches_into_the_offline_package() -> None:
    offenders = {
        module
        for module, deps in GRAPH.items()
        if not module.startswith("refine_kit.offline")
        and module not in MAY_IMPORT_OFFLINE
        and any(d.startswith("refine_kit.offline") for d in deps)
    }
    assert not offenders
    # ...and the offline package never imports the layers above the settings.
    for module, deps in GRAPH.items():
        if module.startswith("refine_kit.offline"):
            assert deps <= {"refine_kit.settings", "refine_kit.models", "refine_kit.prompts"} | {
                d for d in deps if d.startswith("refine_kit.offline")
            }, module


def test_no_module_is_long() -> None:
    sizes = {
        p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    longest = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    assert max(sizes.values()) <= 460, longest  # about 400: one concern a module
    offline = [n for name, n in sizes.items() if name.startswith("offline/")]
    assert max(offline) <= 440, longest


# --- Each setting is declared once, in SettingFields, and reachable everywhere. ---

SETTINGS = list(SettingFields.model_fields)
ENTRY_POINTS = [refine_kit.refine, refine_kit.refine_batch, refine_kit.submit_batch]


def members(kind: object) -> set[object]:
    """The types a union is made of (a type that is no union: itself)."""
    if get_origin(kind) in (Union, types.UnionType):
        return {m for arg in get_args(kind) for m in members(arg)}
    return {kind}


def test_the_keywords_type_checkers_read_are_the_settings() -> None:
    keywords = get_type_hints(SettingKeywords)
    assert list(keywords) == SETTINGS  # same names, same order as declared
    for name, kind in keywords.items():
        declared = members(SettingFields.model_fields[name].annotation)
        allowed = declared | {type(None)} | ({str} if name == "output_dir" else set())
        assert members(kind) == allowed, name


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_entry_points_show_every_setting_as_a_typed_keyword(entry) -> None:
    """What JupyterLab's Shift-Tab and help() show: each setting, typed, defaulting to None."""
    parameters = inspect.signature(entry).parameters
    keywords = get_type_hints(SettingKeywords)
    assert [p for p in parameters if p in keywords] == SETTINGS
    for name in SETTINGS:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default is None  # None: the environment or the default applies
        assert parameters[name].annotation == keywords[name]
    for name in SETTINGS:  # and each setting's default and meaning, from SettingFields
        assert f"{name} (default " in (entry.__doc__ or "")
    assert "quality_threshold (default 8): Score that ends refinement (1-10)." in entry.__doc__


def test_a_type_checker_rejects_a_setting_of_the_wrong_type(tmp_path: Path, monkeypatch) -> None:
    mypy = pytest.importorskip("mypy.api")
    monkeypatch.chdir(PACKAGE.parent)  # where the checker finds refine_kit and its settings
    calls = tmp_path / "calls.py"
    calls.write_text(
        "import refine_kit\n"
        "refine_kit.refine('x', quality_threshold=9, output_dir='out', faults=None)\n"
        "refine_kit.refine('x', quality_threshold='9')\n"
        "refine_kit.refine_batch(['x'], max_concurrecy=2)\n"
    )
    # Only the calls are checked: no third-party package is read, so it takes seconds.
    options = ["--no-site-packages", "--follow-imports=silent", "--ignore-missing-imports"]
    report, _, _ = mypy.run([*options, "--cache-dir", str(tmp_path / "cache"), str(calls)])
    errors = [line for line in report.splitlines() if line.startswith(str(calls))]
    assert [line.split(":")[1] for line in errors if ": error:" in line] == ["3", "4"], report
    assert 'incompatible type "str"; expected "int | None"' in errors[0]
    assert 'Unexpected keyword argument "max_concurrecy"' in report


@pytest.mark.parametrize("name", SETTINGS)
def test_every_setting_is_reachable_everywhere(name: str, monkeypatch) -> None:
    """An argument, a CLI option of `run` and `batch`, a variable, and a row in the README."""
    import typer.main

    from refine_kit import setting_docs
    from refine_kit.cli import app

    for entry in ENTRY_POINTS:
        assert name in inspect.signature(entry).parameters, entry.__name__
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for command in ("run", "batch"):
        options = {p.name: p for p in commands[command].params}
        assert name in options, f"refine-kit {command} has no option for {name}"
        spelled = [*options[name].opts, *options[name].secondary_opts]
        assert spelled == [n for names in setting_docs.command_line(name) for n in names.split("/")]
    # The variable: a value it holds is taken, or refused by name (either way it was read).
    monkeypatch.setenv(setting_docs.variable(name), "x")
    try:
        taken = getattr(load_settings(), name)
    except ConfigError as exc:
        assert name in str(exc) or setting_docs.variable(name) in str(exc), exc
    else:
        monkeypatch.delenv(setting_docs.variable(name))
        assert taken != getattr(load_settings(), name)
    assert f"\n| `{name}` |" in readme_settings_table()


def readme_settings_table() -> str:
    readme = (PACKAGE.parent / "README.md").read_text()
    after = readme.split("<!-- settings-table:", 1)[1].split("\n", 1)[1]
    return after.split("\n\n", 1)[0] + "\n"


def test_the_readme_settings_table_is_made_from_the_settings() -> None:
    from refine_kit.setting_docs import markdown_table

    # To update it: python -m refine_kit.setting_docs, and paste its output under the mark.
    assert readme_settings_table() == markdown_table()


def test_task_inputs_take_each_settings_type_and_default() -> None:
    """`LLMConfig` and `RunOptions` cross task boundaries, so their fields are written out; a
    field named like a setting must have its type and default, and carry its value."""
    declared = Settings.model_construct()  # the declared defaults, not this shell's variables
    differs = {
        LLMConfig: {"backend", "model", "offline_latency"},  # resolved, or 0 for a bare task
        RunOptions: {"output_dir"},  # a str, None for a remote run
    }
    for boundary, own in differs.items():
        shared = boundary.model_fields.keys() & SettingFields.model_fields.keys()
        assert own <= shared
        for name in shared - own:
            field = boundary.model_fields[name]
            assert field.annotation == SettingFields.model_fields[name].annotation, name
            assert field.get_default(call_default_factory=True) == getattr(declared, name), name
    for task in (refine_kit.refine_report, refine_kit.report_batch_pipeline):
        defaults = inspect.signature(task.func).parameters
        assert defaults["max_iterations"].default == declared.max_iterations
        assert defaults["quality_threshold"].default == declared.quality_threshold
    assert refine_kit.refine_report.retries.count == declared.task_retries
    # ...and carry the values a user set.
    chosen = load_settings(reasks=0, client_backoff=1.5, retry_backoff=2.5, prices={"m": (1, 2)})
    options = RunOptions.from_settings(chosen)
    assert (options.llm.reasks, options.llm.client_backoff) == (0, 1.5)
    assert (options.retry_backoff, options.prices) == (2.5, {"m": (1.0, 2.0)})


def test_each_round_and_the_fan_out_are_flyte_groups(monkeypatch, tmp_path: Path) -> None:
    opened: list[str] = []
    real_group = flyte.group

    def spy(name: str):
        opened.append(name)
        return real_group(name)

    monkeypatch.setattr(flyte, "group", spy)
    result = refine_kit.refine(
        "Heat pumps in cold climates", output_dir=tmp_path, quality_threshold=10, cache=False
    )
    revisions = [f"round-{i}-revise" for i in range(1, len(result.iterations))]
    assert opened == ["fan-out", "round-0-draft", *revisions, "summary"]
