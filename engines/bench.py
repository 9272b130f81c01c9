"""Benchmark library behind ``vit5 bench``: timing, accuracy against the PyTorch FP32 reference, reports.

Every piece is a small function so that the CLI only wires them together:

* ``time_runner``         warm-up, then a timed loop (fixed count and/or time budget), one sample per batch;
* ``latency_stats``       mean / p50 / p90 / p99 / min / max / std in milliseconds;
* ``make_result``         one row: latency, throughput, GFLOP/s and the accuracy verdict, which uses the
                          project's shared ``vit5_infer.metrics`` (``compare_logits``, ``TOLERANCES``);
* ``capture_environment`` CPU, GPU, driver and library versions, recorded in the JSON;
* ``report_dict`` / ``write_json`` / ``write_csv`` / ``format_markdown`` / ``plot_latency``;
* ``load_images``         a folder of images preprocessed as the model's metadata says (SPEC 8.4).

Heavy or optional imports (torch, onnxruntime, tensorrt, PIL, matplotlib) happen inside the functions
that need them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np

from vit5_infer.errors import InputError, Vit5Error
from vit5_infer.metrics import compare_logits, within_tolerance

from vit5_infer.preprocessing import Preprocessing, list_images, load_images, preprocess_image  # noqa: F401

from .host_memory import peak_rss_bytes, reset_peak_rss

LATENCY_KEYS = ("mean", "p50", "p90", "p99", "min", "max", "std")
ACCURACY_KEYS = ("max_abs_err", "mean_abs_err", "cosine", "top1_agreement", "top5_agreement")


class BenchError(Vit5Error):
    """A benchmark that cannot run as asked (bad option, missing optional dependency)."""


# ---- statistics -------------------------------------------------------------------------------


def latency_stats(samples_ms: Sequence[float]) -> dict:
    """Summary of per-batch latencies in milliseconds (percentiles by linear interpolation)."""
    if len(samples_ms) == 0:
        raise BenchError("no timed iterations: raise --iters or --seconds")
    a = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "mean": float(a.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(a.min()),
        "max": float(a.max()),
        # population std: the spread of what was measured, not an estimate for unseen runs
        "std": float(a.std()),
    }


# ---- timing -----------------------------------------------------------------------------------


def synchronize(device: str) -> None:
    """Wait for queued GPU work; ``Runner.infer`` already returns host data, this guards async runners."""
    if device != "cuda":
        return
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@dataclass
class TimingPlan:
    warmup: int = 5
    iters: Optional[int] = 50  # None: as many as fit in ``seconds``
    seconds: Optional[float] = None  # None: exactly ``iters``

    def __post_init__(self):
        if self.warmup < 0:
            raise BenchError(f"--warmup must be >= 0, got {self.warmup}")
        if self.iters is None and self.seconds is None:
            raise BenchError("give --iters or --seconds")
        if self.iters is not None and self.iters < 1:
            raise BenchError(f"--iters must be >= 1, got {self.iters}")
        if self.seconds is not None and not self.seconds > 0:
            raise BenchError(f"--seconds must be > 0, got {self.seconds}")

    @property
    def total(self) -> Optional[int]:
        """Expected number of timed iterations, when known (for progress bars)."""
        return self.iters


ProgressFn = Callable[[str, int, Optional[int]], None]  # (phase "warmup"/"timed", done, total)


def time_runner(
    infer: Callable[[np.ndarray], np.ndarray],
    inputs: np.ndarray,
    plan: TimingPlan,
    device: str = "cpu",
    progress: Optional[ProgressFn] = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], np.ndarray]:
    """Warm up, then time ``infer(inputs)`` once per iteration.

    Returns (latencies in ms, the logits of the last call).  The loop stops after ``plan.iters``
    iterations, or once ``plan.seconds`` of timed work have passed, whichever comes first (at least
    one timed iteration always runs).
    """
    out = None
    for i in range(plan.warmup):
        out = infer(inputs)
        synchronize(device)
        if progress:
            progress("warmup", i + 1, plan.warmup)
    samples: list[float] = []
    started = clock()
    while True:
        t0 = clock()
        out = infer(inputs)
        synchronize(device)
        samples.append((clock() - t0) * 1e3)
        if progress:
            progress("timed", len(samples), plan.iters)
        if plan.iters is not None and len(samples) >= plan.iters:
            break
        if plan.seconds is not None and clock() - started >= plan.seconds:
            break
    return samples, np.asarray(out)


# ---- results and reports ----------------------------------------------------------------------


@dataclass
class BenchResult:
    backend: str
    precision: str
    batch: int
    device: str
    latency_ms: dict
    throughput_per_s: float
    accuracy: dict
    iterations: int
    gflops_per_s: Optional[float] = None
    peak_memory_bytes: Optional[int] = None
    passed: bool = True
    failure: Optional[str] = None  # why the accuracy misses the precision's tolerance

    def to_dict(self) -> dict:
        return asdict(self)


def make_result(
    backend: str,
    precision: str,
    batch: int,
    device: str,
    samples_ms: Sequence[float],
    reference: np.ndarray,
    candidate: np.ndarray,
    flops_per_image: Optional[int] = None,
    peak_memory_bytes: Optional[int] = None,
) -> BenchResult:
    """Latency, throughput, accuracy and pass/fail of one backend at one batch size."""
    latency = latency_stats(samples_ms)
    metrics = compare_logits(reference, candidate)
    passed, reason = within_tolerance(metrics, precision)
    accuracy = {k: metrics[k] for k in ACCURACY_KEYS}
    seconds = latency["mean"] / 1e3
    throughput = batch / seconds if seconds > 0 else math.inf
    gflops = flops_per_image * batch / seconds / 1e9 if flops_per_image and seconds > 0 else None
    return BenchResult(
        backend=backend,
        precision=precision,
        batch=batch,
        device=device,
        latency_ms=latency,
        throughput_per_s=throughput,
        accuracy=accuracy,
        iterations=len(samples_ms),
        gflops_per_s=gflops,
        peak_memory_bytes=peak_memory_bytes,
        passed=passed,
        failure=None if passed else reason,
    )


def report_dict(model: dict, environment: dict, results: Iterable[BenchResult], settings: Optional[dict] = None) -> dict:
    """The JSON document of ``vit5 bench --json`` (other tools read it; keep the keys stable)."""
    out = {"model": model, "environment": environment}
    if settings is not None:
        out["settings"] = settings
    out["results"] = [r.to_dict() for r in results]
    return out


def write_json(report: dict, path: Union[str, Path]) -> None:
    Path(path).write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")


CSV_COLUMNS = (
    ["backend", "precision", "batch", "device", "iterations"]
    + [f"latency_{k}_ms" for k in LATENCY_KEYS]
    + ["throughput_per_s", "gflops_per_s", "peak_memory_bytes"]
    + list(ACCURACY_KEYS)
    + ["passed"]
)


def _flat_row(r: BenchResult) -> dict:
    row = {
        "backend": r.backend,
        "precision": r.precision,
        "batch": r.batch,
        "device": r.device,
        "iterations": r.iterations,
        "throughput_per_s": r.throughput_per_s,
        "gflops_per_s": r.gflops_per_s,
        "peak_memory_bytes": r.peak_memory_bytes,
        "passed": r.passed,
    }
    row.update({f"latency_{k}_ms": r.latency_ms[k] for k in LATENCY_KEYS})
    row.update({k: r.accuracy[k] for k in ACCURACY_KEYS})
    return row


def csv_text(results: Iterable[BenchResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: ("" if v is None else v) for k, v in _flat_row(r).items()})
    return buf.getvalue()


def write_csv(results: Iterable[BenchResult], path: Union[str, Path]) -> None:
    Path(path).write_text(csv_text(results))


def format_bytes(n: Optional[int]) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


# Columns of the human table (terminal and markdown): header, formatter.
TABLE_COLUMNS: list[tuple[str, Callable[[BenchResult], str]]] = [
    ("backend", lambda r: r.backend),
    ("prec", lambda r: r.precision),
    ("batch", lambda r: str(r.batch)),
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
    ("top1", lambda r: f"{r.accuracy['top1_agreement']:.3f}"),
    ("top5", lambda r: f"{r.accuracy['top5_agreement']:.3f}"),
    ("ok", lambda r: "yes" if r.passed else "FAIL"),
]


def table_rows(results: Iterable[BenchResult]) -> tuple[list[str], list[list[str]]]:
    headers = [name for name, _ in TABLE_COLUMNS]
    return headers, [[fmt(r) for _, fmt in TABLE_COLUMNS] for r in results]


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
        raise BenchError("--plot needs matplotlib: pip install 'vit5-infer[plot]' (or pip install matplotlib)") from None
    batches = sorted({r.batch for r in results})
    labels = list(dict.fromkeys(f"{r.backend} {r.precision}" for r in results))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(batches) * max(1, len(labels)) / 2), 4.5))
    for i, label in enumerate(labels):
        xs, means, lo, hi = [], [], [], []
        for j, b in enumerate(batches):
            match = [r for r in results if f"{r.backend} {r.precision}" == label and r.batch == b]
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
    fig.savefig(str(path), dpi=120)
    plt.close(fig)


# ---- environment ------------------------------------------------------------------------------


def _version(dist: str) -> Optional[str]:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi() -> dict:
    """GPU names and driver version from nvidia-smi, when there is one."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    gpus = [dict(zip(("name", "driver", "memory"), (p.strip() for p in line.split(",")))) for line in out.splitlines() if line.strip()]
    if not gpus:
        return {}
    return {"gpus": [g["name"] for g in gpus], "driver": gpus[0].get("driver"), "gpu_memory": gpus[0].get("memory")}


