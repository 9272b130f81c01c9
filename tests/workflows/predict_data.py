"""Tiny inputs for the predict tests: a graph of the smallest golden network (32x32 images, 10 classes)
exported with every output, and folders of small PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CASE = "attn_cls_r4"
OUTPUTS = ("logits", "pre_logits", "patch_tokens", "register_tokens")


def export_graph(golden_dir: Path, folder: Path) -> Path:
    from vit5_infer.exporters import export_onnx
    from vit5_infer.loading import resolve_model

    model, origin = resolve_model(golden_dir / f"{CASE}.safetensors")
    path = folder / f"{CASE}.onnx"
    export_onnx(model, path, source=origin, validate=False, outputs=OUTPUTS)
    return path


def write_images(folder: Path, count: int, seed: int = 0, size=(20, 24), bad: tuple = ()) -> list[Path]:
    """``count`` random PNGs named 000.png...; the names in ``bad`` are written as files that are not images."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    for name in bad:
        (folder / name).write_bytes(b"this is not an image")
    return paths


def read_rows(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(folder).sort_by("index").to_pylist()
