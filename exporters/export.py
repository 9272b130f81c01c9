"""``export_onnx``: build, check, validate against PyTorch and save a ViT-5 ONNX graph."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import onnx
import torch

from vit5_infer.errors import Vit5Error
from vit5_infer.files import disk_errors, graph_tensors
from vit5_infer.loading import ModelSource, example_inputs
from vit5_infer.metrics import (
    TOLERANCES,
    LogitComparison,
    OutputComparison,
    Tolerance,
    compare_outputs,
    outputs_within_tolerance,
)
from vit5_infer.network import ViT5ClassificationNet
from vit5_infer.outputs import OutputError, select_outputs
from vit5_infer.preprocessing import Preprocessing, to_layout
from vit5_infer.vocabulary import INPUT_NAME, LOGITS, Progress

from .graph import EXTERNAL_DATA_THRESHOLD, GraphBuilder, external_data_path, iter_nodes, save_graph
from .long_conv import LOWERINGS
from .long_conv import choose as choose_long_conv
from .lowering import LoweringOptions, emit_network
from .metadata import build_metadata, write_metadata
from .ops import describe_norm
from .precision import REDUCED, convert_precision, emulate_in_fp32, round_to_bf16
from .targets import ExportTarget

OPSETS = (17, 18, 19, 23)
PRECISIONS = ("fp32",) + tuple(REDUCED)
FUSED_OPS = ("Attention", "RMSNormalization", "RotaryEmbedding", "Gelu", "LayerNormalization")

LONG_CONV_DESCRIPTIONS = {
    "direct": "direct: depthwise Conv with the baked, flipped SIREN kernel",
    "spectral": "spectral: DFT as matrix products, kernel spectrum baked or computed per sample",
    "scan": "scan: per-sample depthwise Conv in a Scan over the batch",
}


class ExportError(Vit5Error):
    pass


@dataclass(frozen=True)
class Validation:
    """An exported graph run on ONNX Runtime (CPU) against PyTorch FP32 on seeded inputs: every
    graph output against the same-named output of the model."""

    #: output name -> its comparison, in graph order
    outputs: Mapping[str, OutputComparison]
    passed: bool
    #: "ok", or why the first output that misses its tolerance misses it (naming the output)
    reason: str
    precision: str
    batches: tuple
    tolerance: Tolerance
    method: str

    @property
    def comparison(self) -> Optional[LogitComparison]:
        """The logits' comparison; None for a graph without a logits output."""
        logits = self.outputs.get(LOGITS)
        return None if logits is None else logits.logits

    def failing(self) -> Optional[OutputComparison]:
        """The first output that misses the tolerance, if any."""
        return next((c for c in self.outputs.values() if not c.within_tolerance(self.precision)[0]), None)

    def to_dict(self) -> dict:
        """The logits' figures at the top level (where readers of logits-only graphs look), every output under
        ``outputs`` with its own verdict."""
        per_output = {}
        for name, comparison in self.outputs.items():
            passed, reason = comparison.within_tolerance(self.precision)
            per_output[name] = {**comparison.to_dict(), "passed": passed, "reason": reason}
        top = self.comparison.to_dict() if self.comparison is not None else {}
        return {
            **top,
            "passed": self.passed,
            "reason": self.reason,
            "precision": self.precision,
            "batches": list(self.batches),
            "tolerance": self.tolerance.__dict__,
            "method": self.method,
            "outputs": per_output,
        }


@dataclass
class ExportResult:
    path: Path
    opset: int
    precision: str
    lowering: dict
    validation: Optional[Validation]
    summary: dict
    metadata: dict
    seconds: dict = field(default_factory=dict)
    #: the static TensorRT parser check of a TensorRT-targeted export (None for other targets)
    tensorrt_check: Optional[object] = None


def check_for_target(graph: onnx.ModelProto, target: ExportTarget):
    """A TensorRT-targeted graph must pass the parser check of the version it claims; a failure is
    the exporter's bug, reported before anything is written."""
    if not target.is_tensorrt:
        return None
    from .tensorrt_compat import check_tensorrt_compat

    report = check_tensorrt_compat(graph, target.check_version())
    if not report.compatible:
        raise ExportError(
            f"internal: the graph for {target} fails TensorRT {report.version}'s parser rules: "
            f"{report.errors[0].line()}"
        )
    return report


def check_onnx(graph: onnx.ModelProto, what: str) -> None:
    """``graph`` (in memory) held to the ONNX checker and strict shape inference; a failure is the exporter's
    bug (``what``: the graph as the message names it)."""
    try:
        onnx.checker.check_model(graph)
        onnx.shape_inference.infer_shapes(graph, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"internal: {what} fails the ONNX checker: {str(exc).splitlines()[0]}") from exc


