"""Where the CLI writes: results to stdout, status, progress and warnings to stderr."""

import contextlib
from typing import Iterator

from rich.console import Console
from rich.status import Status
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

out = Console(highlight=False, soft_wrap=True)  # long lines stay whole when piped
if not out.is_terminal:
    out.width = max(out.width, 200)  # wide tables (vit5 bench) stay readable in logs and files
err = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    err.print(f"[bold yellow]warning:[/] {message}")


def loud_warning(message: str) -> None:
    """A warning that must not be missed in a scrolling build log."""
    err.rule("[bold red]WARNING", style="red")
    err.print(f"[bold red]{message}[/]")
    err.rule(style="red")


def make_progress(transient: bool = True) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=transient,
    )


@contextlib.contextmanager
def status(message: str) -> Iterator[Status]:
    """A spinner with ``message`` while a slow step runs; ``.update(text)`` changes the message."""
    with err.status(message) as spinner:
        yield spinner
