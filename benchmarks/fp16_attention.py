"""FP16 attention accuracy on a trained network and real images: is an FP32 softmax island needed?

Run: python benchmarks/fp16_attention.py
For tests/data/digits/digits_attn.safetensors on its 200 calibration images, FP16 graphs of each
attention form (opset-23 Attention for TensorRT, MatMul-Softmax-MatMul at opset 18 for TensorRT and
for ORT) are run through an emulation that rounds every FP16 tensor (ORT's CPU provider would
otherwise upcast ops it has no FP16 kernel for), once as exported and once with the attention ops
forced to FP32, and compared with PyTorch FP32.
"""

import onnx
import torch

from vit5_infer import load_model
from vit5_infer.exporters import build_graph
from vit5_infer.exporters.graph import KEEP_FP32
from vit5_infer.exporters.precision import convert_precision
from vit5_infer.metrics import compare_logits
from vit5_infer.ort_sessions import create_session
from vit5_infer.preprocessing import Preprocessing, list_images, load_images

D = "tests/data/digits/"
pre = Preprocessing(image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
files = list_images(D + "calibration")
x = load_images(files, pre, len(files))
for name in ["digits_attn"]:
    m = load_model(D + name + ".safetensors")
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    for opset, tgt in [(23, "tensorrt"), (18, "tensorrt=10.8"), (18, "ort")]:
        g, _ = build_graph(m, opset=opset, target=tgt)
        variants = {"attention fp16": g}
        g2 = onnx.ModelProto.FromString(g.SerializeToString())
        for n in g2.graph.node:
            if n.op_type in ("Attention", "Softmax") or "qk_matmul" in n.name or "pv_matmul" in n.name:
                n.doc_string = KEEP_FP32
        variants["attention fp32"] = g2
        for vname, graph in variants.items():
            low = convert_precision(graph, "fp16")
            from vit5_infer.exporters.precision import emulate_in_fp32

            s = create_session(emulate_in_fp32(low))
            out = s.run(["logits"], {"pixel_values": x})[0]
            c = compare_logits(ref, out)
            print(
                name,
                f"opset {opset}",
                vname,
                f"cosine {c.cosine:.7f} maxabs {c.max_abs_err:.4f} top1 {c.top1_agreement:.4f}",
            )
