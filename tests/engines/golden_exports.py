"""Golden networks and their ONNX exports, shared by the engine tests (exported once per session)."""

from __future__ import annotations

from pathlib import Path

from vit5_infer import load_model

from golden import GOLDEN


def golden_model(name: str):
    return load_model(GOLDEN / f"{name}.safetensors", config=GOLDEN / f"{name}.json")


def export_golden(name: str, folder: Path) -> Path:
    from vit5_infer.exporters import export_onnx

    path = folder / f"{name}.onnx"
    if not path.exists():
        # Validation is what these tests do themselves (against upstream logits, not PyTorch).
        export_onnx(golden_model(name), path, validate=False)
    return path
