"""``benchmark(options, progress)``: the ``vit5 bench`` workflow as one library entry.

``BenchOptions`` holds everything the command takes; ``check`` refuses, before any work, the reports
that could not be written (a bad path, an input named as an output, --plot without matplotlib).  The
entry then runs ``run_benchmark``, hands the report to ``on_report`` (the CLI prints its table), writes
the reports, and raises BenchError when a backend's accuracy misses its tolerance.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from vit5_infer.errors import BenchError
from vit5_infer.files import check_output_path
from vit5_infer.vocabulary import PathLike, Progress

from .report import plot_latency, write_csv, write_json
from .run import BenchProgress, BenchReport, BenchSettings, run_benchmark

#: report kind -> (flag, suffixes it may have)
REPORTS = {"json": ("--json", (".json",)), "csv": ("--csv", (".csv",)), "plot": ("--plot", (".png",))}


@dataclass(frozen=True)
class BenchOptions:
    source: str
    settings: BenchSettings = field(default_factory=BenchSettings)
    json: Optional[PathLike] = None
    csv: Optional[PathLike] = None
    plot: Optional[PathLike] = None

    def inputs(self) -> tuple:
        """Every file the run reads: no report may be one of them."""
        s = self.settings
        return (self.source, s.load.config, f"{self.source}.data", s.labels, s.images, s.calibration)

    def check(self) -> dict[str, Path]:
        """The reports to write (kind -> checked path), refused in one line before any work."""
        reports = {}
        for kind, (flag, suffixes) in REPORTS.items():
            path = getattr(self, kind)
            if path is not None:
                reports[kind] = check_output_path(path, flag, self.inputs(), suffixes)
        if self.plot is not None and importlib.util.find_spec("matplotlib") is None:
            raise BenchError("--plot needs matplotlib: pip install 'vit5-infer[plot]' (or pip install matplotlib)")
        return reports


def accuracy_failure(report: BenchReport) -> Optional[BenchError]:
    """The error of a report whose rows miss their accuracy tolerance, or None."""
    if not report.failures:
        return None
    worst = "; ".join(f"{r.backend}[{r.precision}] batch {r.batch}: {r.failure}" for r in report.failures)
    return BenchError(f"accuracy outside tolerance: {worst}")


def benchmark(
    options: BenchOptions,
    progress: Progress = None,
    *,
    iteration_progress: Optional[BenchProgress] = None,
    warn: Progress = None,
    on_report: Optional[Callable[[BenchReport], None]] = None,
    on_written: Optional[Callable[[Path], None]] = None,
) -> BenchReport:
    """Benchmark ``options.source``; ``progress`` gets one message per step, ``iteration_progress`` the
    warm-up and timed iterations, ``on_report`` the report before its files are written and ``on_written``
    each file written.  BenchError when a backend misses its accuracy tolerance (after the reports)."""
    reports = options.check()
    report = run_benchmark(
        options.source, options.settings, progress=progress, iteration_progress=iteration_progress, warn=warn
    )
    if on_report:
        on_report(report)
    results = list(report.results)
    writers = {
        "json": lambda path: write_json(report.to_dict(), path),
        "csv": lambda path: write_csv(results, path),
        "plot": lambda path: plot_latency(results, path, title=f"vit5 bench {report.model['name']}"),
    }
    for kind, path in reports.items():
        writers[kind](path)
        if on_written:
            on_written(path)
    failure = accuracy_failure(report)
    if failure is not None:
        raise failure
    return report
