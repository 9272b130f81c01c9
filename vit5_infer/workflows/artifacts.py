"""The files each backend runs, made on first use inside a work folder: ONNX exports per precision
and target, TensorRT engines per precision.  A given ONNX file or engine is used as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from vit5_infer.engines.registry import BACKENDS, runs
from vit5_infer.vocabulary import LOGITS, QUANTIZED_PRECISIONS, Progress


def installed_tensorrt_target() -> str:
    """The export target for the TensorRT installed here (``tensorrt`` when none is)."""
    from vit5_infer.engines.tensorrt_support import installed_tensorrt_version
    from vit5_infer.workflows.build_engine import tensorrt_target

    version = installed_tensorrt_version()
    return tensorrt_target(version) if version else "tensorrt"


def recorded_precision(onnx_path: Path) -> str:
    from vit5_infer.graph_metadata import read_metadata

    return str(read_metadata(onnx_path).get("precision") or "fp32")


def unrunnable_reason(backend: str, precision: str, kind: str) -> Optional[str]:
    """Why ``backend`` cannot run ``precision`` of a source of ``kind`` (model/onnx/engine); None if it can."""
    if runs(backend) == "model" and precision in QUANTIZED_PRECISIONS:
        return "PyTorch runs no quantized graph"
    if kind == "model" and precision == "fp8" and runs(backend) != "engine":
        return "FP8 graphs run on TensorRT only (use -b trt)"
    return None


class Artifacts:
    def __init__(
        self,
        source: str,
        kind: str,
        model,
        origin,
        workdir: Path,
        max_batch: int,
        progress: Progress = None,
        calibration=None,
        preprocessing=None,
        outputs: tuple = (LOGITS,),
    ):
        self.source, self.kind, self.model, self.origin = source, kind, model, origin
        self.outputs = tuple(outputs)  # of the exports made here (a given file keeps its own)
        self.workdir, self.max_batch = Path(workdir), max_batch
        self.progress = progress or (lambda message: None)
        self.calibration = calibration  # images an int8/fp8 export calibrates on
        self.preprocessing = preprocessing
        self.onnx: dict[tuple[str, str], Path] = {}  # (precision, target) -> file
        self.engines: dict[str, Path] = {}
        self._given_onnx: Optional[Path]
        if kind == "onnx":
            self._given_onnx = Path(source)
        elif kind == "engine":
            from vit5_infer.engine_manifest import read_manifest, source_onnx

            self.engines[read_manifest(source).precision] = Path(source)
            self._given_onnx = source_onnx(source)
        else:
            self._given_onnx = None

    def precisions_for(self, backend: str, requested: list[str]) -> list[str]:
        """A given ONNX file or engine fixes its precision; a preset or checkpoint is exported at each one asked."""
        if runs(backend) == "model" or self.kind == "model":
            return [p for p in requested if unrunnable_reason(backend, p, self.kind) is None]
        if runs(backend) == "engine" and self.kind == "engine":
            return list(self.engines)
        assert self._given_onnx is not None  # a given ONNX file, or the one a given engine was built from
        return [recorded_precision(self._given_onnx)]

    def onnx_for(self, precision: str, target: str = "ort") -> Path:
        if self._given_onnx is not None:
            return self._given_onnx
        key = (precision, target)
        if key not in self.onnx:
            path = self.workdir / f"model.{precision}.{target.replace('=', '-')}.onnx"
            self.progress(f"exporting {self.source} to ONNX ({precision}, target {target})")
            self._export(path, precision, target)
            self.onnx[key] = path
        return self.onnx[key]

    def _export(self, path: Path, precision: str, target: str) -> None:
        """A float graph (not validated: the bench compares it with PyTorch itself), or an INT8/FP8 graph
        calibrated on ``self.calibration`` (validated like every quantized export)."""
        from vit5_infer.errors import BenchError
        from vit5_infer.workflows.export import ExportOptions, PreprocessingOverrides, QuantizationOptions, export_model

        quantized = precision in QUANTIZED_PRECISIONS
        if quantized and self.calibration is None:
            raise BenchError(f"--precision {precision} needs calibration images: --calibration DIR")
        if not quantized:
            export_model(
                self.model,
                self.origin,
                path,
                ExportOptions(precision=precision, target=target, validate=False, outputs=self.outputs),
            )
            return
        pre = PreprocessingOverrides.of(self.preprocessing) if self.preprocessing else PreprocessingOverrides()
        options = ExportOptions(
            precision=precision,
            target="cpu" if target == "ort" else target,
            preprocessing=pre,
            quantization=QuantizationOptions(self.calibration),
        )
        export_model(self.model, self.origin, path, options, progress=self.progress)

    def engine_for(self, precision: str) -> Path:
        if precision not in self.engines:
            from vit5_infer.workflows.build_engine import build_engine

            path = self.workdir / f"model.{precision}.engine"
            # build_engine converts an FP32 graph to the asked precision itself
            graph = precision if precision in QUANTIZED_PRECISIONS else "fp32"  # quantized graphs are built as they are
            if self.kind == "model":
                onnx_path = self.onnx_for(graph, installed_tensorrt_target())
            else:
                assert self._given_onnx is not None  # a given ONNX file, or the one a given engine was built from
                onnx_path = self._given_onnx
            self.progress(f"building a TensorRT engine ({precision}, batch 1..{self.max_batch})")
            build_engine(
                onnx_path, path, precision=precision, min_batch=1, opt_batch=self.max_batch, max_batch=self.max_batch
            )
            self.engines[precision] = path
        return self.engines[precision]

    def runner_source(self, backend: str, precision: str) -> Optional[Path]:
        kind = runs(backend)
        if kind == "model":
            return None
        if kind == "engine":
            return self.engine_for(precision)
        tensorrt = BACKENDS[backend].graph_target == "tensorrt"
        return self.onnx_for(precision, installed_tensorrt_target() if tensorrt else "ort")
