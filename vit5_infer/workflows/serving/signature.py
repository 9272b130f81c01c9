"""What a served model takes and gives: tensor names, data types, per-item dims and batch bounds.

Read from the graph (an ONNX file's inputs, outputs and ``vit5.*`` metadata), from an engine's
manifest plus the graph it was built from, or from a runner by one probe batch.  Both the PyTriton
server and the model-repository writer describe the model to Triton from this one value, so the
two cannot disagree about a dim or a dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from vit5_infer.preprocessing import Preprocessing
from vit5_infer.vocabulary import INPUT_NAME, PathLike

from .errors import RepositoryError

#: Used when the graph's batch dimension is dynamic and the caller names no maximum.
DEFAULT_MAX_BATCH = 8

# ONNX TensorProto element type -> NumPy dtype name (bfloat16 has no NumPy type; named as a string).
_ONNX_DTYPES = {1: "float32", 10: "float16", 16: "bfloat16", 11: "float64", 6: "int32", 7: "int64", 9: "bool"}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, element type (a NumPy dtype name, or "bytes") and dims
    without the batch dimension (-1 where the size varies)."""

    name: str
    dtype: str
    dims: tuple

    @property
    def numpy_dtype(self):
        return np.object_ if self.dtype == "bytes" else np.dtype(self.dtype)


@dataclass(frozen=True)
class ModelSignature:
    """``inputs``/``outputs`` per batch item; ``max_batch``: the largest batch one run may take;
    ``static_batch``: the only batch the graph accepts (None: any batch up to ``max_batch``)."""

    inputs: tuple
    outputs: tuple
    max_batch: int
    static_batch: Optional[int] = None
    preprocessing: Optional[Preprocessing] = None
    layout: str = "nchw"

    @property
    def pixel_input(self) -> TensorSpec:
        return next((t for t in self.inputs if t.name == INPUT_NAME), self.inputs[0])

    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def with_max_batch(self, max_batch: Optional[int]) -> ModelSignature:
        """The same model served with at most ``max_batch`` items per run (never past what the
        graph or engine accepts)."""
        if max_batch is None:
            return self
        if max_batch < 1:
            raise RepositoryError(f"max batch must be >= 1, got {max_batch}")
        if self.static_batch is not None and max_batch != self.static_batch:
            raise RepositoryError(
                f"the graph has a static batch of {self.static_batch}; it cannot serve max batch {max_batch}"
            )
        self._check_batch_fits(max_batch)
        return replace(self, max_batch=max_batch)

    def item_bytes(self) -> int:
        """Bytes of the inputs and outputs of one batch item (a varying dim counts as 1)."""
        total = 0
        for spec in (*self.inputs, *self.outputs):
            size = 8 if spec.dtype == "bytes" else (2 if spec.dtype == "bfloat16" else np.dtype(spec.dtype).itemsize)
            total += size * int(np.prod([max(int(d), 1) for d in spec.dims], dtype=np.int64))
        return total

    def _check_batch_fits(self, max_batch: int) -> None:
        """A batch of ``max_batch`` (Triton's warm-up allocates one of zeros) must fit in this
        machine's memory, as ``--batch`` must elsewhere."""
        from vit5_infer.memory import physical_memory_bytes

        total, need = physical_memory_bytes(), max_batch * self.item_bytes()
        if total is not None and need > total:
            raise RepositoryError(
                f"max batch {max_batch} needs about {need / 2**30:.1f} GiB for one batch's inputs "
                f"and outputs, more than this machine's {total / 2**30:.1f} GiB of memory; "
                "use a smaller max batch"
            )


def _dims(value_info) -> tuple:
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in shape.dim)


def _dtype(value_info, where: str) -> str:
    elem = value_info.type.tensor_type.elem_type
    if elem not in _ONNX_DTYPES:
        raise RepositoryError(f"{where}: tensor {value_info.name} has ONNX element type {elem}, which cannot be served")
    return _ONNX_DTYPES[elem]


