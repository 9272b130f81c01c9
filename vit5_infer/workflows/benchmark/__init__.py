"""The benchmark pipeline behind ``vit5 bench``, usable without the CLI.

``benchmark(BenchOptions(source, BenchSettings(...), json=...), progress)`` is the command's entry (checks,
run, reports); ``run_benchmark(source, BenchSettings(...)) -> BenchReport`` the run alone; the pieces are small
modules: ``workflow`` (the entry and its option checks),
``timing`` (warm-up, timed loop, latency statistics), ``results`` (one row and its accuracy verdict),
``inputs`` (seeded or real images and the PyTorch reference), ``artifacts`` (the exports and engines
each backend runs), ``environment`` (where it was measured), ``gemm_rate`` (the machine's FP32 GEMM rate, the bar
CPU speeds are stated against), ``report`` (JSON, CSV, markdown, plot).
Nothing heavy is imported until it is used.
"""

from .gemm_rate import matmul_rate_gflops
from .report import csv_text, format_markdown, plot_latency, table_rows, write_csv, write_json
from .results import BenchResult, make_result
from .run import BenchReport, BenchSettings, run_benchmark, source_kind
from .timing import TimingPlan, latency_stats, time_runner
from .workflow import BenchOptions, accuracy_failure, benchmark

__all__ = [
    "BenchOptions",
    "BenchReport",
    "BenchResult",
    "BenchSettings",
    "TimingPlan",
    "accuracy_failure",
    "benchmark",
    "csv_text",
    "format_markdown",
    "latency_stats",
    "make_result",
    "matmul_rate_gflops",
    "plot_latency",
    "run_benchmark",
    "source_kind",
    "table_rows",
    "time_runner",
    "write_csv",
    "write_json",
]
