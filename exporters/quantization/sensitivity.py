"""Per-layer sensitivity: how far the logits move when one layer alone is quantized.

Each candidate layer is quantized on its own (everything else FP32, or FP16 for TensorRT) and the
graph is run on ONNX Runtime CPU against the FP32 logits on calibration inputs.  The report decides
what stays in higher precision: layers whose error alone is far above the typical layer's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx

from vit5_infer.metrics import compare_logits
from vit5_infer.vocabulary import INPUT_NAME, LOGITS

from .calibration import batches
from .qdq import QuantScheme, has_float8, quantize_graph

#: a layer whose error alone is this many times the median layer's stays in higher precision
OUTLIER_FACTOR = 10.0
#: ... unless its error is negligible anyway (1 - cosine below this)
NEGLIGIBLE_ERROR = 1e-4


@dataclass(frozen=True)
class LayerSensitivity:
    node: str
    op_type: str
    #: 1 - cosine of the logits with only this layer quantized
    error: float
    top1_agreement: float

    def to_dict(self) -> dict:
        return asdict(self)


def run_logits(model: onnx.ModelProto, inputs: np.ndarray) -> np.ndarray:
    """Logits of ``model`` on ONNX Runtime CPU.  FP8 Q/DQ runs as emulation at ORT's basic graph
    optimizations: the extended ones move FP8 DequantizeLinear nodes past Transposes (the
    MatMul-Softmax-MatMul form), leaving FP8 Transposes that ORT has no kernel for."""
    from vit5_infer.ort_sessions import create_session

    session = create_session(model, quiet=True, graph_optimization="basic" if has_float8(model) else None)
    return np.concatenate(
        [np.asarray(session.run([LOGITS], {INPUT_NAME: b})[0], dtype=np.float32) for b in batches(inputs)]
    )


def layer_sensitivity(
    model: onnx.ModelProto,
    ranges: dict,
    scheme: QuantScheme,
    nodes: list[onnx.NodeProto],
    inputs: np.ndarray,
    reference: np.ndarray | None = None,
) -> list[LayerSensitivity]:
    """One entry per node of ``nodes``, most sensitive first."""
    if reference is None:
        reference = run_logits(model, inputs)
    report = []
    for node in nodes:
        logits = run_logits(quantize_graph(model, ranges, scheme, [node.name]), inputs)
        metrics = compare_logits(reference, logits)
        report.append(LayerSensitivity(node.name, node.op_type, max(0.0, 1.0 - metrics.cosine), metrics.top1_agreement))
    return sorted(report, key=lambda r: -r.error)


def sensitive_layers(
    report: list[LayerSensitivity], factor: float = OUTLIER_FACTOR, negligible: float = NEGLIGIBLE_ERROR
) -> list[str]:
    """Layers to keep in higher precision: outliers of the report that matter at all."""
    if not report:
        return []
    median = float(np.median([r.error for r in report]))
    return [r.node for r in report if r.error > negligible and r.error > factor * max(median, 1e-12)]
