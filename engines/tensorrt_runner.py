"""Native TensorRT runner: deserialize an engine built by ``build_engine`` and run batches on it.

The manifest is checked before TensorRT sees the engine, so a version/GPU mismatch is reported as
an EngineMismatchError with the rebuild command instead of TensorRT's version-tag failure.  I/O uses
the name-based tensor API of TensorRT 10.x/11.x (get_tensor_name, set_input_shape,
set_tensor_address, execute_async_v3); device buffers are torch CUDA tensors on a torch stream,
so neither pycuda nor cuda-python is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from vit5_infer.errors import InputError

from .base import Runner
from .errors import BackendError, EngineMismatchError
from .manifest import INPUT_NAME, EngineManifest, check_compatible, find_manifest, rebuild_command
from .tensorrt_support import import_tensorrt, require_gpu

PathLike = Union[str, Path]
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    table = {
        "FLOAT": torch.float32,
        "HALF": torch.float16,
        "BF16": torch.bfloat16,
        "INT32": torch.int32,
        "INT64": torch.int64,
        "BOOL": torch.bool,
    }
    for name, torch_dtype in table.items():
        if getattr(trt.DataType, name, None) == dtype:
            return torch_dtype
    raise BackendError(f"engine tensor type {dtype} is not supported by the TensorRT runner")


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
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._input_name = INPUT_NAME
        self._output_name = ""
        self._batch_range: tuple[int, int] = (1, 1 << 30)

    def load(self) -> None:
        trt = import_tensorrt()
        gpu = require_gpu("running a TensorRT engine", self.device_index)
        if self.manifest is not None:
            check_compatible(
                self.manifest, trt.__version__, gpu.name, gpu.compute_capability, engine_path=self.engine_path
            )
        import torch

        self._torch_device = torch.device("cuda", self.device_index)
        torch.cuda.set_device(self._torch_device)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:
            how = (
                f"rebuild it with: {rebuild_command(self.manifest, self.engine_path)}"
                if self.manifest is not None
                else "rebuild it with 'vit5 build-engine MODEL.onnx -o " + str(self.engine_path) + "'"
            )
            raise EngineMismatchError(
                f"TensorRT {trt.__version__} could not load {self.engine_path} (built by another TensorRT "
                f"version or for another GPU, or not an engine); {how}"
            )
        self._trt = trt
        self._engine = engine
        self._context = engine.create_execution_context()
        self._stream = torch.cuda.Stream(device=self._torch_device)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise BackendError(f"{self.engine_path}: expected one input and one output, found {inputs} -> {outputs}")
        self._input_name, self._output_name = inputs[0], outputs[0]
        self._input_dtype = _torch_dtype(trt, engine.get_tensor_dtype(self._input_name))
        self._output_dtype = _torch_dtype(trt, engine.get_tensor_dtype(self._output_name))
        # Profile 0 bounds the batch sizes this engine accepts.
        low, _, high = engine.get_tensor_profile_shape(self._input_name, 0)
        self._batch_range = (int(low[0]), int(high[0]))
        self._loaded = True

    def infer(self, pixel_values: np.ndarray) -> np.ndarray:
        if self._context is None:
            self.load()
        import torch

        if pixel_values.ndim != 4:
            raise InputError(f"pixel_values must be [B, C, H, W], got shape {list(pixel_values.shape)}")
        batch = int(pixel_values.shape[0])
        low, high = self._batch_range
        if not low <= batch <= high:
            raise InputError(f"{self.engine_path.name} accepts batch {low}..{high}, got {batch}; rebuild with --max-batch")
        with torch.cuda.stream(self._stream):
            device_input = (
                torch.from_numpy(np.ascontiguousarray(pixel_values))
                .to(self._torch_device, non_blocking=True)
                .to(self._input_dtype)
                .contiguous()
            )
            if not self._context.set_input_shape(self._input_name, tuple(device_input.shape)):
                raise InputError(f"{self.engine_path.name} rejects input shape {list(device_input.shape)}")
            out_shape = tuple(int(d) for d in self._context.get_tensor_shape(self._output_name))
            device_output = torch.empty(out_shape, dtype=self._output_dtype, device=self._torch_device)
            self._context.set_tensor_address(self._input_name, device_input.data_ptr())
            self._context.set_tensor_address(self._output_name, device_output.data_ptr())
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise BackendError(f"TensorRT failed to run {self.engine_path.name} on batch {batch}")
            host = device_output.float().cpu()
        self._stream.synchronize()
        return host.numpy()

    def release(self) -> None:
        self._context = None
        self._engine = None
        self._stream = None
        super().release()

    def peak_memory_bytes(self) -> Optional[int]:
        try:
            import torch

            if not torch.cuda.is_available():
                return None
            return int(torch.cuda.max_memory_allocated(self.device_index))
        except Exception:  # noqa: BLE001 - a memory figure is optional
            return None

    def describe(self) -> dict:
        info = super().describe()
        info["engine"] = str(self.engine_path)
        if self.manifest is not None:
            info.update(
                tensorrt_version=self.manifest.tensorrt_version,
                gpu=self.manifest.gpu_name,
                attention_fused=self.manifest.attention_fused,
            )
        return info