def summarize(model: onnx.ModelProto, size_bytes: int | None = None) -> dict:
    ops = Counter(node.op_type for node in iter_nodes(model.graph))
    params = sum(int(np.prod(init.dims)) for init in model.graph.initializer)
    return {
        "op_counts": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "fused_ops": {op: ops[op] for op in FUSED_OPS if ops.get(op)},
        "num_nodes": len(model.graph.node),
        "num_initializer_values": params,
        "size_bytes": size_bytes if size_bytes is not None else model.ByteSize(),
    }


def resolve_opset(target: ExportTarget, opset: int | None) -> int:
    """``opset``, or the target's default; an opset the target cannot parse is a user error."""
    if opset is None:
        return target.default_opset()
    if opset not in OPSETS:
        raise ExportError(f"opset must be one of {', '.join(map(str, OPSETS))}, got {opset}")
    if not target.allows_opset(opset):
        raise ExportError(
            f"{target} cannot parse opset {opset} graphs (the Attention op needs TensorRT 10.14+); "
            f"use --opset {target.default_opset()} or leave --opset out"
        )
    return opset


def build_graph(
    model: ViT5ClassificationNet,
    opset: int | None = None,
    precision: str = "fp32",
    batch: int | None = None,
    layout: str = "nchw",
    lowering: str = "auto",
    io_dtype: str = "fp32",
    target: ExportTarget | str | None = None,
    outputs=None,
) -> tuple[onnx.ModelProto, dict]:
    """The ONNX graph of ``model`` (no metadata, not validated) and the lowerings used.

    ``outputs``: the graph outputs, any of vit5_infer.vocabulary.OUTPUT_NAMES (a sequence or a
    comma-separated string; default ``logits``); OutputError for one the network does not have.
    """
    outputs = select_outputs(model.config, outputs)
    target = ExportTarget.parse(target)
    opset = resolve_opset(target, opset)
    if opset not in OPSETS:
        raise ExportError(f"opset must be one of {', '.join(map(str, OPSETS))}, got {opset}")
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and opset < 22:
        raise ExportError(f"bf16 graphs need opset 23 (Conv accepts bfloat16 only from opset 22), got opset {opset}")
    if layout not in ("nchw", "nhwc"):
        raise ExportError(f"layout must be nchw or nhwc, got {layout!r}")
    if batch is not None and batch < 1:
        raise ExportError(f"batch must be >= 1, got {batch}")
    long_conv = lowering
    if long_conv != "auto" and long_conv not in LOWERINGS:
        raise ExportError(f"lowering must be auto or one of {', '.join(LOWERINGS)}, got {lowering!r}")
    builder = GraphBuilder(opset, target)
    emit_network(
        builder, model, LoweringOptions(opset=opset, batch=batch, layout=layout, long_conv=long_conv, outputs=outputs)
    )
    graph = builder.build("vit5")
    used = {
        "target": str(target),
        "attention": "Attention op" if builder.fused_attention else "MatMul-Softmax-MatMul",
        "rope": "reversed Slice + Mul/Add, tables baked",
        "norm": describe_norm(builder),
    }
    if "H" in model.config.network.layer_pattern:
        used["long_conv"] = LONG_CONV_DESCRIPTIONS[choose_long_conv(long_conv, model.config.film is not None)]
    if precision != "fp32":
        graph = convert_precision(graph, precision, io_dtype=io_dtype)
    elif io_dtype != "fp32":
        raise ExportError("io dtype other than fp32 needs --precision fp16 or bf16")
    return graph, used


def _ort_session(path: Path, threads: int | None = None, emulate: bool = False):
    from vit5_infer.ort_sessions import create_session

    source = emulate_in_fp32(onnx.load(str(path))) if emulate else path
    return create_session(source, threads=threads, quiet=True)


