"""Issue 10's figures: INT8 speed on ONNX Runtime CPU and quantized accuracy on real images.

One command (from the repository root, with the package installed):

    python benchmarks/quantization.py --out benchmarks/results/quantization

1. ``vit5-small`` (seeded random weights, so calibrated on seeded inputs): the INT8 cpu-target graph
   against the FP32 graph on ORT CPU at batch 1 and 8, timed alternately in one process (same inputs,
   same machine state), as speed ratios; logits cosine against FP32.
2. The digits networks (``tests/data/digits``): test accuracy of FP32 against INT8 (cpu and tensorrt
   targets; the tensorrt graph runs on ORT CPU) and FP8 (Q/DQ emulated on ORT CPU), for each
   calibration method, with the export's own validation on held-out calibration images.
3. The per-layer sensitivity report of each digits network (INT8 cpu and FP8), every GEMM quantized
   alone: what ``DEFAULT_KEEP_FLOAT`` was chosen from.

The studies are the library's (``vit5_infer.workflows.quantization_study``); this script times the ONNX
Runtime sessions and writes the report.  A reduced run to check the script (under a minute on two cores;
write it outside benchmarks/results):

    python benchmarks/quantization.py --rounds 3 --methods max --calibration-count 16 --out /tmp/quantization
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from vit5_infer.workflows.export import ExportOptions, PreprocessingOverrides, QuantizationOptions
from vit5_infer.workflows.quantization_study import (
    alternating_latencies,
    export_pair,
    layer_sensitivity_study,
    quantized_accuracy,
)

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "tests" / "data" / "digits"
VARIANTS = [("int8", "cpu"), ("int8", "tensorrt"), ("fp8", "tensorrt")]


def _ort_quantize_static(fp32: Path, inputs: np.ndarray, work: Path) -> Path:
    """The library alternative measured against our layout: ORT's static QDQ quantizer, u8 activations,
    s8 per-channel weights, MatMul/Conv, calibrated on the same inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"pixel_values": inputs[i : i + 4]} for i in range(0, len(inputs), 4)])

        def get_next(self):
            return next(self.batches, None)

    out = work / "small-ort-quantize-static.onnx"
    quantize_static(
        str(fp32),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Conv"],
    )
    return out


