"""The benchmark pipeline behind ``vit5 bench``, usable without the CLI.

``run_benchmark(source, BenchSettings(...)) -> BenchReport``; the pieces are small modules:
``timing`` (warm-up, timed loop, latency statistics), ``results`` (one row and its accuracy verdict),
``inputs`` (seeded or real images and the PyTorch reference), ``artifacts`` (the exports and engines
each backend runs), ``environment`` (where it was measured), ``report`` (JSON, CSV, markdown, plot).
Nothing heavy is imported until it is used.
"""

from .report import csv_text, format_markdown, plot_latency, table_rows, write_csv, write_json
from .results import BenchResult, make_result
from .run import BenchReport, BenchSettings, run_benchmark, source_kind
from .timing import TimingPlan, latency_stats, time_runner

__all__ = [
    "BenchReport",
    "BenchResult",
    "BenchSettings",
    "TimingPlan",
    "csv_text",
    "format_markdown",
    "latency_stats",
    "make_result",
    "plot_latency",
    "run_benchmark",
    "source_kind",
    "table_rows",
    "time_runner",
    "write_csv",
    "write_json",
]