def validate_graph(
    path: Path,
    model: ViT5ClassificationNet,
    precision: str,
    layout: str,
    batches: tuple[int, ...],
    io_dtype: str = "fp32",
    seed: int = 0,
) -> Validation:
    """Run the saved graph on ONNX Runtime (CPU) against PyTorch on seeded inputs, every graph
    output against the same-named output of the model (cosine, relative and max abs error per
    output; top-1/top-5 for logits).

    BF16 graphs run through ``emulate_in_fp32`` (ORT's CPU provider has no BF16 kernels).
    """
    emulate = precision == "bf16"
    try:
        session = _ort_session(path, emulate=emulate)
    except Exception as exc:  # ORT reports unsupported ops/types as generic failures
        raise ExportError(f"ONNX Runtime cannot load the exported graph: {str(exc).splitlines()[0][:300]}") from None
    names = [out.name for out in session.get_outputs()]
    try:
        select_outputs(model.config, names)
    except OutputError as exc:
        raise ExportError(f"the graph's outputs do not belong to this model: {exc}") from None
    from vit5_infer.memory import check_batch_fits

    for batch in batches:
        check_batch_fits(model.config, batch, "validation at batch", copies=2)
    refs: dict[str, list] = {name: [] for name in names}
    outs: dict[str, list] = {name: [] for name in names}
    for batch in batches:
        pixels = example_inputs(model, batch=batch, seed=seed + batch)
        with torch.no_grad():
            reference = model.forward_outputs(pixels, names)
        if not all(np.isfinite(value.numpy()).all() for value in reference.values()):
            # Blame the right thing: the graph cannot match a reference that is itself NaN/Inf.
            raise ExportError(
                "the PyTorch model itself produces NaN/Inf outputs on seeded inputs (check the weights and settings "
                "such as norm_eps and rope_base); nothing written"
            )
        feed = to_layout(pixels.numpy(), layout)
        if io_dtype == "fp16":
            feed = feed.astype(np.float16)
        elif io_dtype == "bf16":
            feed = round_to_bf16(feed)
        try:
            results = session.run(names, {INPUT_NAME: feed})
        except Exception as exc:
            raise ExportError(
                f"ONNX Runtime failed to run the exported graph: {str(exc).splitlines()[0][:300]}"
            ) from None
        for name, value in zip(names, results):
            refs[name].append(reference[name].numpy())
            outs[name].append(np.asarray(value, dtype=np.float32))
    comparisons = compare_outputs(
        {n: np.concatenate(refs[n]) for n in names}, {n: np.concatenate(outs[n]) for n in names}
    )
    passed, reason = outputs_within_tolerance(comparisons, precision)
    return Validation(
        comparisons,
        passed,
        reason,
        precision,
        tuple(batches),
        TOLERANCES[precision],
        "ORT CPU, BF16 rounding emulated in FP32" if emulate else "ORT CPU",
    )


STAGING_PREFIX = ".vit5-export-"


def check_export_path(path: Union[str, Path], inputs: tuple = ()) -> Path:
    """``path`` (and ``OUTPUT.data`` beside it) as files an export may write, checked before any work;
    InputError for a folder, an empty name, a path under a file, a read-only folder, a suffix other
    than .onnx, or one of ``inputs`` (the checkpoint, the config)."""
    from vit5_infer.files import check_output_path

    target = check_output_path(path, "output", inputs, (".onnx",))
    check_output_path(external_data_path(target), "output weights", inputs)
    return target


def references_external_file(path: Path, name: str) -> bool:
    """Whether the ONNX graph at ``path`` keeps tensors in the file ``name`` beside it (False for a
    missing or unreadable file: then nothing of it can be known to be that graph's)."""
    if not path.is_file():
        return False
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - onnx raises DecodeError, ValueError, ... for files that are not graphs
        return False
    return any(
        entry.key == "location" and os.path.normpath(entry.value) == name
        for tensor in graph_tensors(graph.graph)
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
    )


