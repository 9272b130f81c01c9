"""TensorRT runner: an engine built by ``build_engine``, run by Polygraphy's ``TrtRunner``.

The manifest is checked before TensorRT sees the engine, so a version/GPU mismatch is reported as an
EngineMismatchError with the rebuild command instead of TensorRT's version-tag failure.  Inputs go in
as torch CPU tensors of the engine's input type; Polygraphy copies them with its own CUDA helpers and
returns torch tensors (BF16 outputs included), so neither pycuda nor a CUDA build of torch is needed.
Every engine output is returned by name as float32 (``logits``, and the backbone features of
multi-output engines).  An engine with several optimization profiles runs each batch on the profile that
holds it, as the engine itself reports them (not the manifest).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from vit5_infer.engine_manifest import EngineManifest, check_compatible, find_manifest, rebuild_command
from vit5_infer.errors import InputError
from vit5_infer.vocabulary import ENGINE_SUFFIXES, LOGITS, PathLike

from .base import Runner
from .errors import BackendError, EngineMismatchError, first_line
from .tensorrt_support import (
    check_gpu_supported,
    cuda_initialized,
    import_tensorrt,
    reported_error,
    require_gpu,
    tensorrt_cuda_runtime,
    tensorrt_log,
)


def check_batch(pixel_values: np.ndarray, batch_range: tuple[int, int], engine_name: str) -> None:
    """InputError (one line) unless ``pixel_values`` is [B, C, H, W] with B in the engine's profile."""
    if pixel_values.ndim != 4:
        raise InputError(f"pixel_values must be [B, C, H, W], got shape {list(pixel_values.shape)}")
    low, high = batch_range
    batch = int(pixel_values.shape[0])
    if not low <= batch <= high:
        raise InputError(
            f"{engine_name} accepts batch {low}..{high}, got {batch}; rebuild it with --min-batch/--max-batch"
        )


def batch_range(shape: Sequence[int], profile: Sequence[Sequence[int]], engine_name: str) -> tuple[int, int]:
    """The batch sizes an engine takes: the fixed batch of its [B, C, H, W] input (an engine built by
    another tool for one shape), else profile 0's min..max (``get_tensor_profile_shape``: [min, opt, max],
    each Dims{-1} when the input has no profile)."""
    return profile_batches(shape, [profile], engine_name)[0]


def profile_batches(
    shape: Sequence[int], profiles: Sequence[Sequence[Sequence[int]]], engine_name: str
) -> list[tuple[int, int]]:
    """The batch range (min, max) of each optimization profile, in profile order, from the engine's own
    ``get_tensor_profile_shape(name, index)`` ([min, opt, max] per profile); one range, the fixed batch, for
    an input whose batch is not dynamic."""
    dims = [int(d) for d in shape]
    if len(dims) != 4:
        raise BackendError(f"{engine_name}: expected a [B, C, H, W] input, the engine's is {dims}")
    if dims[0] >= 0:
        return [(dims[0], dims[0])]
    ranges = []
    for index, profile in enumerate(profiles):
        shapes = [[int(d) for d in dims] for dims in profile]
        if len(shapes) != 3 or any(len(s) != 4 or s[0] < 1 for s in shapes):
            raise BackendError(f"{engine_name}: its dynamic batch has no optimization profile {index} ({shapes})")
        ranges.append((shapes[0][0], shapes[2][0]))
    if not ranges:
        raise BackendError(f"{engine_name}: its dynamic batch has no optimization profile 0 ([])")
    return ranges


def format_ranges(ranges: Sequence[tuple[int, int]]) -> str:
    return ", ".join(str(low) if low == high else f"{low}..{high}" for low, high in ranges)


def pick_profile(batch: int, ranges: Sequence[tuple[int, int]], engine_name: str) -> int:
    """The optimization profile for ``batch``: of those that hold it, the narrowest (tuned closest to it),
    the first of equals.  A batch none holds is a BackendError naming the ranges."""
    holding = [(high - low, index) for index, (low, high) in enumerate(ranges) if low <= batch <= high]
    if not holding:
        raise BackendError(
            f"{engine_name} has optimization profiles for batch {format_ranges(ranges)}; got {batch}: "
            "rebuild it with a profile that holds it (--batch-profiles)"
        )
    return min(holding)[1]


def input_tensor(pixel_values: np.ndarray, dtype: Any) -> Any:
    """``pixel_values`` as a contiguous torch CPU tensor of the engine input's type (a Polygraphy DataType)."""
    import torch
    from polygraphy.datatype import DataType

    torch_dtype = dtype if isinstance(dtype, torch.dtype) else DataType.to_dtype(dtype, "torch")
    return torch.from_numpy(np.ascontiguousarray(pixel_values)).to(torch_dtype).contiguous()


