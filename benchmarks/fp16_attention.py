"""FP16 attention accuracy on a trained network and real images: is an FP32 softmax island needed?

Run: python benchmarks/fp16_attention.py
For tests/data/digits/digits_attn.safetensors on its 200 calibration images, FP16 graphs of each
attention form (opset-23 Attention for TensorRT, MatMul-Softmax-MatMul at opset 18 for TensorRT and
for ORT) are run through an emulation that rounds every FP16 tensor (ORT's CPU provider would
otherwise upcast ops it has no FP16 kernel for), once as exported and once with the attention ops
forced to FP32, and compared with PyTorch FP32 (vit5_infer.workflows.debug.fp16_attention).
"""

from pathlib import Path

from vit5_infer.workflows.debug.fp16_attention import fp16_attention_comparison
from vit5_infer.workflows.export import PreprocessingOverrides

DIGITS = Path(__file__).resolve().parents[1] / "tests" / "data" / "digits"
PREPROCESSING = PreprocessingOverrides(mean=(0.5,) * 3, std=(0.25,) * 3)

for name in ["digits_attn"]:
    for row in fp16_attention_comparison(DIGITS / f"{name}.safetensors", DIGITS / "calibration", PREPROCESSING):
        print(
            name,
            f"opset {row.opset}",
            f"attention {row.attention}",
            f"cosine {row.cosine:.7f} maxabs {row.max_abs_err:.4f} top1 {row.top1_agreement:.4f}",
        )
