"""Is an FP32 softmax island needed in an FP16 graph?  FP16 graphs of each attention form, as exported and
with the attention ops forced to FP32, against PyTorch FP32 on real images.

ONNX Runtime's CPU provider upcasts ops it has no FP16 kernel for, which would hide FP16's rounding: each
FP16 graph runs through an emulation that rounds every FP16 tensor to its type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Optional

from vit5_infer.load_options import LoadOptions
from vit5_infer.vocabulary import INPUT_NAME, LOGITS, PathLike, Progress

from ..export import PreprocessingOverrides

#: (opset, target) of each attention form: the opset-23 Attention op for TensorRT, MatMul-Softmax-MatMul at
#: opset 18 for a TensorRT release without the Attention op and for ONNX Runtime
ATTENTION_FORMS = ((23, "tensorrt"), (18, "tensorrt=10.8"), (18, "ort"))
#: what the attention-form graph's attention nodes are called: the fused op, or the two products and the softmax
ATTENTION_OPS = ("Attention", "Softmax")
ATTENTION_PRODUCTS = ("qk_matmul", "pv_matmul")


@dataclass(frozen=True)
class AttentionPrecisionRow:
    opset: int
    target: str
    attention: str  # "fp16" (as exported) or "fp32" (the attention ops kept in FP32)
    cosine: float
    max_abs_err: float
    top1_agreement: float

    def to_dict(self) -> dict:
        return asdict(self)


def keep_attention_fp32(graph):
    """A copy of ``graph`` whose attention nodes the precision pass leaves in FP32."""
    import onnx

    from vit5_infer.exporters.graph import KEEP_FP32

    kept = onnx.ModelProto.FromString(graph.SerializeToString())
    for node in kept.graph.node:
        if node.op_type in ATTENTION_OPS or any(part in node.name for part in ATTENTION_PRODUCTS):
            node.doc_string = KEEP_FP32
    return kept


def fp16_attention_comparison(
    source: PathLike,
    images: PathLike,
    preprocessing: Optional[PreprocessingOverrides] = None,
    forms: Sequence[tuple] = ATTENTION_FORMS,
    load: Optional[LoadOptions] = None,
    progress: Progress = None,
) -> list[AttentionPrecisionRow]:
    """Two rows per (opset, target) of ``forms``: the FP16 graph of ``source`` with FP16 attention and with
    FP32 attention, each compared with PyTorch FP32 on every image below ``images``."""
    import numpy as np
    import torch

    from vit5_infer.exporters import build_graph
    from vit5_infer.exporters.precision import convert_precision, emulate_in_fp32
    from vit5_infer.loading import load_source
    from vit5_infer.metrics import compare_logits
    from vit5_infer.ort_sessions import create_session
    from vit5_infer.preprocessing import list_images, load_images

    say = progress or (lambda message: None)
    model, _ = load_source(source, load)
    pre = (preprocessing or PreprocessingOverrides()).resolve(model.config.network.image_size)
    files = list_images(images)
    say(f"loading {len(files)} images")
    x = load_images(files, pre, len(files))
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    rows = []
    for opset, target in forms:
        graph, _ = build_graph(model, opset=opset, target=target)
        for attention, variant in (("fp16", graph), ("fp32", keep_attention_fp32(graph))):
            say(f"running opset {opset} {target} with {attention} attention")
            session = create_session(emulate_in_fp32(convert_precision(variant, "fp16")))
            logits = np.asarray(session.run([LOGITS], {INPUT_NAME: x})[0])
            c = compare_logits(reference, logits)
            rows.append(AttentionPrecisionRow(opset, target, attention, c.cosine, c.max_abs_err, c.top1_agreement))
    return rows