def capture_environment() -> dict:
    """Where the numbers were measured: host, accelerators, library versions."""
    import torch

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "vit5_infer": _version("vit5-infer") or __import__("vit5_infer").__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime-gpu") or _version("onnxruntime"),
        "tensorrt": _version("tensorrt") or _version("tensorrt-cu12") or _version("tensorrt-cu13"),
    }
    try:
        import onnxruntime

        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        env["onnxruntime_providers"] = []
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    smi = _nvidia_smi()
    if smi:
        env.setdefault("gpu", smi["gpus"][0])
        env["gpus"] = smi["gpus"]
        env["driver"] = smi["driver"]
        env["gpu_memory"] = smi["gpu_memory"]
    else:
        env["driver"] = None
    return env


# ---- inputs and reference -----------------------------------------------------------------------


def seeded_inputs(model, batches: Iterable[int], seed: int) -> dict:
    """The same seeded ``pixel_values`` for every backend: batch size -> float32 NCHW array."""
    from vit5_infer import example_inputs

    return {b: example_inputs(model, b, seed).numpy() for b in batches}


def image_inputs(folder: Union[str, Path], pre: "Preprocessing", batches: Iterable[int]) -> dict:
    """Real images for every batch size (the first ``b`` images of the folder, cycled)."""
    batches = list(batches)
    images = load_images(folder, pre, max(batches))
    return {b: images[:b] for b in batches}


