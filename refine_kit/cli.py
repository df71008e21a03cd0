"""The `refine-kit` command: refine one topic or a batch from the terminal.

Typer builds the options from type hints and Rich draws the progress bar and the results
table, so this module only maps options onto `Settings` and results onto a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from refine_kit import api
from refine_kit.errors import ConfigError
from refine_kit.models import BatchResult
from refine_kit.progress import ProgressEvent
from refine_kit.settings import Backend

app = typer.Typer(
    help="Resilient LLM report refinement on Flyte 2 (offline unless a key or base URL is set).",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

# Options shared by `run` and `batch`; None means "not given", so REFINE_KIT_* variables apply.
BackendOpt = Annotated[Backend | None, typer.Option(help="offline, openai or auto")]
ModelOpt = Annotated[str | None, typer.Option(help="Model name")]
BaseUrlOpt = Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint URL")]
IterOpt = Annotated[int | None, typer.Option("--max-iterations", "-n", help="Most revisions")]
ThresholdOpt = Annotated[
    int | None, typer.Option("--threshold", "-t", help="Score (1-10) that ends refinement")
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", "-c", help="Most LLM calls in flight")
]
LatencyOpt = Annotated[float | None, typer.Option(help="Offline model seconds per call")]
OutDirOpt = Annotated[Path | None, typer.Option("--output-dir", "-o", help="Output folder")]
RetriesOpt = Annotated[int | None, typer.Option(help="Task retries per topic")]
CacheOpt = Annotated[
    bool | None, typer.Option("--cache/--no-cache", help="Reuse results of unchanged work")
]
VerboseOpt = Annotated[bool | None, typer.Option("--verbose/--quiet", help="Flyte's logs")]


@app.command()
def run(
    topic: Annotated[str, typer.Argument(help="The topic to write about")],
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    max_iterations: IterOpt = None,
    threshold: ThresholdOpt = None,
    latency: LatencyOpt = None,
    output_dir: OutDirOpt = None,
    retries: RetriesOpt = None,
    cache: CacheOpt = None,
    verbose: VerboseOpt = None,
) -> None:
    """Refine one topic and write its report."""
    settings = dict(
        backend=backend,
        model=model,
        base_url=base_url,
        max_iterations=max_iterations,
        quality_threshold=threshold,
        offline_latency=latency,
        output_dir=output_dir,
        task_retries=retries,
        cache=cache,
        verbose=verbose,
    )
    _run_batch([topic], settings)


@app.command()
def batch(
    topics: Annotated[list[str] | None, typer.Argument(help="Topics to write about")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A file with one topic per line")
    ] = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    max_iterations: IterOpt = None,
    threshold: ThresholdOpt = None,
    concurrency: ConcurrencyOpt = None,
    latency: LatencyOpt = None,
    output_dir: OutDirOpt = None,
    retries: RetriesOpt = None,
    cache: CacheOpt = None,
    verbose: VerboseOpt = None,
) -> None:
    """Refine a batch of topics in parallel; exits 1 if any topic failed."""
    all_topics = list(topics or [])
    if file is not None:
        all_topics += read_topics_file(file)
    settings = dict(
        backend=backend,
        model=model,
        base_url=base_url,
        max_iterations=max_iterations,
        quality_threshold=threshold,
        max_concurrency=concurrency,
        offline_latency=latency,
        output_dir=output_dir,
        task_retries=retries,
        cache=cache,
        verbose=verbose,
    )
    _run_batch(all_topics, settings)


def read_topics_file(path: Path) -> list[str]:
    """One topic per line; blank lines and lines starting with '#' are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        _fail(f"--file: cannot read {path}: {exc.strerror}")
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _run_batch(topics: list[str], settings: dict) -> None:
    if not topics:
        _fail("topics: none given; pass topics as arguments or with --file")
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("Refining", total=len(topics))

        def on_progress(event: ProgressEvent) -> None:
            if event.kind in ("succeeded", "failed"):
                bar.advance(task)
                mark = "[green]done[/]" if event.kind == "succeeded" else "[red]failed[/]"
                bar.console.print(f"{mark} {event.topic}" + _score(event))
            elif event.kind == "step":
                bar.update(task, description=f"{event.topic[:30]}: {event.step}")

        try:
            result = api.refine_batch(topics, on_progress=on_progress, **settings)
        except ConfigError as exc:
            bar.stop()
            _fail(str(exc))
    out.print(results_table(result))
    out.print(
        f"{len(result.succeeded)} succeeded, {len(result.failed)} failed in "
        f"{result.seconds:.1f} s; files in {result.output_dir}"
    )
    if result.failed:
        raise typer.Exit(code=1)


def results_table(result: BatchResult) -> Table:
    """One row per topic: the numbers a user checks first."""
    table = Table(title="refine_kit results")
    for column in ("Topic", "Status", "Score", "Iterations", "Stop", "Calls", "Tokens", "Seconds"):
        table.add_column(
            column, justify="left" if column in ("Topic", "Status", "Stop") else "right"
        )
    for o in result.outcomes:
        r = o.result
        if r is None:
            table.add_row(o.topic, f"[red]failed[/]: {o.error}", "", "", "", "", "", "")
            continue
        table.add_row(
            o.topic,
            "[green]ok[/]" + (" (cached)" if o.from_cache else ""),
            str(r.score),
            str(len(r.iterations) - 1),
            r.stop_reason,
            str(0 if o.from_cache else r.llm_calls),
            str(r.usage.total_tokens),
            f"{r.seconds:.1f}",
        )
    return table


def _score(event: ProgressEvent) -> str:
    if event.score is not None:
        return f" (score {event.score})"
    return f": {event.message}" if event.message else ""


def _fail(message: str) -> None:
    err.print(f"[red]error:[/] {message}")
    raise typer.Exit(code=2)


if __name__ == "__main__":
    app()
