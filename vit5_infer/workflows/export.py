"""The export stage: a preset or checkpoint -> one validated ONNX graph, float or quantized.

``export(source, output, options, progress)`` is the one library entry; ``export_model`` does the same for a
model already loaded (``bench`` exports the models it times).  Whether a graph is float or calibrated
INT8/FP8 is decided here, once; the exporters build, validate and publish each kind of graph.

Importing this module imports neither torch nor onnx: the CLI builds an ``ExportOptions`` before it knows
whether the command will get as far as an export.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from vit5_infer.caller_warnings import warn_at_caller
from vit5_infer.load_options import LoadOptions
from vit5_infer.vocabulary import (
    DEFAULT_CALIBRATION_COUNT,
    DEFAULT_CALIBRATION_METHOD,
    LOGITS,
    PathLike,
    Precision,
    Progress,
)

if TYPE_CHECKING:
    from vit5_infer.exporters.export import ExportResult
    from vit5_infer.exporters.form import GraphForm
    from vit5_infer.exporters.quantization import CalibrationData, QuantizationSettings
    from vit5_infer.loading import ModelSource
    from vit5_infer.network import ViT5ClassificationNet
    from vit5_infer.preprocessing import Preprocessing


@dataclass(frozen=True)
class PreprocessingOverrides:
    """Preprocessing fields the user set (None: the default for the model's image size, SPEC 8.4)."""

    mean: Optional[tuple] = None
    std: Optional[tuple] = None
    crop_ratio: Optional[float] = None
    interpolation: Optional[str] = None

    def given(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def resolve(self, image_size: int) -> Preprocessing:
        from vit5_infer.preprocessing import Preprocessing

        return Preprocessing(image_size=image_size, **self.given())

    @classmethod
    def of(cls, preprocessing: Preprocessing) -> PreprocessingOverrides:
        """Every field of ``preprocessing`` but its image size (which the model decides)."""
        return cls(
            mean=tuple(preprocessing.mean),
            std=tuple(preprocessing.std),
            crop_ratio=preprocessing.crop_ratio,
            interpolation=preprocessing.interpolation,
        )


@dataclass(frozen=True)
class QuantizationOptions:
    """How a quantized export calibrates (a float export refuses these settings)."""

    calibration: Optional[Path] = None  # a folder of images
    count: int = DEFAULT_CALIBRATION_COUNT
    method: str = DEFAULT_CALIBRATION_METHOD
    seeded: bool = False  # calibrate on seeded inputs instead of images
    keep_float: Optional[tuple] = None  # node-name patterns left unquantized; None: the exporter's default
    sensitivity: bool = False
    seed: int = 0  # of the seeded inputs and of the held-out split

    #: the flag that sets each field a float export refuses
    FLAGS = {
        "calibration": "--calibration",
        "count": "--calibration-count",
        "method": "--calibration-method",
        "seeded": "--calibrate-on-seeded-inputs",
        "keep_float": "--keep-float",
        "sensitivity": "--sensitivity",
    }

    def given(self) -> list[str]:
        """The flags set away from their defaults (a float export would ignore them)."""
        default = QuantizationOptions()
        return [flag for name, flag in self.FLAGS.items() if getattr(self, name) != getattr(default, name)]

    def settings(self, precision: str) -> QuantizationSettings:
        """What the quantized exporter takes of these options, at ``precision`` (the calibration inputs'
        options are this workflow's: it loads them)."""
        from vit5_infer.exporters.quantization import QuantizationSettings

        return QuantizationSettings(precision, self.method, self.keep_float, self.sensitivity)


@dataclass(frozen=True)
class ExportOptions:
    """Everything an export takes but the model and the output path."""

    precision: str = "fp32"
    target: Optional[str] = None  # ort, tensorrt, tensorrt=X.Y (exporters.targets); None: by precision
    opset: Optional[int] = None
    batch: Optional[int] = None  # None: dynamic batch
    layout: str = "nchw"
    lowering: str = "auto"
    io_dtype: str = "fp32"
    outputs: tuple = (LOGITS,)
    validate: bool = True
    external_data: Optional[bool] = None  # None: only past protobuf's 2 GB limit
    preprocessing: PreprocessingOverrides = field(default_factory=PreprocessingOverrides)
    quantization: QuantizationOptions = field(default_factory=QuantizationOptions)
    load: LoadOptions = field(default_factory=LoadOptions)  # how ``export`` loads its source

    @property
    def quantized(self) -> bool:
        return Precision.parse(self.precision).is_quantized

    def graph_form(self) -> GraphForm:
        """The form of the graph these options export (the exporters' value)."""
        from vit5_infer.exporters.form import GraphForm

        return GraphForm(
            target=self.target,
            opset=self.opset,
            batch=self.batch,
            layout=self.layout,
            lowering=self.lowering,
            external_data=self.external_data,
            validate=self.validate,
        )


@dataclass(frozen=True)
class ExportedGraph:
    result: ExportResult
    origin: ModelSource


def parse_keep_float(text: Optional[str]) -> Optional[tuple]:
    """``--keep-float``: comma-separated node-name patterns; ``none`` keeps nothing; None: the default."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    return tuple(p.strip() for p in text.split(",") if p.strip())


def check_export_options(options: ExportOptions) -> None:
    """ExportError for settings the chosen precision would ignore (a mistake, not a no-op), InputError for a
    crop ratio out of range; checked before any work."""
    from vit5_infer.exporters.export import ExportError
    from vit5_infer.preprocessing import check_crop_ratio

    if options.preprocessing.crop_ratio is not None:
        # the resize bound needs the model's image size: checked again once it is loaded
        check_crop_ratio(options.preprocessing.crop_ratio, what="--crop-ratio")
    flags = options.quantization.given()
    if not options.quantized and flags:
        raise ExportError(
            f"{', '.join(flags)} only apply to quantized exports: add --precision int8 (or fp8), "
            f"or leave {'them' if len(flags) > 1 else 'it'} out"
        )
    if options.quantized and tuple(options.outputs) != (LOGITS,):
        raise ExportError(
            f"quantized graphs output logits only (asked: {', '.join(options.outputs)}): export the "
            "float graph for backbone outputs, or leave --outputs out"
        )
    if options.quantized and options.io_dtype != "fp32":
        raise ExportError(
            f"--io-dtype {options.io_dtype} does not apply to {options.precision} graphs (their inputs "
            "and outputs are FP32): leave --io-dtype out"
        )


def check_output(source: PathLike, output: Union[str, Path], options: ExportOptions) -> Path:
    """``output`` as a file the export may write, never one of its inputs; InputError otherwise."""
    from vit5_infer.exporters.export import check_export_path

    return check_export_path(output, inputs=(source, options.load.config, options.quantization.calibration))


def export(
    source: PathLike,
    output: Union[str, Path],
    options: ExportOptions,
    progress: Progress = None,
    warn: Optional[Callable[[str], None]] = None,
) -> ExportedGraph:
    """Load ``source`` (a preset or checkpoint, with ``options.load``) and export it to ``output``.

    ``progress`` hears what is being done; ``warn`` hears what the user should know but that does not stop
    the export (default: ``warnings.warn``).  Nothing is written unless the graph passes its validation.
    """
    say = progress or (lambda message: None)
    path = check_output(source, output, options)  # before any work: a bad output must not cost a load
    check_export_options(options)
    say(f"loading {source}")
    from vit5_infer.loading import load_source  # torch: imported when a model is loaded

    model, origin = load_source(source, options.load)
    return ExportedGraph(
        export_model(model, origin, path, options, progress=progress, warn=warn, name=str(source)), origin
    )


def export_model(
    model: ViT5ClassificationNet,
    origin: Optional[ModelSource],
    output: Union[str, Path],
    options: ExportOptions,
    progress: Progress = None,
    warn: Optional[Callable[[str], None]] = None,
    name: Optional[str] = None,
    calibration: Optional[CalibrationData] = None,
) -> ExportResult:
    """Export a loaded ``model`` to ``output``: calibrated INT8/FP8 when ``options.precision`` is quantized,
    else float.  ``name``: how progress messages call the model (default: its origin's name);
    ``calibration``: the inputs ``load_calibration`` gave for these options, when the caller already holds them
    (several exports of one model share one load)."""
    check_export_options(options)
    say = progress or (lambda message: None)
    name = name or (origin.name if origin is not None else "model")
    pre = options.preprocessing.resolve(model.config.network.image_size)

    def step(message: str) -> None:
        say(f"exporting {name}: {message}")

    if options.quantized:
        if calibration is None:
            calibration = load_calibration(model, options, name, progress, warn)
        from vit5_infer.exporters.quantization import export_quantized

        say(f"exporting {name}")
        return export_quantized(
            model,
            output,
            options.quantization.settings(options.precision),
            calibration,
            options.graph_form(),
            source=origin,
            preprocessing=calibration.preprocessing or pre,
            progress=step,
        )
    from vit5_infer.exporters import export_onnx

    say(f"exporting {name}")
    return export_onnx(
        model,
        output,
        opset=options.opset,
        precision=options.precision,
        batch=options.batch,
        layout=options.layout,
        lowering=options.lowering,
        source=origin,
        validate=options.validate,
        io_dtype=options.io_dtype,
        external_data=options.external_data,
        target=options.target or "ort",
        outputs=options.outputs,
        preprocessing=pre,
        progress=step,
    )


def _warn(message: str) -> None:
    warn_at_caller(message)


def load_calibration(
    model: ViT5ClassificationNet,
    options: ExportOptions,
    name: str = "model",
    progress: Progress = None,
    warn: Optional[Callable[[str], None]] = None,
) -> CalibrationData:
    """The calibration data of a quantized export of ``model`` with ``options`` (its images preprocessed as
    the export records); a bad target or count fails before any image is read.  ``warn`` hears what the user
    should know (default: ``warnings.warn``), such as calibrating on seeded inputs."""
    from vit5_infer.exporters.quantization import calibration_inputs, resolve_scheme
    from vit5_infer.memory import check_inputs_fit

    say = progress or (lambda message: None)
    warn = warn or _warn
    pre = options.preprocessing.resolve(model.config.network.image_size)
    q = options.quantization
    resolve_scheme(options.precision, options.target, options.opset)
    check_inputs_fit(model.input_shape, q.count, "--calibration-count")
    say(f"loading calibration inputs for {name}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = calibration_inputs(
            q.calibration,
            input_shape=tuple(model.input_shape),
            preprocessing=pre,
            count=q.count,
            seeded=q.seeded,
            seed=q.seed,
            precision=options.precision,
        )
    for warning in caught:
        warn(str(warning.message))
    return data