def reference_logits(model, inputs: dict) -> dict:
    """PyTorch FP32 logits of ``model`` for every batch of ``inputs``."""
    import torch

    with torch.inference_mode():
        return {b: model(torch.from_numpy(x)).float().numpy() for b, x in inputs.items()}


def reference_from_onnx(onnx_path: Union[str, Path], trust_pickle: bool = False):
    """The PyTorch FP32 model an exported ONNX file came from, rebuilt from its vit5 metadata.

    Presets are rebuilt from their seed; checkpoints are re-read from the recorded path and must
    still have the recorded SHA-256 (otherwise the comparison would measure a different model).
    """
    from vit5_infer import resolve_model
    from vit5_infer.exporters import config_from_metadata, read_metadata

    metadata = read_metadata(onnx_path)
    config = config_from_metadata(metadata)
    source = metadata.get("source")
    if not isinstance(source, dict) or "kind" not in source:
        raise BenchError(f"{onnx_path}: the metadata records no source model; cannot rebuild the PyTorch reference")
    if source["kind"] == "preset":
        model, _ = resolve_model(source["name"], config=config, seed=source.get("seed") or 0)
        return model, metadata
    checkpoint = Path(source["name"])
    if not checkpoint.is_file():
        raise BenchError(
            f"{onnx_path} was exported from {checkpoint}, which is not found here; the PyTorch reference needs it"
        )
    model, origin = resolve_model(
        checkpoint, config=config, weights=source.get("weights") or "ema", trust_pickle=trust_pickle
    )
    # resolve_model already hashes the checkpoint (ModelSource.sha256): no extra pass over the file.
    expected = source.get("sha256")
    if expected and origin.sha256 != expected:
        raise BenchError(f"{checkpoint} changed since {onnx_path} was exported (SHA-256 differs); re-export it")
    return model, metadata


