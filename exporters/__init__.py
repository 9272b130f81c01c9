"""PyTorch -> ONNX export of ViT-5 networks (work in progress: API contract below).

export_onnx(model, path, *, opset=23, precision="fp32", batch=None, layout="nchw",
            lowering="auto", source=None, validate=True, io_dtype="fp32", progress=None) -> ExportResult
    model: a vit5_infer.ViT5ClassificationNet; source: vit5_infer.ModelSource (for metadata).
    ExportResult: path, opset, precision, lowering (dict block kind -> lowering used),
                  validation (dict max_abs_err, mean_abs_err, cosine, top1_agreement, passed, tolerance),
                  summary (dict op_counts, fused_ops, num_nodes, size_bytes), metadata (dict).
    Raises vit5_infer.errors.ExportError (a Vit5Error) when validation fails (file not kept).

convert_precision(onnx_model: onnx.ModelProto, precision: "fp16"|"bf16") -> onnx.ModelProto
    FP32 graph -> reduced-precision graph with norms/softmax/long-conv/SIREN kept in FP32.

read_metadata(path_or_model) -> dict   # the metadata_props written by export_onnx, JSON-decoded.
"""
