"""Where the CLI writes: results to stdout, status, progress and warnings to stderr.

Both consoles interpret no markup: paths, model names and messages come from the user and may hold
brackets (``model[v2].onnx``, ``pip install 'vit5-infer[tensorrt]'``).  Colour is given as ``Text``
styles, never as markup in a string.
"""

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.status import Status
from rich.text import Text

out = Console(highlight=False, soft_wrap=True, markup=False)  # long lines stay whole when piped
if not out.is_terminal:
    out.width = max(out.width, 200)  # wide tables (vit5 bench) stay readable in logs and files
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)  # a warning stays one line in a log


def styled(*parts) -> Text:
    """Plain strings and (text, style) pairs as one Text: colour without markup."""
    return Text.assemble(*parts)


def warn(message: str) -> None:
    err.print(styled(("warning:", "bold yellow"), " ", str(message)))


def show_warnings_as_lines() -> None:
    """Python warnings of the user-facing kind (UserWarning: a skipped folder, seeded calibration) print as
    one ``warning:`` line, like the CLI's own; the others keep Python's format."""
    import warnings

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning):
            warn(str(message))
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def loud_warning(message: str) -> None:
    """A warning that must not be missed in a scrolling build log."""
    err.rule(Text("WARNING", style="bold red"), style="red")
    err.print(Text(str(message), style="bold red"))
    err.rule(style="red")


def make_progress(transient: bool = True, unit: str = "") -> Progress:
    """The progress bar of every command; with ``unit`` (e.g. ``images``) it also shows the rate in
    ``unit``/s (from the task's ``rate`` field) and the time remaining."""
    rate = (TextColumn("{task.fields[rate]}", markup=False), TimeRemainingColumn()) if unit else ()
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        *rate,
        TimeElapsedColumn(),
        console=err,
        transient=transient,
        # off when stderr is not a terminal: there a transient bar cannot be erased and leaves a blank line
        disable=not err.is_terminal,
    )


@contextlib.contextmanager
def status(message: str) -> Iterator["_PlainStatus"]:
    """A spinner with ``message`` while a slow step runs; ``.update(text)`` changes the message."""
    with err.status(Text(message)) as spinner:
        yield _PlainStatus(spinner)


class _PlainStatus:
    """A Status whose ``update`` shows its text as it is (rich would parse a str as markup)."""

    def __init__(self, status: Status):
        self._status = status

    def update(self, message: str) -> None:
        self._status.update(Text(str(message)))

    def stop(self) -> None:
        self._status.stop()
