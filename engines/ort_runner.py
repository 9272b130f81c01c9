"""ONNX Runtime runner: CPU, CUDA or TensorRT execution provider on an exported ``.onnx`` file.

``run`` returns every output of the graph by name (``logits`` and, for graphs exported with
``outputs=...``, the backbone features); ``infer`` returns the logits.

onnxruntime-gpu lists CUDAExecutionProvider even where there is no GPU, and asking for it there
prints loader errors; so the CPU session names only CPUExecutionProvider, and a GPU provider is
requested only after the CUDA driver has confirmed a device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from vit5_infer.errors import InputError
from vit5_infer.files import require_file
from vit5_infer.ort_sessions import GRAPH_OPTIMIZATIONS, SessionOptionError, create_session
from vit5_infer.vocabulary import LOGITS, OUTPUT_NAMES

from .base import Runner
from .cuda_device import has_cuda_driver
from .errors import BackendError, BackendUnavailableError, NoGPUError

PathLike = Union[str, Path]

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
BACKEND_NAMES = {"cpu": "ort", "cuda": "ort-cuda", "tensorrt": "ort-trt"}
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def provider_failure(ort_version: str, provider: str) -> str:
    """Why a GPU provider did not start, for the one-line error: the CUDA (and TensorRT) it needs."""
    from .ort_tensorrt import ort_cuda_version

    cuda = ort_cuda_version()
    needs = (
        f"the CUDA {cuda} and cuDNN 9 libraries" if cuda else "CUDA and cuDNN libraries of the version it was built for"
    )
    if provider == "TensorrtExecutionProvider":
        needs = "TensorRT's libraries and " + needs
        page = "TensorRT-ExecutionProvider.html#requirements"
    else:
        page = "CUDA-ExecutionProvider.html#requirements"
    return (
        f"onnxruntime {ort_version} could not start {provider}: it needs {needs} "
        "(pip install 'onnxruntime-gpu[cuda,cudnn]', or import a CUDA build of torch of that CUDA first); "
        f"see https://onnxruntime.ai/docs/execution-providers/{page}"
    )


class OrtRunner(Runner):
    def __init__(
        self,
        onnx_path: PathLike,
        provider: str = "cpu",
        threads: Optional[int] = None,
        graph_optimization: str = "all",
        optimized_model_cache: Optional[PathLike] = None,
        provider_options: Optional[dict] = None,
    ):
        super().__init__()
        if provider not in PROVIDERS:
            raise BackendError(f"unknown onnxruntime provider {provider!r}; use one of {', '.join(PROVIDERS)}")
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be >= 1 (got {threads})")
        if graph_optimization not in GRAPH_OPTIMIZATIONS:
            raise BackendError(
                f"unknown graph optimization {graph_optimization!r}; use one of {', '.join(GRAPH_OPTIMIZATIONS)}"
            )
        self.onnx_path = require_file(onnx_path, (".onnx",), "ONNX file", BackendError)
        self.provider = provider
        self.backend = BACKEND_NAMES[provider]
        self.device = "cpu" if provider == "cpu" else "cuda"
        self.threads = threads
        self.graph_optimization = graph_optimization
        self.optimized_model_cache = Path(optimized_model_cache) if optimized_model_cache else None
        self.provider_options = dict(provider_options or {})
        self._session: Any = None
        self._input_name = "pixel_values"
        self._output_names: list[str] = []
        self._input_dtype: Any = np.float32

    def _check_provider_available(self, ort: Any) -> None:
        wanted = PROVIDERS[self.provider][0]
        if self.provider == "cpu":
            return
        if wanted not in ort.get_available_providers():
            raise BackendUnavailableError(
                f"onnxruntime {ort.__version__} has no {wanted}: pip install onnxruntime-gpu"
                + (" and 'vit5-infer[tensorrt]'" if self.provider == "tensorrt" else "")
            )
        if not has_cuda_driver():
            raise NoGPUError(f"onnxruntime's {wanted}", "no NVIDIA driver or CUDA device found")
        if self.provider == "tensorrt":
            from .ort_tensorrt import prepare_tensorrt

            prepare_tensorrt(ort)

    def load(self) -> None:
        import onnxruntime as ort

        self._check_provider_available(ort)
        recorded = self._recorded_precision()  # reads the whole graph: once per load
        if self.provider == "cpu" and self.graph_optimization in ("extended", "layout", "all") and recorded == "fp8":
            # FP8 Q/DQ runs on the CPU provider as emulation, and only at basic optimizations: the extended
            # ones move FP8 DequantizeLinear nodes past Transposes (the MatMul-Softmax-MatMul form),
            # leaving FP8 Transposes the provider has no kernel for.
            self.graph_optimization = "basic"
        providers = PROVIDERS[self.provider]
        provider_options = [
            self.provider_options if i == 0 and self.provider != "cpu" else {} for i in range(len(providers))
        ]
        try:
            session = create_session(
                self.onnx_path,
                providers=providers,
                provider_options=provider_options,
                threads=self.threads,
                graph_optimization=self.graph_optimization,
                optimized_model_path=self.optimized_model_cache,
            )
        except SessionOptionError as exc:
            raise BackendError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"onnxruntime cannot load {self.onnx_path}: {message}") from None
        if providers[0] not in session.get_providers():
            # onnxruntime silently falls back to the next provider when a GPU provider's libraries fail to load.
            raise BackendUnavailableError(provider_failure(ort.__version__, providers[0]))
        inputs, outputs = session.get_inputs(), session.get_outputs()
        names = [i.name for i in inputs]
        self._input_name = "pixel_values" if "pixel_values" in names else names[0]
        self._output_names = [o.name for o in outputs]
        input_type = next(i.type for i in inputs if i.name == self._input_name)
        self._input_dtype = _ORT_DTYPES.get(input_type, np.float32)
        self.precision = recorded or ("fp16" if self._input_dtype == np.float16 else "fp32")
        self._session = session
        self._loaded = True

    def _recorded_precision(self) -> Optional[str]:
        """The precision the exporter recorded (fp16, bf16, int8, fp8, ...); None for a foreign graph.  The
        graph's external data is checked on the same parse: a location outside the graph's folder is refused
        before ONNX Runtime reads it."""
        import onnx

        from vit5_infer.errors import Vit5Error
        from vit5_infer.files import external_data_paths
        from vit5_infer.graph_metadata import read_metadata

        try:
            model = onnx.load(str(self.onnx_path), load_external_data=False)
        except Exception:  # noqa: BLE001 - not an ONNX file: onnxruntime says why when it loads it
            return None
        external_data_paths(self.onnx_path, model)
        try:
            recorded = read_metadata(model).get("precision")
        except Vit5Error:
            return None
        return recorded if isinstance(recorded, str) and recorded else None

    def infer(self, pixel_values: np.ndarray) -> np.ndarray:
        if self._session is None:
            self.load()
        return self._run(pixel_values, [self._logits_name()])[0]

    def run(self, pixel_values: np.ndarray) -> dict[str, np.ndarray]:
        if self._session is None:
            self.load()
        return dict(zip(self._output_names, self._run(pixel_values, self._output_names)))

    @property
    def output_names(self) -> list[str]:
        """The graph's outputs, in graph order (known once loaded)."""
        return list(self._output_names)

    def _logits_name(self) -> str:
        if LOGITS in self._output_names:
            return LOGITS
        if len(self._output_names) == 1 and self._output_names[0] not in OUTPUT_NAMES:  # a foreign classifier
            return self._output_names[0]
        raise BackendError(
            f"{self.onnx_path} has no logits output (outputs: {', '.join(self._output_names)}); use run()"
        )

    def _run(self, pixel_values: np.ndarray, names: list[str]) -> list[np.ndarray]:
        if not isinstance(pixel_values, np.ndarray) or pixel_values.ndim != 4:
            raise InputError("pixel_values must be a [B, C, H, W] NumPy array")
        feed = {self._input_name: np.ascontiguousarray(pixel_values, dtype=self._input_dtype)}
        return [np.asarray(value, dtype=np.float32) for value in self._session.run(names, feed)]

    def release(self) -> None:
        self._session = None
        super().release()

    def describe(self) -> dict:
        info = super().describe()
        info.update(onnx=str(self.onnx_path), provider=self.provider, graph_optimization=self.graph_optimization)
        if self._session is not None:
            info["providers"] = list(self._session.get_providers())
            info["outputs"] = list(self._output_names)
        return info