def outputs_as_float32(outputs: Mapping[str, Any], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The engine outputs ``names`` as float32 NumPy arrays of their own (the runner reuses its buffers)."""
    missing = [name for name in names if name not in outputs]
    if missing:
        raise BackendError(f"TensorRT returned no output {', '.join(map(repr, missing))}")
    result = {}
    for name in names:
        value = outputs[name]
        if hasattr(value, "detach"):  # torch tensor, possibly bfloat16 (which NumPy lacks)
            import torch

            result[name] = value.detach().to("cpu", dtype=torch.float32, copy=True).numpy()
        else:
            result[name] = np.array(value, dtype=np.float32, copy=True)
    return result


def _uint8() -> Any:
    import torch

    return torch.uint8


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    from polygraphy.logger import G_LOGGER

    with G_LOGGER.verbosity(G_LOGGER.CRITICAL + 1):
        yield


class TensorRTRunner(Runner):
    backend = "trt"

    def __init__(self, engine_path: PathLike, device: int = 0):
        super().__init__()
        self.engine_path = Path(engine_path)
        self.device_index = int(device)
        self.device = "cuda"
        self.manifest: Optional[EngineManifest] = None
        if not self.engine_path.is_file():
            raise BackendError(f"{self.engine_path}: TensorRT engine not found")
        if self.engine_path.suffix.lower() not in ENGINE_SUFFIXES:
            raise BackendError(f"{self.engine_path}: expected a TensorRT engine ({', '.join(ENGINE_SUFFIXES)})")
        self.manifest = find_manifest(self.engine_path)
        if self.manifest is not None:
            self.precision = self.manifest.precision
        self._runner: Any = None
        self._input_name = ""
        self._input_dtype: Any = None
        self.output_names: list[str] = []
        #: batch range of each optimization profile, as the engine reports them
        self.profile_ranges: list[tuple[int, int]] = [(1, 1)]
        self._profile: Optional[int] = None  # the profile set on the execution context

    @property
    def batch_range(self) -> tuple[int, int]:
        """The batch sizes some optimization profile takes: the smallest minimum to the largest maximum."""
        return min(low for low, _ in self.profile_ranges), max(high for _, high in self.profile_ranges)

    def load(self) -> None:
        if self._runner is not None:
            return
        trt = import_tensorrt()
        gpu = require_gpu("running a TensorRT engine", self.device_index)
        check_gpu_supported(trt.__version__, gpu)
        if self.manifest is not None:
            check_compatible(
                self.manifest, trt.__version__, gpu.name, gpu.compute_capability, engine_path=self.engine_path
            )
        from polygraphy.backend.trt import TrtRunner, engine_from_bytes
        from polygraphy.exception import PolygraphyException

        with tensorrt_log() as errors, cuda_initialized(trt.__version__, f"running {self.engine_path.name}"):
            tensorrt_cuda_runtime(self.device_index)
            try:
                engine = engine_from_bytes(self.engine_path.read_bytes())
            except PolygraphyException:
                how = (
                    rebuild_command(self.manifest, self.engine_path)
                    if self.manifest is not None
                    else f"vit5 build-engine MODEL.onnx -o {self.engine_path}"
                )
                said = reported_error(errors, "")
                raise EngineMismatchError(
                    f"TensorRT {trt.__version__} could not load {self.engine_path} (built by another TensorRT "
                    f"version or for another GPU, or not an engine{'; TensorRT: ' + said if said else ''}); "
                    f"rebuild it with: {how}"
                ) from None
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            self.output_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            if len(inputs) != 1 or not self.output_names:
                raise BackendError(
                    f"{self.engine_path}: expected one input and at least one output, found {inputs} -> "
                    f"{self.output_names}"
                )
            self._input_name = inputs[0]
            shape = engine.get_tensor_shape(self._input_name)
            dynamic = len(shape) > 0 and int(shape[0]) < 0
            self.profile_ranges = profile_batches(
                shape,
                [
                    engine.get_tensor_profile_shape(self._input_name, index)
                    for index in range(engine.num_optimization_profiles if dynamic else 0)
                ],
                self.engine_path.name,
            )
            runner = TrtRunner(engine)
            try:
                runner.activate()  # creates the execution context: fails when the GPU has too little memory free
            except PolygraphyException as exc:
                reason = reported_error(errors, first_line(exc, "no reason given"))
                raise BackendError(
                    f"TensorRT could not start {self.engine_path.name} on GPU {self.device_index} ({reason})"
                ) from None
            # Polygraphy DataTypes, not the NumPy dtypes get_input_metadata() still returns by default (which
            # torch cannot convert to, and which BF16 has none of).
            self._input_dtype = runner.get_input_metadata(use_numpy_dtypes=False)[self._input_name].dtype
        self._runner = runner
        # A context starts on profile 0; with one profile nothing is ever switched.
        self._profile = 0
        self._loaded = True

    def run(self, pixel_values: np.ndarray) -> dict[str, np.ndarray]:
        if self._runner is None:
            self.load()
        self.use_profile_for(pixel_values)
        from polygraphy.exception import PolygraphyException

        feed = {self._input_name: input_tensor(pixel_values, self._input_dtype)}
        try:
            with _quiet():
                outputs = self._runner.infer(feed)
        except PolygraphyException as exc:
            reason = first_line(exc, "no reason given")
            raise BackendError(
                f"TensorRT failed to run {self.engine_path.name} on batch {len(pixel_values)} ({reason})"
            ) from None
        return outputs_as_float32(outputs, self.output_names)

    def profile_for(self, pixel_values: np.ndarray) -> int:
        """The optimization profile that runs ``pixel_values``, after checking it is a batch the engine takes."""
        if len(self.profile_ranges) == 1:
            check_batch(pixel_values, self.profile_ranges[0], self.engine_path.name)
            return 0
        check_batch(pixel_values, (1, np.iinfo(np.int32).max), self.engine_path.name)  # the [B, C, H, W] check
        return pick_profile(int(pixel_values.shape[0]), self.profile_ranges, self.engine_path.name)

    def use_profile_for(self, pixel_values: np.ndarray) -> int:
        """Make the profile that holds the batch of ``pixel_values`` the execution context's (Polygraphy's
        ``TrtRunner.set_profile``: ``set_optimization_profile_async`` on the runner's stream); returns its index."""
        index = self.profile_for(pixel_values)
        if index != self._profile:
            from polygraphy.exception import PolygraphyException

            try:
                with _quiet():
                    self._runner.set_profile(index)
            except (PolygraphyException, RuntimeError) as exc:  # the bindings raise RuntimeError on failure
                raise BackendError(
                    f"TensorRT could not switch {self.engine_path.name} to optimization profile "
                    f"{index} ({first_line(exc)})"
                ) from None
            self._profile = index
        return index

    @contextlib.contextmanager
    def timer(self, pixel_values: np.ndarray, cuda_graph: bool = False) -> Iterator[Any]:
        """An ``EngineTimer`` (engines/tensorrt_timing.py) for the batch ``pixel_values``: trtexec's GPU compute
        time and host latency, optionally replaying a CUDA graph of the enqueue, on an execution context of its
        own (the runner's, with Polygraphy's output allocator, keeps serving ``run``)."""
        if self._runner is None:
            self.load()
        profile = self.profile_for(pixel_values)
        from polygraphy.exception import PolygraphyException

        from .tensorrt_timing import EngineTimer

        batch = len(pixel_values)
        what = f"{self.engine_path.name} at batch {batch}{' in a CUDA graph' if cuda_graph else ''}"
        host = input_tensor(pixel_values, self._input_dtype)
        with tensorrt_log() as errors:
            try:
                timer = EngineTimer(
                    self._runner.engine,
                    self._input_name,
                    self.output_names,
                    host.view(-1).view(_uint8()).numpy(),
                    tuple(pixel_values.shape),
                    profile,
                    tensorrt_cuda_runtime(self.device_index),
                    cuda_graph=cuda_graph,
                    name=self.engine_path.name,
                )
            except (PolygraphyException, RuntimeError) as exc:
                raise BackendError(
                    f"TensorRT could not time {what} ({reported_error(errors, first_line(exc))})"
                ) from None
        try:
            yield timer
        except PolygraphyException as exc:
            raise BackendError(f"TensorRT failed while timing {what} ({first_line(exc)})") from None
        finally:
            try:
                timer.close()
            except PolygraphyException as exc:  # a CUDA error surfacing at the last synchronize
                raise BackendError(f"TensorRT failed while timing {what} ({first_line(exc)})") from None

    def infer(self, pixel_values: np.ndarray) -> np.ndarray:
        outputs = self.run(pixel_values)
        if LOGITS in outputs:
            return outputs[LOGITS]
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        raise BackendError(f"{self.engine_path.name} has no {LOGITS!r} output (outputs: {', '.join(outputs)})")

    def release(self) -> None:
        if self._runner is not None:
            with _quiet():
                self._runner.deactivate()
        self._runner = None
        self._profile = None
        super().release()

    def describe(self) -> dict:
        info = super().describe()
        info["engine"] = str(self.engine_path)
        if self.manifest is not None:
            info.update(
                tensorrt_version=self.manifest.tensorrt_version,
                gpu=self.manifest.gpu_name,
                attention_fused=self.manifest.attention_fused,
                attention=self.manifest.attention_verdict,
            )
        return info
