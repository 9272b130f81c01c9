"""Fixtures of the serving tests: a trained digits network exported once, stand-in engines described by
a manifest of it, free loopback ports, and a reason to skip where PyTriton or tritonclient cannot run."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import pytest

# The digits networks were trained on these statistics (tests/data/digits/digits.json); the graph's
# metadata is set to them so that server-side decoding must follow the metadata to classify well.
DIGITS_MEAN, DIGITS_STD = 0.5, 0.25


def missing_serve_extra() -> str | None:
    """Why the server tests cannot run here, or None."""
    for module in ("pytriton", "tritonclient.http", "tritonclient.grpc"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return (
                f"{module.split('.')[0]} is not installed (pip install 'vit5-infer[serve]'; PyTriton needs "
                "numpy<2, see .ci/run)"
            )
    try:
        import pytriton.triton  # noqa: F401 - fails where its wheels do not fit the platform or numpy
    except Exception as exc:  # noqa: BLE001
        return f"PyTriton cannot be imported here: {type(exc).__name__}: {exc}"
    return None


def _free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def set_digits_preprocessing(path: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    for entry in model.metadata_props:
        if entry.key == "vit5.preprocessing":
            pre = json.loads(entry.value)
            pre.update(mean=[DIGITS_MEAN] * 3, std=[DIGITS_STD] * 3, crop_ratio=1.0)
            entry.value = json.dumps(pre)
    onnx.save(model, str(path))


@pytest.fixture(scope="session")
def digits_onnx(digits_dir, tmp_path_factory) -> Path:
    """The trained attention digits network, FP32, dynamic batch, digits preprocessing in its metadata."""
    from vit5_infer import resolve_model
    from vit5_infer.exporters import export_onnx

    model, origin = resolve_model(digits_dir / "digits_attn.safetensors")
    path = tmp_path_factory.mktemp("serving") / "digits.onnx"
    export_onnx(model, path, source=origin)
    set_digits_preprocessing(path)
    return path


@pytest.fixture(scope="module")
def reference(digits_onnx):
    """ONNX Runtime's in-process runner of ``digits_onnx``: what a served model must answer."""
    from vit5_infer.engines.registry import make_runner

    with make_runner("ort", digits_onnx, threads=1) as runner:
        yield runner


@pytest.fixture
def digits_engine(digits_onnx):
    """``digits_engine(path, **fields)``: writes a stand-in TensorRT plan at ``path`` with an engine manifest
    of ``digits_onnx`` (FP16, batch 1..16, opt 4, built by TensorRT 10.13 on an H100 unless ``fields`` say
    otherwise) and returns the manifest. The plan's bytes are copied, never read: describing an engine to
    Triton takes only its manifest and graph."""
    from vit5_infer.engine_manifest import create_manifest, profile_shapes, write_manifest

    def write(path: Path, **fields):
        path.write_bytes(b"serialized engine bytes are copied, never read")
        manifest = create_manifest(
            **{
                "onnx_path": digits_onnx,
                "engine_path": path,
                "tensorrt_version": "10.13.0",
                "gpu_name": "NVIDIA H100",
                "compute_capability": "9.0",
                "precision": "fp16",
                "profiles": profile_shapes((3, 32, 32), 1, 4, 16),
                "build_flags": {},
                **fields,
            }
        )
        write_manifest(manifest, path)
        return manifest

    return write


@pytest.fixture(scope="session")
def digits_images(digits_dir) -> list[tuple[Path, int]]:
    """(PNG, label) of the labelled test images, a few of each digit."""
    pairs = []
    for folder in sorted(p for p in (digits_dir / "test").iterdir() if p.is_dir()):
        pairs += [(png, int(folder.name)) for png in sorted(folder.glob("*.png"))[:3]]
    return pairs


@pytest.fixture(scope="session")
def serve_extra() -> None:
    """Skips the test, with the reason, where a PyTriton server cannot run."""
    reason = missing_serve_extra()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def free_ports():
    """``free_ports(n)``: n distinct TCP ports free on 127.0.0.1 right now."""
    return _free_ports
