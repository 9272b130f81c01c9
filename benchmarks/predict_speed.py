"""vit5 predict's pipeline efficiency (end-to-end against model-only throughput, and Ray against local), one
command from the repository root:

    python benchmarks/predict_speed.py --out benchmarks/results/predict

It writes ``--images`` (default 256) real-looking 224x224 JPEGs (smooth colour fields, shapes, edges and
sensor noise, so that decoding costs what a photo's does), exports SOURCE (default vit5-small, FP32)
to ONNX once, then measures on ONNX Runtime CPU at ``--batch``:

- model-only: the runner ``predict`` resolves for the same options, on already-preprocessed images, images/s;
- local end to end: ``predict`` over the folder (decoding in ``--workers`` processes), images/s from
  the first decode to the last part committed (the model's load is reported apart, as setup);
- Ray: the same with ``ray=True`` on a local ``ray.init(num_cpus=os.cpu_count())``, images/s and the
  overhead in seconds against the local run (actor start included).

Ratios: local / model-only (target >= 0.85), Ray / local (target >= 0.7).  The load average before
and after is recorded: on a shared machine the ratios carry that noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def write_photos(folder: Path, count: int, size: int = 224, seed: int = 0) -> None:
    from PIL import Image, ImageDraw, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 9))):
            x0, y0 = rng.integers(0, size, 2)
            x1, y1 = x0 + rng.integers(10, size // 2), y0 + rng.integers(10, size // 2)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((int(x0), int(y0), int(x1), int(y1)), fill=colour)
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (size, size, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)


def model_only(options, workdir: Path, count: int) -> dict:
    """The runner ``predict`` resolves for ``options``, timed on one batch of the images it preprocessed."""
    from vit5_infer.workflows.benchmark.inputs import image_inputs
    from vit5_infer.workflows.predict.model import resolve_model

    resolved = resolve_model(options, workdir)
    batch = options.batch
    x = image_inputs(options.images, resolved.preprocessing, [batch])[batch]
    with resolved.spec.make() as runner:
        runner.run(x)  # warm-up
        start = time.perf_counter()
        for _ in range(count // batch):
            runner.run(x)
        wall = time.perf_counter() - start
    images = (count // batch) * batch
    return {"images": images, "wall_s": wall, "images_per_s": images / wall}


def run_predict(options) -> dict:
    from vit5_infer.workflows.predict import predict

    return predict(options).to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", default="vit5-small")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/predict"))
    args = parser.parse_args()

    from vit5_infer.workflows.export import ExportOptions, export
    from vit5_infer.workflows.predict import PredictOptions

    result = {
        "source": args.source,
        "precision": "fp32",
        "backend": "ort (CPU)",
        "batch": args.batch,
        "workers": args.workers,
        "threads": args.threads,
        "images": args.images,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": list(os.getloadavg()),
        },
    }
    with tempfile.TemporaryDirectory(prefix="vit5-predict-bench-") as work:
        work = Path(work)
        folder = work / "photos"
        write_photos(folder, args.images)
        onnx_path = work / "model.onnx"
        export(args.source, onnx_path, ExportOptions(validate=False))

        def options(name: str, ray: bool) -> PredictOptions:
            return PredictOptions(
                source=str(onnx_path),
                images=folder,
                output=work / name,
                batch=args.batch,
                workers=args.workers,
                threads=args.threads,
                ray=ray,
            )

        result["model_only"] = model_only(options("local", False), work, args.images)
        result["local"] = run_predict(options("local", False))
        result["local_over_model_only"] = result["local"]["images_per_s"] / result["model_only"]["images_per_s"]
        if not args.no_ray:
            import ray

            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            result["ray"] = run_predict(options("ray", True))
            ray.shutdown()
            result["ray_over_local"] = result["ray"]["images_per_s"] / result["local"]["images_per_s"]
            result["ray_overhead_s"] = result["ray"]["wall_s"] - result["local"]["wall_s"]
    result["machine"]["load_average_after"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k.endswith(("_only", "_local", "_s"))}, indent=2))


if __name__ == "__main__":
    main()
