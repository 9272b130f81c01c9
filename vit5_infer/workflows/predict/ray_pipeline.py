"""``predict`` on Ray Data: decoding as a CPU ``map_batches`` stage, the model in an actor pool
(``Vit5Predictor``: one runner per actor, loaded once), the rows streamed back in input order to the
driver, which writes the same part files as a local run (so resume and sharding work the same way).

``Vit5Predictor`` and ``decode_batch`` also serve a pipeline of one's own::

    ds = ray.data.from_items([{"index": i, "path": p} for i, p in enumerate(paths)])
    ds = ds.map_batches(decode_batch, fn_kwargs={"preprocessing": pre.to_metadata()}, batch_format="numpy")
    ds = ds.map_batches(Vit5Predictor, fn_constructor_kwargs={"spec": spec, "topk": 5},
                        compute=ActorPoolStrategy(size=2), num_gpus=1, batch_size=32, batch_format="numpy")
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Optional

import numpy as np

from vit5_infer.preprocessing import Preprocessing
from vit5_infer.vocabulary import LOGITS

from .columns import output_columns
from .decode import decode_chunk
from .model import RunnerSpec
from .run_stats import RunStats

#: what a model actor holds beside its graph: the interpreter, NumPy, the runtime (measured ~250 MiB on ORT CPU)
ACTOR_BASE_BYTES = 512 << 20


def _preprocessing(value) -> Preprocessing:
    """A Preprocessing, or its ``to_metadata()`` entry (what a pipeline passes through ``fn_kwargs``)."""
    if isinstance(value, Preprocessing):
        return value
    return Preprocessing.from_metadata({"preprocessing": value}, int(value["image_size"]))


def decode_batch(batch: dict, preprocessing) -> dict:
    """A Ray Data batch ``{index, path}`` -> ``{index, path, pixels, error}`` (``error`` is "" for a
    usable image: a bad file is a row with its reason, the rest of the batch is decoded as usual)."""
    paths = [str(p) for p in batch["path"]]
    chunk = decode_chunk(batch["index"], paths, _preprocessing(preprocessing))
    return {
        "index": chunk.indices,
        "path": np.asarray(paths, dtype=object),
        "pixels": chunk.pixels,
        "error": np.asarray([e or "" for e in chunk.errors], dtype=object),
        "decode_s": np.full(len(paths), chunk.seconds / max(len(paths), 1)),
    }


class Vit5Predictor:
    """A Ray Data actor: loads the runner of ``spec`` once, then turns decoded batches into rows."""

    def __init__(
        self,
        spec: RunnerSpec,
        topk: int = 5,
        scores: str = "softmax",
        normalize: bool = False,
        outputs: Sequence[str] = (),
    ):
        self.spec, self.topk, self.scores, self.normalize = spec, topk, scores, normalize
        self.outputs = [name for name in outputs if name != LOGITS]
        self.runner = spec.make()
        self.runner.__enter__()

    def __call__(self, batch: dict) -> dict:
        n = len(batch["pixels"])
        x = self.spec.batch_input(np.asarray(batch["pixels"], dtype=np.float32))
        began = time.perf_counter()
        outputs = self.runner.run(x)
        seconds = time.perf_counter() - began
        columns = output_columns(outputs, self.outputs, self.topk, self.scores, self.normalize, rows=n)
        return {
            "index": batch["index"],
            "path": batch["path"],
            "error": batch["error"],
            "decode_s": batch["decode_s"],
            "compute_s": np.full(n, seconds / max(n, 1)),
            **columns,
        }

    def __del__(self):
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.release()


def runner_bytes(spec: RunnerSpec) -> int:
    """The size of the file a runner loads (its ONNX external data included)."""
    from pathlib import Path

    if spec.path is None:
        return 0
    path = Path(spec.path)
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def run_ray(options, model, inputs, parts, writer, progress, setup_start: float):
    import logging

    import pyarrow as pa
    import ray
    from ray.data import ActorPoolStrategy, DataContext, TaskPoolStrategy

    stats = RunStats(setup_start)
    todo = sum(end - start for start, end in parts)
    if progress:
        progress(f"starting Ray ({options.ray_address or 'local'})", 0, None)
    if not ray.is_initialized():
        ray.init(
            address=options.ray_address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
        )
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # the bar and summary are this command's
    context = DataContext.get_current()
    context.execution_options.preserve_order = True  # rows arrive in input order: parts close as they fill
    context.enable_progress_bars = False
    positions = (
        np.concatenate([np.arange(start, end, dtype=np.int64) for start, end in parts])
        if parts
        else np.zeros(0, np.int64)
    )
    table = pa.table({"index": positions, "path": pa.array([inputs.paths[i] for i in positions], pa.string())})
    names = model.extra_outputs
    workers = max(1, options.workers)
    dataset = (
        ray.data.from_arrow(table)
        .map_batches(
            # Ray types a batch function as taking the batch alone; fn_kwargs passes decode_batch the rest
            decode_batch,  # type: ignore[arg-type]
            fn_kwargs={"preprocessing": model.preprocessing.to_metadata()},
            batch_size=options.batch,
            batch_format="numpy",
            compute=TaskPoolStrategy(size=workers),
            num_cpus=1,
        )
        # Each actor reserves the memory it holds: a Python process with the runtime, and about twice
        # the graph or engine.  Its resources
        # then differ from the decode stage's, so Ray keeps decoding a separate CPU stage that runs in
        # parallel instead of fusing it into the actors, where it would run between model calls.
        .map_batches(
            Vit5Predictor,
            fn_constructor_kwargs={
                "spec": model.spec,
                "topk": options.topk,
                "scores": options.scores,
                "normalize": options.normalize,
                "outputs": names,
            },
            compute=ActorPoolStrategy(size=options.ray_actors),
            num_gpus=options.ray_gpus or None,
            memory=ACTOR_BASE_BYTES + 2 * runner_bytes(model.spec),
            batch_size=options.batch,
            batch_format="numpy",
        )
    )
    if progress:
        progress("predicting", 0, todo)
    stats.started()
    try:
        batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2))
        while True:
            waited = time.perf_counter()
            batch: Optional[dict] = next(batches, None)
            stats.wait_s += time.perf_counter() - waited
            if batch is None:
                break
            errors = [str(e) or None for e in batch["error"]]
            columns = {name: batch[name] for name in ["classes", "scores", *names]}
            stats.decode_s += float(np.sum(batch["decode_s"]))
            stats.compute_s += float(np.sum(batch["compute_s"]))
            began = time.perf_counter()
            writer.add(np.asarray(batch["index"]), columns, errors)
            stats.write_s += time.perf_counter() - began
            labels = None if inputs.labels is None else inputs.labels[np.asarray(batch["index"])]
            stats.count(columns, errors, labels)
            if progress:
                progress("predicting", stats.rows, todo)
    except BaseException:
        writer.abort()
        raise
    return stats