def _publish(staged: Path, path: Path, external: bool) -> int:
    """Move the staged model (and its weights) to ``path``; returns the bytes written.  An inline
    export removes the ``OUTPUT.data`` of the earlier graph at ``path`` when that graph read it:
    nothing would read it again.  A file of that name that no graph there referenced is left alone."""
    data = external_data_path(path)
    stale = not external and data.is_file() and references_external_file(path, data.name)
    if external:
        os.replace(external_data_path(staged), data)
    os.replace(staged, path)
    if stale:
        data.unlink(missing_ok=True)
    return path.stat().st_size + (data.stat().st_size if external else 0)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or not a pid: leave its folder alone
    return True


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove the staging folders that exports killed before cleaning up left in ``folder``: those whose
    recorded process is gone.  A live export's folder (same PID prefix, process running) is kept."""
    removed = []
    for candidate in folder.glob(STAGING_PREFIX + "*"):
        pid_text = candidate.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if not candidate.is_dir() or not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, outermost first."""
    created = []
    probe = Path(os.path.abspath(folder))
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return created[::-1]


def _remove_created(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()  # only when empty: another writer may have put something there meanwhile
        except OSError:
            break


def stage_and_publish(
    graph: onnx.ModelProto,
    path: Path,
    external_data: bool | None,
    validate: Callable[[Path], Optional[Validation]],
    timings: dict,
) -> tuple[int, Optional[Validation]]:
    """Write ``graph`` into a private staging folder beside ``path``, run ``validate`` on the staged file
    (it raises ExportError to refuse the graph) and only then move it to ``path``; returns the bytes
    written and what ``validate`` returned.  ``timings`` gains ``save`` and ``validate`` (seconds).

    Everything is staged under the final file names, so a failed validation leaves any previous export
    (and its external weights) untouched.  The PID in the staging folder's name lets a later export
    remove it should this process be killed before its cleanup runs; folders it had to create are
    removed again when nothing is published."""
    start = time.perf_counter()
    created = _make_parents(path.parent)
    remove_stale_staging(path.parent)
    stage_dir = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=path.parent))
    published = False
    try:
        staged = stage_dir / path.name
        with disk_errors(path):
            external = save_graph(graph, staged, external_data)
        timings["save"] = time.perf_counter() - start
        start = time.perf_counter()
        metrics = validate(staged)
        if metrics is not None:
            timings["validate"] = time.perf_counter() - start
        with disk_errors(path):
            size = _publish(staged, path, external)
        published = True
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
        if not published:
            _remove_created(created)
    return size, metrics


def export_onnx(
    model: ViT5ClassificationNet,
    path: Union[str, Path],
    *,
    opset: int | None = None,
    precision: str = "fp32",
    batch: int | None = None,
    layout: str = "nchw",
    lowering: str = "auto",
    source: ModelSource | None = None,
    validate: bool = True,
    io_dtype: str = "fp32",
    external_data: bool | None = None,
    target: ExportTarget | str | None = None,
    outputs=None,
    preprocessing: Preprocessing | None = None,
    progress: Progress = None,
) -> ExportResult:
    """Export ``model`` to ``path``; with ``validate`` the file is kept only if ORT matches PyTorch.

    ``external_data``: store the weights in ``path + ".data"``; by default only when the graph
    would exceed protobuf's 2 GB limit.  ``target``: the runtime the graph is for (``ort``, the
    default, or ``tensorrt[=X.Y]``; see exporters.targets), which decides the graph form and the
    default opset.  ``outputs``: the graph's outputs, by name, in order: any of ``logits``,
    ``pre_logits``, ``patch_tokens``, ``cls_token``, ``register_tokens`` (default ``logits``; see
    vit5_infer.outputs); validation compares each of them with PyTorch.
    """
    inputs = (source.name,) if source is not None and source.kind == "checkpoint" else ()
    path = check_export_path(path, inputs)
    note = progress or (lambda message: None)
    timings = {}
    start = time.perf_counter()
    if validate and batch is not None:
        from vit5_infer.memory import check_batch_fits

        check_batch_fits(model.config, batch, "--batch", copies=2)  # before building anything
    note("building graph")
    target = ExportTarget.parse(target)
    opset = resolve_opset(target, opset)
    outputs = select_outputs(model.config, outputs)
    graph, used = build_graph(
        model,
        opset=opset,
        precision=precision,
        batch=batch,
        layout=layout,
        lowering=lowering,
        io_dtype=io_dtype,
        target=target,
        outputs=outputs,
    )
    metadata = build_metadata(
        model.config, source, precision, opset, layout, used, io_dtype, batch, outputs, preprocessing=preprocessing
    )
    metadata["target"] = str(target)
    write_metadata(graph, metadata)
    timings["build"] = time.perf_counter() - start

    note("checking graph")
    start = time.perf_counter()
    compat = check_for_target(graph, target)
    # measured before saving: saving with external data empties the graph's weights in place
    large = graph.ByteSize() > EXTERNAL_DATA_THRESHOLD
    if not large:
        check_onnx(graph, "exported graph")
    timings["check"] = time.perf_counter() - start

    note("saving")

    def check_and_validate(staged: Path) -> Optional[Validation]:
        if large:
            onnx.checker.check_model(str(staged))  # past 2 GB the checker must read from disk
        if not validate:
            return None
        note("validating against PyTorch on ONNX Runtime (CPU)")
        batches = (batch,) if batch is not None else (1, 3)
        metrics = validate_graph(staged, model, precision, layout, batches, io_dtype)
        if not metrics.passed:
            worst = metrics.failing()
            raise ExportError(
                f"exported graph does not match PyTorch at {precision}: {metrics.reason} "
                f"(max abs {worst.max_abs_err:.3g}, cosine {worst.cosine:.6f}); nothing written"
            )
        return metrics

    size, metrics = stage_and_publish(graph, path, external_data, check_and_validate, timings)
    return ExportResult(path, opset, precision, used, metrics, summarize(graph, size), metadata, timings, compat)