def speed(work: Path, threads: int, rounds: int, calibration_count: int, compare_ort: bool = False) -> dict:
    options = ExportOptions(
        precision="int8", target="cpu", quantization=QuantizationOptions(seeded=True, count=calibration_count)
    )
    pair = export_pair("vit5-small", work, options, "small", warn=lambda message: None)
    load_before = os.getloadavg()[0]
    graphs = {"fp32": pair.float_graph, "int8": pair.quantized_graph}
    if compare_ort:
        graphs["ort_quantize_static"] = _ort_quantize_static(pair.float_graph, pair.calibration.calibration, work)
    check = pair.result.validation
    out = {
        "threads": threads,
        "rounds": rounds,
        "validation": {
            "cosine": check.comparison.cosine,
            "passed": check.passed,
            "top1_agreement": check.comparison.top1_agreement,
        },
        "cosine_int8_vs_fp32_graph": pair.held_out_cosine,
    }
    for batch in (1, 8):
        times = alternating_latencies(graphs, pair.input_shape, batch, rounds, threads)
        med = {k: float(np.median(v)) for k, v in times.items()}
        best = {k: float(np.min(v)) for k, v in times.items()}
        out[f"batch{batch}"] = {
            "speedup_median": med["fp32"] / med["int8"],
            "speedup_best": best["fp32"] / best["int8"],
            "paired_speedup_median": float(np.median(np.array(times["fp32"]) / np.array(times["int8"]))),
        }
        if compare_ort:
            out[f"batch{batch}"]["ort_quantize_static_speedup_median"] = med["fp32"] / med["ort_quantize_static"]
    # Other jobs on the host slow the memory-bound non-GEMM ops of the INT8 graph more than FP32's GEMMs:
    # the ratio is only comparable between runs at similar load.
    out["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    return out


def _digits_preprocessing() -> PreprocessingOverrides:
    spec = json.loads((DIGITS / "digits.json").read_text())["preprocessing"]
    return PreprocessingOverrides(mean=tuple(spec["mean"]), std=tuple(spec["std"]))


def digits(work: Path, methods: list[str], count: int) -> dict:
    networks: dict = {}
    for name in ("attn", "hyena"):
        variants = [
            ExportOptions(
                precision=precision,
                target=target,
                preprocessing=_digits_preprocessing(),
                quantization=QuantizationOptions(calibration=DIGITS / "calibration", count=count, method=method),
            )
            for method in methods
            for precision, target in VARIANTS
        ]
        study = quantized_accuracy(DIGITS / f"digits_{name}.safetensors", DIGITS / "test", variants, work)
        rows: dict = {"fp32": study.float_accuracy}
        for row in study.rows:
            comparison = row.result.validation.comparison
            rows[f"{row.options.precision}/{row.options.target}/{row.options.quantization.method}"] = {
                "accuracy": row.accuracy,
                "held_out_cosine": comparison.cosine,
                "held_out_top1_agreement": comparison.top1_agreement,
            }
        networks[name] = rows
    return {"test_images": study.images, "calibration": study.calibration, "networks": networks}


def sensitivity(count: int) -> dict:
    pre = PreprocessingOverrides(mean=(0.5,) * 3, std=(0.25,) * 3)
    out = {}
    for name in ("attn", "hyena"):
        reports = layer_sensitivity_study(DIGITS / f"digits_{name}.safetensors", DIGITS / "calibration", count, pre)
        for (precision, target), report in reports.items():
            errors = [r.error for r in report]
            out[f"{name}/{precision}/{target}"] = {
                "median_error": float(np.median(errors)),
                "worst": [r.to_dict() for r in report[:6]],
            }
    return out


def markdown(report: dict) -> str:
    lines = ["# Quantization (benchmarks/quantization.py)", ""]
    s = report.get("speed")
    if s:
        load = s.get("load_average_1min")
        load_text = f", load average {load['before']:.1f} before / {load['after']:.1f} after" if load else ""
        lines += [
            f"vit5-small on ONNX Runtime CPU ({s['threads']} threads, {s['rounds']} alternating rounds{load_text}), "
            "INT8 cpu target against FP32, same run:",
            "",
            "| batch | speedup (median times) | speedup (best times) | paired median |",
            "|---|---|---|---|",
        ]
        for b in (1, 8):
            r = s[f"batch{b}"]
            lines.append(
                f"| {b} | {r['speedup_median']:.2f}x | {r['speedup_best']:.2f}x | {r['paired_speedup_median']:.2f}x |"
            )
            if "ort_quantize_static_speedup_median" in r:
                lines.append(
                    f"| {b}, ORT quantize_static instead | {r['ort_quantize_static_speedup_median']:.2f}x | | |"
                )
        lines += [
            "",
            f"logits cosine INT8 vs FP32 graph on held-out seeded inputs: {s['cosine_int8_vs_fp32_graph']:.5f}; "
            f"export validation vs PyTorch: cosine {s['validation']['cosine']:.5f}",
            "",
        ]
    d = report.get("digits")
    if d:
        lines += [
            f"Digits test accuracy ({d['test_images']} labelled images; calibrated on "
            f"{d['calibration']['calibration_inputs']} images, validated on {d['calibration']['held_out_inputs']} "
            f"held out):",
            "",
        ]
        for name, rows in d["networks"].items():
            lines += [
                f"**digits_{name}**: FP32 {rows['fp32'] * 100:.2f}%",
                "",
                "| precision / target / method | test accuracy | delta (points) | held-out cosine | held-out top-1 "
                "agreement |",
                "|---|---|---|---|---|",
            ]
            for key, row in rows.items():
                if key == "fp32":
                    continue
                lines.append(
                    f"| {key} | {row['accuracy'] * 100:.2f}% | {(row['accuracy'] - rows['fp32']) * 100:+.2f} | "
                    f"{row['held_out_cosine']:.6f} | {row['held_out_top1_agreement']:.3f} |"
                )
            lines.append("")
    sens = report.get("sensitivity")
    if sens:
        lines += ["Per-layer sensitivity (1 - cosine of the logits with one layer quantized alone; worst first):", ""]
        for key, row in sens.items():
            worst = ", ".join(f"{r['node']} {r['error']:.1e}" for r in row["worst"])
            lines.append(f"- {key}: median {row['median_error']:.1e}; {worst}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quantization")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: ORT's default)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--methods", default="max,percentile,entropy")
    parser.add_argument("--calibration-count", type=int, default=128)
    parser.add_argument(
        "--compare-ort-quantize",
        action="store_true",
        help="also time ORT's quantize_static graph of vit5-small in the same rounds",
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: speed, digits, sensitivity")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "speed" not in skip:
            report["speed"] = speed(
                work, args.threads, args.rounds, calibration_count=16, compare_ort=args.compare_ort_quantize
            )
            print(json.dumps(report["speed"], indent=1), flush=True)
        if "digits" not in skip:
            report["digits"] = digits(work, args.methods.split(","), args.calibration_count)
        if "sensitivity" not in skip:
            report["sensitivity"] = sensitivity(args.calibration_count)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
