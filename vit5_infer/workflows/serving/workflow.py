"""The serving workflows as library entries: ``serve(options, progress)`` (``vit5 serve``) and
``write_repository(options, progress)`` (``vit5 triton-repo``), each taking one options value and
checking it before any export."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from vit5_infer.load_options import LoadOptions
from vit5_infer.vocabulary import PathLike, Progress

from .choices import EXPORT_PRECISIONS
from .errors import ServeError
from .model_repository import RepositoryOptions, RepositoryResult, write_model_repository
from .pytriton_server import ModelServer, ServeOptions, import_pytriton
from .pytriton_server import serve as run_server
from .source import resolve_served_model


def _check_export_precision(precision: str) -> None:
    if precision not in EXPORT_PRECISIONS:
        raise ServeError(
            f"a preset or checkpoint is exported for serving at {' or '.join(EXPORT_PRECISIONS)}, not {precision!r}"
        )


@dataclass(frozen=True)
class ServingOptions:
    """Everything ``vit5 serve`` takes: what to serve (source, backend, export precision, name, batch,
    threads, how a preset or checkpoint loads) and the server's own options."""

    source: str
    server: ServeOptions = field(default_factory=ServeOptions)
    backend: Optional[str] = None
    precision: str = "fp32"
    name: Optional[str] = None
    max_batch: Optional[int] = None
    threads: Optional[int] = None
    load: LoadOptions = field(default_factory=LoadOptions)

    def check(self) -> None:
        """Refused before any export: a missing serve extra first, then the server's options."""
        import_pytriton()
        _check_export_precision(self.precision)
        self.server.check(inputs=(Path(self.source),) if Path(self.source).exists() else ())


def serve(
    options: ServingOptions,
    progress: Progress = None,
    *,
    on_ready: Optional[Callable[[ModelServer], None]] = None,
    warn: Progress = None,
) -> None:
    """Serve ``options.source`` on Triton until Ctrl-C or SIGTERM; ``on_ready(server)`` once it listens."""
    options.check()
    with tempfile.TemporaryDirectory(prefix="vit5-serve-") as workdir:
        served = resolve_served_model(
            options.source,
            workdir,
            backend=options.backend,
            precision=options.precision,
            name=options.name,
            max_batch=options.max_batch,
            threads=options.threads,
            load_options=options.load,
            progress=progress,
        )
        if progress:
            progress(f"starting Triton for {served.name}")
        run_server(served, options.server, progress=progress, on_ready=on_ready, warn=warn)


@dataclass(frozen=True)
class RepositoryWriteOptions:
    """Everything ``vit5 triton-repo`` takes: the source, the repository folder, the model's name, the
    export of a preset or checkpoint (precision, opset, loading), the config options and --force."""

    source: str
    output: PathLike
    repository: RepositoryOptions = field(default_factory=RepositoryOptions)
    name: Optional[str] = None
    precision: str = "fp32"
    opset: int = 23
    load: LoadOptions = field(default_factory=LoadOptions)
    force: bool = False

    def check(self) -> None:
        _check_export_precision(self.precision)


def write_repository(options: RepositoryWriteOptions, progress: Progress = None) -> RepositoryResult:
    """Write ``options.output/NAME`` for the stock Triton server."""
    options.check()
    return write_model_repository(
        options.source,
        options.output,
        name=options.name,
        options=options.repository,
        precision=options.precision,
        opset=options.opset,
        load_options=options.load,
        force=options.force,
        progress=progress,
    )
