"""The `refine-kit` command: refine one topic or a batch from the terminal.

Typer builds the options from type hints (those of `run` and `batch` from the settings'
declarations) and Rich draws the progress bar and the results table, so this module only
maps options onto `Settings` and results onto a table.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import gc
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, get_type_hints

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from refine_kit import setting_docs, terminal
from refine_kit.errors import ConfigError, RefineKitError
from refine_kit.redaction import plain
from refine_kit.settings import default

if TYPE_CHECKING:  # the pipeline (Flyte, the OpenAI SDK) loads only when a command runs
    from refine_kit.progress import ProgressEvent

# Click's usage error, taken from the one Typer exports: newer Typer releases carry a click of
# their own, and only that one's errors reach this command.
_UsageError: type[Exception] = typer.BadParameter.__mro__[1]
_ClickException: Any = _UsageError.__mro__[1]
_NoArgsIsHelp: type[Exception] = getattr(
    sys.modules[_UsageError.__module__], "NoArgsIsHelpError", type("_NeverRaised", (Exception,), {})
)


class _UsageLine(_ClickException):  # type: ignore[misc]  # click's class, found at run time
    """A usage error as the kit reports every bad input: one line, exit status 2."""

    exit_code = 2

    def __init__(self, error: Any) -> None:
        super().__init__(error.format_message().rstrip("."))
        command = error.ctx.command_path if error.ctx else "refine-kit"
        self.hint = f"see '{command} --help'"

    def show(self, file: Any = None) -> None:
        terminal.console(stderr=True).print(
            f"[red]error:[/] {plain(self.message)}; {self.hint}", soft_wrap=True
        )


class _OneLineErrors(TyperGroup):
    """Click prints a usage error as four lines under the usage text; the kit's other bad
    input errors are one line, so these are too."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _NoArgsIsHelp:
            raise  # `refine-kit` alone shows the help
        except _UsageError as exc:
            raise _UsageLine(exc) from None


app = typer.Typer(
    cls=_OneLineErrors,
    help="Resilient LLM report refinement on Flyte 2 (offline unless a key or base URL is set).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: readable at 80 columns, no type column
)


# A command is the whole process: skip the interpreter's last sweep over every object Flyte
# and the SDK loaded (about half a second at exit), which would free nothing the OS does not.
atexit.register(gc.freeze)


# Every run option, by the setting it sets: one per `SettingFields` field, with its name,
# alias, help and default from there, so a new setting is an option without a line here.
# Each defaults to None ("not given"), so the REFINE_KIT_* variable or the setting's default
# applies; the help still shows that default. A setting holding a structure (the fault
# plan, prices) takes JSON, as its variable does. `run` and `batch` take them all.
def _option(name: str) -> Any:
    """The `Annotated` type Typer builds one setting's option from."""
    shown = setting_docs.default_text(name)
    help_text = setting_docs.meaning(name)
    if shown not in ("unset", "none"):
        help_text += f" [default: {shown}]"
    kind = setting_docs.plain_type(name)
    option = typer.Option(
        *setting_docs.command_line(name), help=help_text, metavar="JSON" if kind is None else None
    )
    return Annotated[(str if kind is None else kind) | None, option]


RUN_OPTIONS: dict[str, Any] = {name: _option(name) for name in setting_docs.names()}


def _read_json(options: dict[str, Any]) -> dict[str, Any]:
    """The options with the JSON of structured settings read; `ConfigError` names the setting.

    What the JSON holds is checked with every other setting, by `Settings`.
    """
    read = dict(options)
    for name, value in options.items():
        if isinstance(value, str) and setting_docs.plain_type(name) is None:
            try:
                read[name] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name}: not valid JSON ({exc})") from None
    return read


def _print_version(value: bool) -> None:
    if value:
        from refine_kit.version import __version__

        print(f"refine-kit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Show the version and exit"
        ),
    ] = False,
) -> None:
    """Resilient LLM report refinement on Flyte 2 (offline unless a key or base URL is set)."""


