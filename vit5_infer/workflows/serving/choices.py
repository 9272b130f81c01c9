"""The values the serving options take, for the checks here and the CLI's choices (pure Python: the CLI
reads these when it imports)."""

from __future__ import annotations

from vit5_infer.vocabulary import Precision

#: the precisions a preset or checkpoint is exported at to be served
EXPORT_PRECISIONS = (Precision.FP32, Precision.FP16)
#: Triton instance kinds (KIND_CPU, KIND_GPU)
INSTANCE_KINDS = ("cpu", "gpu")
#: precision modes of ONNX Runtime's TensorRT execution accelerator in a Triton model config
ACCELERATOR_PRECISIONS = (Precision.FP32, Precision.FP16)
