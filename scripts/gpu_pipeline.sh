#!/usr/bin/env bash
# The whole GPU path on a machine with an NVIDIA GPU:
#   export (ONNX) -> build-engine (TensorRT, FP16) -> per-layer FP16 check (TensorRT vs ORT FP32)
#   -> bench (torch, ORT CUDA, TensorRT) -> GPU tests.
#
# Usage: scripts/gpu_pipeline.sh [SOURCE] [OUTDIR]
#   SOURCE  preset name or checkpoint (default: vit5-small)
#   OUTDIR  where the ONNX, engine, manifest, timing cache and results go (default: gpu_run)
# Needs: pip install 'vit5-infer[tensorrt]' (TensorRT >= 10.0, < 12; Polygraphy >= 0.53 comes with
# vit5-infer), onnxruntime-gpu; the torch backend of the bench needs a CUDA build of torch.
# Environment: VIT5 (the CLI, default "vit5"), PYTHON (default "python"), SKIP_TESTS=1 to skip pytest.
set -euo pipefail

SOURCE="${1:-vit5-small}"
OUT="${2:-gpu_run}"
VIT5="${VIT5:-vit5}"
PYTHON="${PYTHON:-python}"
NAME="$(basename "${SOURCE%.*}")"
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*"; }

step "environment"
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader
"$PYTHON" -c "import tensorrt, polygraphy, torch, onnxruntime as ort; print('tensorrt', tensorrt.__version__, '| polygraphy', polygraphy.__version__, '| torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| onnxruntime', ort.__version__, ort.get_available_providers())"

# MAJOR.MINOR: export targets and the parser check take that (10.14.1.48.post1 -> 10.14).
TRT_VERSION="$("$PYTHON" -c 'import tensorrt; print(".".join(tensorrt.__version__.split(".")[:2]))')"
step "export $SOURCE -> $OUT/$NAME.onnx (the graph form TensorRT $TRT_VERSION parses)"
"$VIT5" export "$SOURCE" -o "$OUT/$NAME.onnx" --target "tensorrt=$TRT_VERSION"
"$VIT5" inspect "$OUT/$NAME.onnx" --tensorrt "$TRT_VERSION"

step "build-engine (FP16, batch 1..8, timing cache) -> $OUT/$NAME.engine"
# Run twice: the second build reuses the timing cache and should be much faster.
"$VIT5" build-engine "$OUT/$NAME.onnx" -o "$OUT/$NAME.engine" --fp16 \
    --min-batch 1 --opt-batch 8 --max-batch 8 --timing-cache "$OUT/timing.cache"
"$VIT5" build-engine "$OUT/$NAME.onnx" -o "$OUT/$NAME.engine" --fp16 \
    --min-batch 1 --opt-batch 8 --max-batch 8 --timing-cache "$OUT/timing.cache"
echo "manifest: $OUT/$NAME.engine.json"
"$PYTHON" -c "import json,sys; m=json.load(open(sys.argv[1])); print({k: m.get(k) for k in ('tensorrt_version','gpu_name','compute_capability','precision','attention_verdict','attention_blocks','fused_attention_layers')})" "$OUT/$NAME.engine.json"
# The engine inspector's raw JSON: the kernels behind the fusion verdict (check the rules against it).
echo "engine layers: $OUT/$NAME.engine.layers.json"
"$PYTHON" -c "import json,sys; layers=json.load(open(sys.argv[1])).get('Layers', []); tactics=sorted({l.get('TacticName','') for l in layers if isinstance(l, dict)}); print(len(layers), 'layers;', len(tactics), 'distinct kernels:'); print(*tactics[:40], sep='\n')" "$OUT/$NAME.engine.layers.json"

step "per-layer FP16: TensorRT (every tensor marked) vs ONNX Runtime FP32 -> $OUT/layers_fp16.json"
"$VIT5" debug "$SOURCE" --precision fp16 --backend trt --batch 2 --top 10 --json "$OUT/layers_fp16.json"

step "bench torch, ort-cuda, trt at batch 1 and 8 -> $OUT/results.json"
"$VIT5" bench "$OUT/$NAME.engine" --backends torch,ort-cuda,trt --batch 1,8 --json "$OUT/results.json"

if [[ "${SKIP_TESTS:-0}" != "1" ]]; then
    step "GPU and TensorRT tests"
    "$PYTHON" -m pytest tests/engines tests/diagnostics -m "gpu or tensorrt" -q -rs
fi
step "done: $OUT"