def onnx_of_engine(engine_path: Union[str, Path]) -> Path:
    """The ONNX file an engine was built from (its manifest records it), for rebuilding the reference."""
    from vit5_infer.engines.manifest import read_manifest

    manifest = read_manifest(engine_path)
    candidates = [Path(manifest.onnx_path), Path(engine_path).parent / Path(manifest.onnx_path).name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise BenchError(
        f"{engine_path} was built from {manifest.onnx_path}, which is not found here; "
        "the PyTorch reference is rebuilt from that ONNX file's metadata"
    )


# ---- the benchmark loop -------------------------------------------------------------------------


@dataclass
class BackendPlan:
    """One backend to benchmark: how to make its runner (called once, reused for every batch size)."""

    backend: str
    precision: str
    make: Callable[[], object]  # -> engines.base.Runner, not yet loaded


BenchProgress = Callable[[str, str, int, Optional[int]], None]  # (label, phase, done, total)


def run_backend(
    plan: BackendPlan,
    inputs: dict,
    references: dict,
    timing: TimingPlan,
    flops_per_image: Optional[int] = None,
    progress: Optional[BenchProgress] = None,
    on_status: Optional[Callable[[str], None]] = None,
) -> list[BenchResult]:
    """Load the backend once, then time it at every batch size of ``inputs``."""
    runner = plan.make()
    results = []
    if on_status:
        on_status(f"loading {plan.backend} [{plan.precision}]")
    with runner:
        for batch, x in inputs.items():
            label = f"{plan.backend} [{plan.precision}] batch {batch}"
            # CPU runners have no device allocator to ask: use the process's peak RSS, reset per run.
            host_peak = runner.device == "cpu" and reset_peak_rss()
            if on_status:
                # torch.compile and TensorRT do their heavy work on the first call of a new shape
                on_status(f"warming up {label}")
            step = (lambda phase, done, total, _label=label: progress(_label, phase, done, total)) if progress else None
            samples, logits = time_runner(runner.infer, x, timing, device=runner.device, progress=step)
            results.append(
                make_result(
                    plan.backend,
                    plan.precision,
                    batch,
                    runner.device,
                    samples,
                    references[batch],
                    logits,
                    flops_per_image=flops_per_image,
                    peak_memory_bytes=runner.peak_memory_bytes() or (peak_rss_bytes() if host_peak else None),
                )
            )
    return results


def model_info(model, name: str, kind: str, **extra) -> dict:
    """The ``model`` section of the report."""
    from vit5_infer.config import config_summary

    info = {
        "name": name,
        "kind": kind,
        "input_shape": list(model.input_shape),
        "parameters": model.num_parameters(),
        "flops_per_image": model.flop_count(inference=True),
        "architecture": config_summary(model.config),
        "config": model.config.to_dict(),
    }
    info.update({k: v for k, v in extra.items() if v is not None})
    return info
