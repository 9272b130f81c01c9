"""Writing benchmark results: the JSON document, CSV rows, a markdown/terminal table and a latency plot.

Every file is written atomically (vit5_infer.files), and the JSON is strict: non-finite numbers
are written as null.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Optional, Union

from vit5_infer.errors import BenchError
from vit5_infer.files import write_bytes_atomic, write_json_atomic, write_text_atomic
from vit5_infer.vocabulary import LOGITS

from .results import ACCURACY_KEYS, BenchResult
from .timing import END_TO_END, LATENCY_KEYS, TIMING_FIGURES

#: per-output CSV columns of the backbone outputs: ``{name}_{key}``
FEATURE_CSV_KEYS = ("cosine", "relative_error", "max_abs_err")


def report_dict(
    model: dict, environment: dict, results: Iterable[BenchResult], settings: Optional[dict] = None
) -> dict:
    """The JSON document of ``vit5 bench --json`` (other tools read it; keep the keys stable)."""
    results = list(results)
    out: dict[str, object] = {"model": model, "environment": environment}
    if settings is not None:
        out["settings"] = settings
    # What each row's "timing" names, for the figures present.
    out["timings"] = {name: TIMING_FIGURES[name] for name in dict.fromkeys(r.timing for r in results)}
    out["results"] = [r.to_dict() for r in results]
    return out


def write_json(report: dict, path: Union[str, Path]) -> None:
    write_json_atomic(path, report)


CSV_COLUMNS = (
    ["backend", "precision", "batch", "device", "timing", "cuda_graph", "iterations"]
    + [f"latency_{k}_ms" for k in LATENCY_KEYS]
    + ["throughput_per_s", "gflops_per_s", "peak_memory_bytes"]
    + list(ACCURACY_KEYS)
    + ["passed"]
)


def feature_outputs(results: Iterable[BenchResult]) -> list[str]:
    """The compared outputs other than logits, in the order the results name them."""
    names: dict[str, None] = {}
    for r in results:
        names.update((name, None) for name in r.outputs if name != LOGITS)
    return list(names)


DATASET_KEYS = ("images", "top1", "top5")


def csv_columns(results: Sequence[BenchResult]) -> list[str]:
    """CSV_COLUMNS, then ``{output}_{cosine,relative_error,max_abs_err}`` for every backbone output compared."""
    extra = [f"{name}_{key}" for name in feature_outputs(results) for key in FEATURE_CSV_KEYS]
    if any(r.dataset for r in results):
        extra += [f"dataset_{key}" for key in DATASET_KEYS]
    return CSV_COLUMNS[:-1] + extra + CSV_COLUMNS[-1:]


def _flat_row(r: BenchResult) -> dict:
    row = {
        "backend": r.backend,
        "precision": r.precision,
        "batch": r.batch,
        "device": r.device,
        "timing": r.timing,
        "cuda_graph": r.cuda_graph,
        "iterations": r.iterations,
        "throughput_per_s": r.throughput_per_s,
        "gflops_per_s": r.gflops_per_s,
        "peak_memory_bytes": r.peak_memory_bytes,
        "passed": r.passed,
    }
    row.update({f"latency_{k}_ms": r.latency_ms[k] for k in LATENCY_KEYS})
    row.update({k: r.accuracy[k] for k in ACCURACY_KEYS})
    row.update(
        {
            f"{name}_{key}": figures[key]
            for name, figures in r.outputs.items()
            if name != LOGITS
            for key in FEATURE_CSV_KEYS
        }
    )
    if r.dataset:
        row.update({f"dataset_{key}": r.dataset[key] for key in DATASET_KEYS})
    return row


def csv_text(results: Iterable[BenchResult]) -> str:
    results = list(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=csv_columns(results), lineterminator="\n", restval="")
    writer.writeheader()
    for r in results:
        writer.writerow({k: ("" if v is None else v) for k, v in _flat_row(r).items()})
    return buf.getvalue()


def write_csv(results: Iterable[BenchResult], path: Union[str, Path]) -> None:
    write_text_atomic(path, csv_text(results))


def format_bytes(n: Optional[float]) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def timing_label(r: BenchResult) -> str:
    """The row's timing figure as the table shows it: "end to end", "gpu compute", "host latency", with
    "+graph" where a CUDA graph was replayed."""
    return r.timing.replace("_", " ") + (" +graph" if r.cuda_graph else "")


def row_label(r: BenchResult) -> str:
    """Backend and precision, and the timing figure where it is not end to end (a trt row is one of two)."""
    base = f"{r.backend} {r.precision}"
    return base if r.timing == END_TO_END and not r.cuda_graph else f"{base} {timing_label(r)}"


# Columns of the human table (terminal and markdown): header, formatter.
TABLE_COLUMNS: list[tuple[str, Callable[[BenchResult], str]]] = [
    ("backend", lambda r: r.backend),
    ("prec", lambda r: r.precision),
    ("batch", lambda r: str(r.batch)),
    ("timing", timing_label),
    ("mean ms", lambda r: f"{r.latency_ms['mean']:.3f}"),
    ("p50", lambda r: f"{r.latency_ms['p50']:.3f}"),
    ("p90", lambda r: f"{r.latency_ms['p90']:.3f}"),
    ("p99", lambda r: f"{r.latency_ms['p99']:.3f}"),
    ("min", lambda r: f"{r.latency_ms['min']:.3f}"),
    ("max", lambda r: f"{r.latency_ms['max']:.3f}"),
    ("std", lambda r: f"{r.latency_ms['std']:.3f}"),
    ("img/s", lambda r: f"{r.throughput_per_s:.1f}"),
    ("GFLOP/s", lambda r: "-" if r.gflops_per_s is None else f"{r.gflops_per_s:.1f}"),
    ("peak mem", lambda r: format_bytes(r.peak_memory_bytes)),
    ("max abs", lambda r: f"{r.accuracy['max_abs_err']:.2e}"),
    ("mean abs", lambda r: f"{r.accuracy['mean_abs_err']:.2e}"),
    ("cosine", lambda r: f"{r.accuracy['cosine']:.6f}"),
    ("top1", lambda r: _number(r.accuracy["top1_agreement"], ".3f")),
    ("top5", lambda r: _number(r.accuracy["top5_agreement"], ".3f")),
    ("ok", lambda r: "yes" if r.passed else "FAIL"),
]


def _number(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _feature_column(name: str) -> tuple[str, Callable[[BenchResult], str]]:
    """``cos NAME``: the cosine of one backbone output (its other figures are in the JSON and CSV)."""
    return f"cos {name}", lambda r: _number(r.outputs.get(name, {}).get("cosine"), ".6f")


def _dataset_column(key: str) -> tuple[str, Callable[[BenchResult], str]]:
    """``data top1`` / ``data top5``: the accuracy on the labelled images, where they were given."""
    return f"data {key}", lambda r: "-" if not r.dataset else f"{r.dataset[key]:.4f}"


def table_rows(results: Iterable[BenchResult]) -> tuple[list[str], list[list[str]]]:
    """TABLE_COLUMNS, with a ``cos NAME`` column per backbone output compared before ``ok``."""
    results = list(results)
    columns: list[tuple[str, Callable[[BenchResult], str]]] = TABLE_COLUMNS[:-1] + [
        _feature_column(name) for name in feature_outputs(results)
    ]
    if any(r.dataset for r in results):
        columns += [_dataset_column(key) for key in ("top1", "top5")]
    columns += TABLE_COLUMNS[-1:]
    headers = [name for name, _ in columns]
    return headers, [[fmt(r) for _, fmt in columns] for r in results]


def format_markdown(results: Iterable[BenchResult]) -> str:
    headers, rows = table_rows(results)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_latency(results: Sequence[BenchResult], path: Union[str, Path], title: str = "") -> None:
    """Grouped bar chart: mean latency (p50-p99 as error bars) per backend, one group per batch size."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never needs a display
        import matplotlib.pyplot as plt
    except ImportError:
        raise BenchError(
            "--plot needs matplotlib: pip install 'vit5-infer[plot]' (or pip install matplotlib)"
        ) from None
    batches = sorted({r.batch for r in results})
    labels = list(dict.fromkeys(row_label(r) for r in results))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(batches) * max(1, len(labels)) / 2), 4.5))
    for i, label in enumerate(labels):
        xs, means, lo, hi = [], [], [], []
        for j, b in enumerate(batches):
            match = [r for r in results if row_label(r) == label and r.batch == b]
            if not match:
                continue
            lat = match[0].latency_ms
            xs.append(j + (i - (len(labels) - 1) / 2) * width)
            means.append(lat["mean"])
            lo.append(max(0.0, lat["mean"] - lat["p50"]))
            hi.append(max(0.0, lat["p99"] - lat["mean"]))
        ax.bar(xs, means, width, yerr=[lo, hi], capsize=3, label=label)
    ax.set_xticks(range(len(batches)))
    ax.set_xticklabels([f"batch {b}" for b in batches])
    ax.set_ylabel("latency per batch (ms)")
    ax.set_title(title or "vit5 bench: mean latency (error bars p50..p99)")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