def onnx_signature(path: PathLike, max_batch: Optional[int] = None) -> ModelSignature:
    """The signature of an exported (or foreign) ONNX graph with one image input."""
    import onnx

    from vit5_infer.files import external_data_paths
    from vit5_infer.graph_metadata import read_metadata

    path = Path(path)
    metadata = read_metadata(path)  # Vit5Error for a missing or unreadable file
    model = onnx.load(str(path), load_external_data=False)
    external_data_paths(path, model)  # InputError for a location outside the graph's folder
    initializers = {init.name for init in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(graph_inputs) != 1:
        names = ", ".join(i.name for i in graph_inputs)
        raise RepositoryError(f"{path}: expected one image input, found {len(graph_inputs)} ({names})")
    (image,) = graph_inputs
    in_dims = _dims(image)
    if len(in_dims) != 4 or any(d < 1 for d in in_dims[1:]):
        raise RepositoryError(
            f"{path}: input {image.name} must be [batch, C, H, W] with fixed C, H, W, got {list(in_dims)}"
        )
    batch = in_dims[0] if in_dims[0] > 0 else None
    outputs = []
    for out in model.graph.output:
        dims = _dims(out)
        if not dims:
            raise RepositoryError(f"{path}: output {out.name} has no batch dimension")
        outputs.append(TensorSpec(out.name, _dtype(out, str(path)), dims[1:]))
    layout = str((metadata.get("preprocessing") or {}).get("layout", "nchw"))
    if layout not in ("nchw", "nhwc"):
        layout = "nchw"
    size = in_dims[2] if layout == "nchw" else in_dims[1]
    signature = ModelSignature(
        inputs=(TensorSpec(image.name, _dtype(image, str(path)), in_dims[1:]),),
        outputs=tuple(outputs),
        max_batch=batch or DEFAULT_MAX_BATCH,
        static_batch=batch,
        preprocessing=Preprocessing.from_metadata(metadata, size),
        layout=layout,
    )
    return signature.with_max_batch(max_batch)


def engine_signature(path: PathLike, max_batch: Optional[int] = None) -> ModelSignature:
    """The signature of a TensorRT engine built by ``vit5 build-engine``: the batch range from its
    manifest's optimization profile, tensors from the ONNX graph it was built from (TensorRT
    itself is not needed to read either)."""
    from vit5_infer.engine_manifest import batch_gaps, gapless_profiles_text, read_manifest

    path = Path(path)
    manifest = read_manifest(path)
    onnx_path = Path(manifest.onnx_path)
    if not onnx_path.is_absolute():
        onnx_path = path.parent / onnx_path
    if not onnx_path.is_file():
        raise RepositoryError(
            f"{path}: its manifest names the graph {manifest.onnx_path}, which is not there; "
            "the graph's outputs and dtypes are read from it"
        )
    graph = onnx_signature(onnx_path)
    profile = (manifest.profiles or {}).get(graph.pixel_input.name) or {}
    engine_max = int((profile.get("max") or [graph.max_batch])[0])
    engine_min = int((profile.get("min") or [1])[0])
    if engine_min > 1:
        raise RepositoryError(
            f"{path}: its profile starts at batch {engine_min}; Triton sends batches from 1, rebuild with --min-batch 1"
        )
    gaps = batch_gaps(manifest)
    if gaps:
        missing = ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in gaps)
        raise RepositoryError(
            f"{path}: no optimization profile takes batch {missing}, and a dynamic batcher forms any batch up to "
            f"{engine_max}; rebuild with --batch-profiles that leave no gap (e.g. {gapless_profiles_text(manifest)})"
        )
    signature = replace(graph, max_batch=engine_max, static_batch=None)
    if max_batch is not None and max_batch > engine_max:
        raise RepositoryError(
            f"{path}: the engine takes at most batch {engine_max} (its profile); rebuild with --max-batch {max_batch}"
        )
    return signature.with_max_batch(max_batch)


def probe_outputs(runner, signature: ModelSignature) -> ModelSignature:
    """``signature`` with the outputs a loaded runner actually returns (``Runner.run``), read from
    one batch of zeros: a runner may give fewer outputs than its graph has, and always float32."""
    spec = signature.pixel_input
    batch = signature.static_batch or 1
    outputs = runner.run(np.zeros((batch, *spec.dims), dtype=spec.numpy_dtype))
    specs = []
    for name, value in outputs.items():
        value = np.asarray(value)
        specs.append(TensorSpec(name, str(value.dtype), tuple(value.shape[1:])))
    if not specs:
        raise RepositoryError(f"runner {runner.name} returned no outputs")
    return replace(signature, outputs=tuple(specs))


def config_signature(config, max_batch: Optional[int] = None) -> ModelSignature:
    """The signature of a PyTorch network (torch runners): float32 NCHW pixels at the config's size;
    outputs are filled in by ``probe_outputs``."""
    network = config.network
    dims = (network.in_channels, network.image_size, network.image_size)
    return ModelSignature(
        inputs=(TensorSpec(INPUT_NAME, "float32", dims),),
        outputs=(),
        max_batch=max_batch or DEFAULT_MAX_BATCH,
        preprocessing=Preprocessing(image_size=network.image_size),
    )
