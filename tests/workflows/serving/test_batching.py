"""BatchedModel: Triton's list of requests -> one runner call -> one response each, on a real
ONNX Runtime session of the trained digits network (no server needed)."""

from __future__ import annotations

import numpy as np
import pytest

from vit5_infer.engines.registry import make_runner
from vit5_infer.errors import InputError
from vit5_infer.preprocessing import load_image
from vit5_infer.workflows.serving import IMAGES_INPUT, BatchedModel, onnx_signature


@pytest.fixture(scope="module")
def runner(digits_onnx):
    with make_runner("ort", digits_onnx, threads=1) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def model(runner, digits_onnx):
    return BatchedModel(runner, onnx_signature(digits_onnx))


def pixels(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 32, 32)).astype(np.float32)


def test_requests_of_different_sizes_run_as_one_batch_and_come_back_per_request(model, runner):
    requests = [{"pixel_values": pixels(n, seed=n)} for n in (1, 3, 2)]
    calls = []
    original = runner.run
    runner.run = lambda x: calls.append(len(x)) or original(x)
    try:
        responses = model(requests)
    finally:
        del runner.run
    assert calls == [6]  # one runner call for the whole batch
    for request, response in zip(requests, responses):
        expected = runner.infer(request["pixel_values"])
        assert response["logits"].shape == expected.shape
        np.testing.assert_allclose(response["logits"], expected, rtol=1e-5, atol=1e-5)


def test_more_items_than_max_batch_run_in_chunks(runner, digits_onnx):
    model = BatchedModel(runner, onnx_signature(digits_onnx, max_batch=2))
    x = pixels(5)
    (response,) = model([{"pixel_values": x}])
    np.testing.assert_allclose(response["logits"], runner.infer(x), rtol=1e-5, atol=1e-5)


def test_encoded_images_are_decoded_as_the_graph_metadata_says(model, runner, digits_onnx, digits_images):
    signature = onnx_signature(digits_onnx)
    assert signature.preprocessing.mean == (0.5, 0.5, 0.5) and signature.preprocessing.std == (0.25, 0.25, 0.25)
    files = [png for png, _ in digits_images]
    labels = np.array([label for _, label in digits_images])
    encoded = np.array([[p.read_bytes()] for p in files], dtype=object)
    (response,) = model([{IMAGES_INPUT: encoded}])
    reference = runner.infer(np.stack([load_image(p, signature.preprocessing) for p in files]))
    np.testing.assert_allclose(response["logits"], reference, rtol=1e-5, atol=1e-5)
    # A trained network on its own test images: the decoding really is the training preprocessing.
    assert (response["logits"].argmax(1) == labels).mean() >= 0.9


def test_images_and_pixels_mix_in_one_batch(model, runner, digits_images):
    png = digits_images[0][0]
    x = pixels(2)
    out_pixels, out_image = model([{"pixel_values": x}, {IMAGES_INPUT: np.array([[png.read_bytes()]], dtype=object)}])
    np.testing.assert_allclose(out_pixels["logits"], runner.infer(x), rtol=1e-5, atol=1e-5)
    assert out_image["logits"].shape == (1, 10)


@pytest.mark.parametrize(
    "request_, message",
    [
        ({}, "exactly one of pixel_values and images"),
        ({"pixel_values": pixels(1), IMAGES_INPUT: np.array([[b"x"]], dtype=object)}, "exactly one of"),
        ({"pixel_values": pixels(1)[:, :, :16]}, "must be [batch, 3, 32, 32], got [1, 3, 16, 32]"),
        ({"pixel_values": pixels(1).astype(np.float64)}, "must be float32, got float64"),
        ({IMAGES_INPUT: np.array([[b"not an image"]], dtype=object)}, "images[0]: cannot decode 12 bytes"),
        ({IMAGES_INPUT: np.array([[3]], dtype=object)}, "images[0] must be encoded bytes"),
        # a request declaring [1099511627776, 1] with one element reaches the model as [1]
        ({IMAGES_INPUT: np.array([b"x"], dtype=object)}, "images must be [batch, 1], got [1]"),
        ({IMAGES_INPUT: np.array([[b"x", b"y"]], dtype=object)}, "images must be [batch, 1], got [1, 2]"),
        ({IMAGES_INPUT: np.zeros((0, 1), dtype=object)}, "holds no image"),
    ],
)
def test_malformed_requests_fail_with_a_message_naming_the_request(model, request_, message):
    with pytest.raises(InputError) as info:
        model([{"pixel_values": pixels(1)}, request_])
    assert "request 1" in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_static_batch_graph_is_padded(digits_dir, tmp_path):
    from vit5_infer import resolve_model
    from vit5_infer.exporters import export_onnx

    model, origin = resolve_model(digits_dir / "digits_attn.safetensors")
    path = export_onnx(model, tmp_path / "static.onnx", batch=3, source=origin).path
    signature = onnx_signature(path)
    assert (signature.static_batch, signature.max_batch) == (3, 3)
    x = pixels(3)
    with make_runner("ort", path, threads=1) as runner:
        full = runner.infer(x)
        batched = BatchedModel(runner, signature)
        one, two = batched([{"pixel_values": x[:1]}, {"pixel_values": x[1:2]}])  # 2 items padded to 3
        (five,) = batched([{"pixel_values": np.concatenate([x, x[:2]])}])  # 5 items: 3 + (2 padded to 3)
    np.testing.assert_allclose(one["logits"], full[:1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(two["logits"], full[1:2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(five["logits"], np.concatenate([full, full[:2]]), rtol=1e-5, atol=1e-5)
