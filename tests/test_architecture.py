"""The package's shape: layers import downwards only, the offline stand-in stays apart, every
default is declared once, and the public entry points show their settings."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import flyte
import pytest

import refine_kit
from refine_kit.settings import LLMConfig, RunOptions, Settings

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


@pytest.mark.parametrize("entry", [refine_kit.refine, refine_kit.refine_batch])
def test_entry_points_list_every_setting_with_its_type(entry) -> None:
    parameters = inspect.signature(entry).parameters
    settings = set(Settings.model_fields)
    assert settings <= set(parameters)
    for name in settings:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default is None  # None: the environment or the default applies
        assert parameters[name].annotation != inspect.Parameter.empty
    # help() and Shift-Tab show each setting's default and meaning, taken from Settings.
    for name in settings:
        assert f"{name} (default " in (entry.__doc__ or "")
    assert "quality_threshold (default 8)" in (entry.__doc__ or "")


def test_defaults_are_declared_once_in_settings() -> None:
    settings = Settings.model_construct()  # the declared defaults, not this shell's variables
    config = LLMConfig(backend="offline", model="m")
    for name in LLMConfig.model_fields.keys() - {"backend", "model", "base_url", "offline_latency"}:
        assert getattr(config, name) == getattr(settings, name), name
    options = RunOptions(llm=config)
    for name in ("max_concurrency", "task_retries", "retry_backoff", "cache", "fresh"):
        assert getattr(options, name) == getattr(settings, name), name
    assert options.output_dir == str(settings.output_dir)
    for task in (refine_kit.refine_report, refine_kit.report_batch_pipeline):
        defaults = inspect.signature(task.func).parameters
        assert defaults["max_iterations"].default == settings.max_iterations
        assert defaults["quality_threshold"].default == settings.quality_threshold
    assert refine_kit.refine_report.retries.count == settings.task_retries


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
