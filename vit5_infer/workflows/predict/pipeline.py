"""``predict(options)``: run a model over an image collection into a resumable Parquet dataset.

The order of work: every option and path is checked (one-line errors, nothing written), the model
is resolved and fingerprinted, the dataset is opened (or checked, when resuming), then the pending
parts of this shard are decoded in worker processes while the model runs, part after part.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from vit5_infer.errors import PredictError
from vit5_infer.files import check_output_dir, check_output_path, write_json_atomic

from .columns import output_columns
from .dataset import (
    WORK_PREFIX,
    DatasetWriter,
    check_dataset_folder,
    column_spec,
    dataset_metadata,
    finished_ranges,
    open_dataset,
    pending_parts,
    remove_stale_staging,
)
from .decode import DecodePool
from .inputs import InputList, read_inputs
from .model import ResolvedModel, resolve_model
from .options import PredictOptions
from .run_stats import RunStats

#: (message, rows done, rows to do): a step when ``rows to do`` is None, else the rows of this run so far
PredictProgress = Optional[Callable[[str, int, Optional[int]], None]]


@dataclass
class PredictSummary:
    output: str
    shard: str
    rows: int  # rows written by this run
    errors: int  # of them, rows whose image could not be used
    skipped: int  # rows of this shard already in the dataset
    parts: int  # part files written
    wall_s: float  # from the first decoded chunk's request to the last part's commit
    images_per_s: float  # rows / wall_s
    decode_s: float  # decode + preprocessing time in the workers (overlapped with compute)
    wait_s: float  # time the model waited for decoded images
    compute_s: float  # time in the runner
    write_s: float  # time committing part files
    setup_s: float  # resolving, exporting and loading the model
    backend: str = ""
    labelled: Optional[int] = None
    top1: Optional[float] = None
    top5: Optional[float] = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Plan:
    """What a run was checked to do, before any model is loaded."""

    inputs: InputList
    output: Path
    summary: Optional[Path]
    bounds: tuple


def plan(options: PredictOptions) -> Plan:
    """Every option, input and output checked, in one line each, before any work."""
    options.check()
    inputs = read_inputs(options.images, options.labels)
    output = check_output_dir(
        options.output, "-o", (inputs.root, options.labels, options.calibration, _source_path(options.source))
    )
    check_dataset_folder(output)
    summary = None
    if options.summary is not None:
        summary = check_output_path(options.summary, "--summary", (inputs.root, options.labels), (".json",))
        if output.resolve() in summary.resolve().parents:
            raise PredictError(f"--summary {options.summary} lies inside the dataset {output}; write it elsewhere")
    try:
        import pyarrow.parquet  # noqa: F401 - imported here, so that the first part's write time is the write's
    except ImportError:
        raise PredictError("vit5 predict writes Parquet with pyarrow: pip install 'vit5-infer[parquet]'") from None
    if options.ray:
        import importlib.util

        from vit5_infer.engines.registry import backends_running

        if importlib.util.find_spec("ray") is None:
            raise PredictError("--ray needs Ray Data: pip install 'vit5-infer[ray]'")
        if options.backend in backends_running("model"):
            raise PredictError("--ray runs a file on every actor: use an ort* or trt backend")
    return Plan(inputs, output, summary, options.shard.bounds(len(inputs)))


def _source_path(source: str) -> Optional[Path]:
    path = Path(source)
    return path if path.exists() else None


def predict(options: PredictOptions, progress: PredictProgress = None) -> PredictSummary:
    """Run ``options.source`` over ``options.images`` into the dataset ``options.output`` (see the module doc)."""
    checked = plan(options)
    say = (lambda message: progress(message, 0, None)) if progress else (lambda message: None)
    setup_start = time.perf_counter()
    # Ray actors on other hosts read the exported graph: it lives beside the dataset, on shared storage.
    work_parent = checked.output if options.ray else None
    if work_parent is not None:
        work_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=WORK_PREFIX if options.ray else "vit5-predict-", dir=work_parent) as work:
        model = resolve_model(options, work, say)
        if options.topk > model.num_classes:
            raise PredictError(f"--topk {options.topk} exceeds the network's {model.num_classes} classes")
        labels = checked.inputs.labels
        if labels is not None and len(labels) and int(labels.max()) >= model.num_classes:
            raise PredictError(
                f"--labels gives class index {int(labels.max())}, but the network has {model.num_classes} classes"
            )
        columns = column_spec(options.topk, options.scores, options.normalize, labels is not None, model.shapes)
        metadata = dataset_metadata(
            model.fingerprint, columns, {"count": len(checked.inputs), "sha256": checked.inputs.digest()}
        )
        open_dataset(checked.output, metadata, options.overwrite)
        parts = list(pending_parts(checked.bounds, finished_ranges(checked.output), options.rows_per_file))
        todo = sum(end - start for start, end in parts)
        skipped = checked.bounds[1] - checked.bounds[0] - todo
        writer = DatasetWriter(checked.output, parts, columns, checked.inputs.paths, labels, metadata)
        if not parts:
            stats = RunStats(setup_start)
            stats.started()
        elif options.ray:
            from .ray_pipeline import run_ray

            stats = run_ray(options, model, checked.inputs, parts, writer, progress, setup_start)
        else:
            stats = run_local(options, model, checked.inputs, parts, writer, progress, setup_start)
        remove_stale_staging(checked.output)
    summary = PredictSummary(
        output=str(checked.output),
        shard=str(options.shard),
        skipped=skipped,
        parts=writer.parts_written,
        backend=model.spec.backend,
        **stats.finish(labels is not None),
    )
    if checked.summary is not None:
        write_json_atomic(checked.summary, summary.to_dict())
    return summary


def chunks(parts, batch: int, paths) -> Iterator[tuple[range, list]]:
    """Batches of input positions (and their paths), part by part: a batch never spans two parts."""
    for start, end in parts:
        for first in range(start, end, batch):
            positions = range(first, min(first + batch, end))
            yield positions, [paths[i] for i in positions]


def run_local(
    options: PredictOptions,
    model: ResolvedModel,
    inputs: InputList,
    parts,
    writer: DatasetWriter,
    progress: PredictProgress,
    setup_start: float,
) -> RunStats:
    stats = RunStats(setup_start)
    todo = sum(end - start for start, end in parts)
    if progress:
        progress(f"loading {model.spec.backend} [{model.spec.precision}]", 0, None)
    runner = model.spec.make()
    try:
        with runner, DecodePool(model.preprocessing, options.workers) as pool:
            stats.started()
            if progress:
                progress("predicting", 0, todo)
            decoded = pool.map(chunks(parts, options.batch, inputs.paths))
            names = model.extra_outputs
            while True:
                waited = time.perf_counter()
                chunk = next(decoded, None)
                stats.wait_s += time.perf_counter() - waited
                if chunk is None:
                    break
                stats.decode_s += chunk.seconds
                x = model.spec.batch_input(chunk.pixels)
                began = time.perf_counter()
                outputs = runner.run(x)
                stats.compute_s += time.perf_counter() - began
                columns = output_columns(
                    outputs, names, options.topk, options.scores, options.normalize, rows=len(chunk.indices)
                )
                began = time.perf_counter()
                writer.add(chunk.indices, columns, chunk.errors)
                stats.write_s += time.perf_counter() - began
                labels = None if inputs.labels is None else inputs.labels[chunk.indices]
                stats.count(columns, chunk.errors, labels)
                if progress:
                    progress("predicting", stats.rows, todo)
    except BaseException:
        writer.abort()  # Ctrl-C or a failure: the part in flight is dropped, the committed ones stay
        raise
    return stats
