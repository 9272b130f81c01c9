#!/usr/bin/env bash
# GPU smoke test of the TensorRT path, meant to finish in under 8 minutes on one H100 from a fresh clone:
#   pip install -e '.[tensorrt]' onnxruntime-gpu (and a CUDA build of torch), then scripts/gpu_smoke.sh [OUTDIR]
#
#   1. export vit5-small in the graph form the installed TensorRT parses;
#   2. build an FP16 engine with two optimization profiles (batch 1, and 2..64) and a timing cache;
#   3. bench torch, trt and ort-cuda at batch 1 and 64 (again with --cuda-graph);
#   4. export INT8 and FP8 (Ada/Hopper or newer) Q/DQ graphs of tests/data/digits/digits_attn.safetensors,
#      calibrated on tests/data/digits/calibration, build them, and report their top-1 on tests/data/digits/test;
#   5. run `vit5 debug --backend trt` on the digits network (FP16, every tensor marked);
#   6. write OUTDIR/summary.json: every step's status and seconds, the fusion verdict per attention block of
#      each engine, every bench row's timings, every accuracy; exit 1 when any step or bench row failed.
#
# What to send back: OUTDIR/summary.json, OUTDIR/*.engine.layers.json (the kernels behind the fusion
# verdicts; the IAttention kernel names are still unconfirmed) and OUTDIR/log.txt.
#
# `--cuda-graph` is used when `vit5 bench --help` lists it (otherwise that run is recorded as skipped); the trt
# rows' GPU compute time and host latency are read from the bench JSON.
#
# Environment: VIT5 (default "vit5"), PYTHON (default "python"), DIGITS (default tests/data/digits).
set -uo pipefail

OUT="${1:-gpu_smoke}"
VIT5="${VIT5:-vit5}"
PYTHON="${PYTHON:-python}"
DIGITS="${DIGITS:-tests/data/digits}"
BUDGET_SECONDS=480
mkdir -p "$OUT"
STEPS="$OUT/steps.tsv"
: > "$STEPS"
: > "$OUT/log.txt"
STARTED=$SECONDS

# step NAME COMMAND...: runs the command (its output to the terminal and log.txt) and records
# NAME, exit status and seconds; a failed step does not stop the later ones.
step() {
    local name="$1"; shift
    local begin=$SECONDS
    printf '\n== %s\n' "$name" | tee -a "$OUT/log.txt"
    "$@" 2>&1 | tee -a "$OUT/log.txt"
    local status=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - begin))" >> "$STEPS"
    return "$status"
}
skip() { printf '%s\tskipped: %s\t0\n' "$1" "$2" >> "$STEPS"; printf '\n== %s: skipped (%s)\n' "$1" "$2" | tee -a "$OUT/log.txt"; }

step "environment" bash -c "nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader && \
    '$PYTHON' -c 'import tensorrt, polygraphy, torch, onnxruntime as ort; print(\"tensorrt\", tensorrt.__version__, \"polygraphy\", polygraphy.__version__, \"torch\", torch.__version__, torch.cuda.is_available(), \"onnxruntime\", ort.__version__, ort.get_available_providers())'"
# MAJOR.MINOR of the installed TensorRT (10.14.1.48.post1 -> 10.14): what export targets take.
TRT="$("$PYTHON" -c 'from vit5_infer.engines.tensorrt_support import installed_tensorrt_version as v, tensorrt_release as r; print(r(v() or "0.0"))')"
CC="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' ')"
CUDA_GRAPH=""
if "$VIT5" bench --help 2>/dev/null | grep -q -- "--cuda-graph"; then CUDA_GRAPH="--cuda-graph"; fi

# 1-3. vit5-small, FP16
step "export vit5-small (tensorrt=$TRT)" "$VIT5" export vit5-small -o "$OUT/small.onnx" --target "tensorrt=$TRT"
step "build-engine vit5-small fp16" "$VIT5" build-engine "$OUT/small.onnx" -o "$OUT/small.fp16.engine" --fp16 \
    --batch-profiles 1,2-64 --timing-cache "$OUT/timing.cache"
step "bench vit5-small" "$VIT5" bench "$OUT/small.fp16.engine" --backends torch,trt,ort-cuda --batch 1,64 \
    --json "$OUT/bench_small.json"