def _with_run_options(command: Callable[..., None]) -> Callable[..., None]:
    """Append every run option (one per setting) to a command's signature; Typer builds the
    CLI from it."""
    signature = inspect.signature(command)
    hints = get_type_hints(command, include_extras=True)  # this module's annotations are strings
    fixed = [
        p.replace(annotation=hints[p.name])
        for p in signature.parameters.values()
        if p.kind != p.VAR_KEYWORD
    ]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, kind in RUN_OPTIONS.items()
    ]
    command.__signature__ = signature.replace(parameters=fixed + extra)  # type: ignore[attr-defined]
    return command


@app.command()
@_with_run_options
def run(
    topic: Annotated[str, typer.Argument(help="The topic to write about")], **options: Any
) -> None:
    """Refine one topic and write its report."""
    _run_batch([topic], options)


@app.command()
@_with_run_options
def batch(
    topics: Annotated[list[str] | None, typer.Argument(help="Topics to write about")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A file with one topic per line")
    ] = None,
    **options: Any,
) -> None:
    """Refine a batch of topics in parallel; exits 1 if any topic failed."""
    all_topics = list(topics or [])
    if file is not None:
        all_topics += read_topics_file(file)
    _run_batch(all_topics, options)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one")] = 8787,
    # The same default as the offline model in `run`, so both answer at the same pace.
    latency: Annotated[float, typer.Option(help="Seconds per response")] = default(
        "offline_latency"
    ),
    faults: Annotated[str | None, RUN_OPTIONS["faults"].__metadata__[0]] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Log one line per request")] = False,
    # Written out, not read from the profiles module: that would load the model for --help.
    profile: Annotated[
        str,
        typer.Option(
            help="Imitate a server: openai, lmstudio, ollama, vllm, fenced, reasoning, "
            "json-mode-only, no-response-format, no-json-mode"
        ),
    ] = "openai",
    rpm: Annotated[
        int | None, typer.Option(help="Requests per minute to allow (429 above it, like OpenAI)")
    ] = None,
    tpm: Annotated[
        int | None, typer.Option(help="Tokens per minute to allow (a request: prompt + max_tokens)")
    ] = None,
    limit_headers: Annotated[
        bool,
        typer.Option(
            "--limit-headers/--no-limit-headers",
            help="Send x-ratelimit-* headers (no: 429 and Retry-After only, like many proxies)",
        ),
    ] = True,
) -> None:
    """Serve the offline model over HTTP as an OpenAI-compatible endpoint."""
    from refine_kit.offline.faults import FaultPlan
    from refine_kit.offline.server import OfflineServer

    _check_port(port, "serve")
    try:
        plan = FaultPlan.from_env(faults)
        server = OfflineServer(
            host,
            port,
            latency=latency,
            faults=plan,
            verbose=verbose,
            profile=profile,
            rpm=rpm,
            tpm=tpm,
            limit_headers=limit_headers,
        )
    except ValidationError as exc:
        _fail(f"serve: faults: {ConfigError.from_validation(exc)}")
    except ValueError as exc:
        _fail(f"serve: {exc}")
    except OSError as exc:
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc})"
        _fail(f"serve: port {port} on {host} {reason}; pick another with --port (0: any free)")
    # On stdout, flushed: scripts and tests read the URL from the first line.
    print(f"refine_kit offline server on {server.base_url} (Ctrl-C to stop)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


@app.command()
def lab(
    jupyter_options: Annotated[
        list[str] | None,
        typer.Argument(
            help="JupyterLab's own options, after --: "
            "refine-kit lab -- --ServerApp.token=abc --ServerApp.ip=0.0.0.0",
            show_default=False,
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Port for JupyterLab")] = 8888,
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open a browser tab")
    ] = True,
) -> None:
    """Start JupyterLab on the tutorial notebooks (works as root, in containers too)."""
    import importlib.util
    import os
    import subprocess
    import sys

    from refine_kit.notebook_job import NOTEBOOKS_DIR

    _check_port(port, "lab")
    if importlib.util.find_spec("jupyterlab") is None:
        _fail(
            "lab: JupyterLab is not installed here; install the notebook extras: "
            "pip install -e '.[notebooks]' (or: bash scripts/setup.sh full)"
        )
    if not NOTEBOOKS_DIR.is_dir():
        _fail(f"lab: no notebooks folder at {NOTEBOOKS_DIR}; run this from a clone of the kit")
    command = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={NOTEBOOKS_DIR}"]
    command += [f"--port={port}"] + ([] if browser else ["--no-browser"])
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and cloud VMs often run as root
    command += jupyter_options or []  # last, so they win over the kit's choices
    if os.name == "posix":
        # JupyterLab takes this process's place, so a SIGTERM sent to `refine-kit lab` (by a
        # supervisor, a test, `kill`) stops the server instead of leaving it running alone.
        os.execv(sys.executable, command)
    with contextlib.suppress(KeyboardInterrupt):
        raise typer.Exit(subprocess.call(command))


@app.command()
def deploy(
    config: Annotated[
        str | None,
        typer.Option("--config", help="Flyte config file; 'auto' for Flyte's discovery"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Serialise everything offline; deploy nothing")
    ] = False,
) -> None:
    """Register llm_env and driver_env (with their images) on a Flyte cluster."""
    from refine_kit import cluster

    if config is None and not dry_run:
        _fail("deploy: give --config PATH (or 'auto'), or --dry-run to check offline")
    try:
        deployments = cluster.deploy(config, dry_run=dry_run)
    except (RuntimeError, ConfigError) as exc:
        _fail(f"deploy: {exc}")
    rows = cluster.deployment_rows(deployments)
    from rich.table import Table

    table = Table(title="refine_kit deployment" + (" (dry run)" if dry_run else ""))
    for column in rows[0]:
        table.add_column(column.capitalize(), no_wrap=column in ("task", "reuse"))
    for row in rows:
        table.add_row(*row.values())
    terminal.console().print(table)
    if dry_run:
        terminal.console().print("dry run: nothing was sent; deploy for real with --config PATH")


def read_topics_file(path: Path) -> list[str]:
    """One topic per line; blank lines and lines starting with '#' are skipped."""
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of a topic.
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        _fail(f"--file: cannot read {path}: {exc.strerror}")
    except UnicodeDecodeError as exc:
        _fail(
            f"--file: {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position "
            f"{exc.start}); save it as UTF-8 and run again"
        )
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _run_batch(topics: list[str], settings: dict[str, Any]) -> None:
    if not topics:
        _fail("topics: none given; pass topics as arguments or with --file")
    from refine_kit import api

    try:  # bad input ends here, in one line, before a progress bar is drawn
        from refine_kit.settings import load_settings, validate_topics

        settings = _read_json(settings)
        validate_topics(topics)
        load_settings(**settings).llm_config()
    except ConfigError as exc:
        _fail(str(exc))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    steps = terminal.StepCount(len(topics))
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("LLM steps"),
        TimeElapsedColumn(),
        console=terminal.console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("Refining", total=steps.total)

        def on_progress(event: ProgressEvent) -> None:
            steps.see(event)
            bar.update(task, completed=steps.done, total=steps.total)
            if event.kind in ("succeeded", "failed"):
                bar.refresh()  # the bar moves before the line about it is printed
                # A failure's reason is printed once, under the table, as pytest does.
                mark = "[green]done[/]" if event.kind == "succeeded" else "[red]failed[/]"
                bar.console.print(f"{mark} {plain(event.topic)}" + terminal.outcome_note(event))
            elif event.kind == "step":
                bar.update(task, description=f"{plain(event.topic[:30])}: {event.step}")
            elif event.kind == "waiting":  # a long wait for a rate limit: say why, and what helps
                bar.console.print(f"[yellow]waiting[/] {plain(event.message)}", soft_wrap=True)

        try:
            result = api.refine_batch(topics, on_progress=on_progress, **settings)
        except RefineKitError as exc:  # bad input, a damaged store: nothing was run
            bar.stop()
            _fail(str(exc))
        except api.BatchInterrupted as stop:  # Ctrl-C: what finished, and what a rerun pays
            bar.stop()
            terminal.report(stop.batch)
            raise typer.Exit(code=130) from None
    terminal.report(result)
    if result.failed:
        raise typer.Exit(code=1)


def _check_port(port: int, command: str) -> None:
    if not 0 <= port <= 65535:
        _fail(f"{command}: --port {port} is not a TCP port; give 1-65535 (0: any free one)")


def _fail(message: str) -> NoReturn:
    terminal.console(stderr=True).print(f"[red]error:[/] {plain(message)}", soft_wrap=True)
    raise typer.Exit(code=2)


if __name__ == "__main__":
    app()