if [[ -n "$CUDA_GRAPH" ]]; then
    step "bench vit5-small trt --cuda-graph" "$VIT5" bench "$OUT/small.fp16.engine" --backends trt --batch 1,64 \
        --cuda-graph --json "$OUT/bench_small_cuda_graph.json"
else
    skip "bench vit5-small trt --cuda-graph" "this vit5 bench has no --cuda-graph"
fi

# 4. digits INT8 / FP8: top-1 on the labelled test images (bench --images reads the graph's preprocessing).
for precision in int8 fp8; do
    if [[ "$precision" == fp8 ]] && ! "$PYTHON" -c "import sys; sys.exit(0 if tuple(map(int, '$CC'.split('.'))) >= (8, 9) else 1)"; then
        skip "digits $precision" "compute capability $CC < 8.9"
        continue
    fi
    step "export digits $precision" "$VIT5" export "$DIGITS/digits_attn.safetensors" -o "$OUT/digits.$precision.onnx" \
        --precision "$precision" --target "tensorrt=$TRT" --calibration "$DIGITS/calibration" --mean 0.5 --std 0.25 \
        && step "build-engine digits $precision" "$VIT5" build-engine "$OUT/digits.$precision.onnx" \
            -o "$OUT/digits.$precision.engine" "--$precision" --batch-profiles 1,2-64 --timing-cache "$OUT/timing.cache" \
        && step "accuracy digits $precision" "$VIT5" bench "$OUT/digits.$precision.engine" --backends trt --batch 64 \
            --images "$DIGITS/test" --json "$OUT/bench_digits_$precision.json"
done

# 5. per-layer check through TensorRT on one graph
step "debug digits fp16 --backend trt" "$VIT5" debug "$DIGITS/digits_attn.safetensors" --precision fp16 --backend trt \
    --batch 2 --top 10 --json "$OUT/debug_digits_fp16.json"

# 6. summary
TOTAL=$((SECONDS - STARTED))
"$PYTHON" - "$OUT" "$TOTAL" "$BUDGET_SECONDS" <<'PY'
import json, sys
from pathlib import Path

out, total, budget = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
steps = []
for line in (out / "steps.tsv").read_text().splitlines():
    name, status, seconds = line.split("\t")
    state = "ok" if status == "0" else status if status.startswith("skipped") else f"failed (exit {status})"
    steps.append({"step": name, "status": state, "seconds": int(seconds)})

def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

engines = {}
for manifest_path in sorted(out.glob("*.engine.json")):
    manifest = load(manifest_path) or {}
    engines[manifest_path.name[: -len(".json")]] = {
        key: manifest.get(key) for key in ("tensorrt_version", "gpu_name", "compute_capability", "precision",
                                           "optimization_profiles", "attention_verdict", "attention_report")}

timings, accuracy, failed_rows = [], {}, []
for bench_path in sorted(out.glob("bench_*.json")):
    report = load(bench_path) or {}
    for row in report.get("results", []):
        entry = {"file": bench_path.name, **{k: v for k, v in row.items() if k not in ("outputs",)}}
        timings.append(entry)
        if row.get("dataset"):
            accuracy[f"{bench_path.stem}:{row.get('backend')}:{row.get('precision')}"] = row["dataset"]
        if not row.get("passed", True):
            failed_rows.append(f"{bench_path.name}: {row.get('backend')} batch {row.get('batch')}: {row.get('failure')}")

debug = load(out / "debug_digits_fp16.json")
summary = {
    "total_seconds": total,
    "within_budget": total <= budget,
    "steps": steps,
    "engines": engines,
    "timings": timings,
    "accuracy": accuracy,
    "debug": ({key: debug.get(key) for key in ("backend", "precision", "passed", "first_failing", "blocks")}
              if isinstance(debug, dict) else None),
    "failed_bench_rows": failed_rows,
}
failed = [s["step"] for s in steps if s["status"].startswith("failed")] + failed_rows
summary["passed"] = not failed
(out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
print(f"\nwrote {out / 'summary.json'}: {'passed' if not failed else 'FAILED: ' + '; '.join(failed)}"
      f" in {total} s{'' if total <= budget else f' (over the {budget} s budget)'}")
sys.exit(0 if not failed else 1)
PY
