"""Backbone outputs of the reference modules: upstream's features for every golden case, the output
names each network has, and the one-line errors for outputs a network lacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vit5_infer import load_model
from vit5_infer.errors import Vit5Error
from vit5_infer.outputs import OutputError, available_outputs, output_shapes, parse_outputs, select_outputs
from vit5_infer.vocabulary import LOGITS, OUTPUT_NAMES

from golden import GOLDEN_CASES

# float32 agreement with upstream, relative to each output's scale (the tokens carry no final norm
# and reach |x| ~ 34 in hybrid_pool_film, where one float32 ulp is ~4e-6).
ATOL = 1e-5


def _model(golden_dir, name):
    return load_model(golden_dir / f"{name}.safetensors", config=golden_dir / f"{name}.json")


def _pixels(golden_io, name) -> torch.Tensor:
    return torch.from_numpy(golden_io(name)[0])


def _assert_close(name: str, got: np.ndarray, want: np.ndarray, atol: float) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} vs {want.shape}"
    bound = atol * max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    assert err <= bound, f"{name}: max abs error {err:.3g} > {bound:.3g}"


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_forward_features_match_upstream(golden_dir, golden_io, golden_features, name):
    model = _model(golden_dir, name)
    upstream = golden_features(name)
    with torch.no_grad():
        features = model.forward_features(_pixels(golden_io, name))
    assert list(features) == [n for n in OUTPUT_NAMES if n in upstream], "exactly the features upstream has"
    for key, want in upstream.items():
        _assert_close(f"{name}.{key}", features[key].numpy(), want, ATOL)


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_forward_outputs_order_and_logits(golden_dir, golden_io, golden_features, name):
    model = _model(golden_dir, name)
    pixels, logits = golden_io(name)
    names = list(reversed(available_outputs(model.config)))
    with torch.no_grad():
        out = model.forward_outputs(torch.from_numpy(pixels), names)
        default = model.forward_outputs(torch.from_numpy(pixels))
    assert list(out) == names
    assert list(default) == [LOGITS]
    _assert_close(f"{name}.logits", out[LOGITS].numpy(), logits, ATOL)
    assert torch.equal(default[LOGITS], out[LOGITS])
    assert list(output_shapes(model.config, 3)) == list(available_outputs(model.config))
    for key, shape in output_shapes(model.config, 3).items():
        assert list(out[key].shape) == shape


def test_patch_tokens_never_hold_padding(golden_dir, golden_io):
    """hybrid_pool_film pads T0 = 21 tokens to 24 for its Hyena grid: patch_tokens are the 16 patches."""
    model = _model(golden_dir, "hybrid_pool_film")
    pixels = _pixels(golden_io, "hybrid_pool_film")
    assert model.config.num_pad == 3
    with torch.no_grad():
        tokens = model.run_blocks(model.embed(pixels))
        features = model.forward_features(pixels)
    assert tokens.shape[1] == 24
    grid = features["patch_tokens"]
    assert grid.shape == (3, 4, 4, 64)
    assert torch.equal(grid.reshape(3, 16, 64), tokens[:, :16])  # row-major: t = row * 4 + col
    assert torch.equal(grid[:, 1, 2], tokens[:, 6])
    assert torch.equal(features["cls_token"], tokens[:, 16])
    assert torch.equal(features["register_tokens"], tokens[:, 17:21])


@pytest.mark.parametrize(
    "name, outputs",
    [
        ("attn_cls_r4", OUTPUT_NAMES),
        ("attn_gap_r0_bias", (LOGITS, "pre_logits", "patch_tokens")),
        ("hyena_gap", (LOGITS, "pre_logits", "patch_tokens")),
        ("hybrid_pool_film", OUTPUT_NAMES),
        ("hybrid_compress_concat", (LOGITS, "pre_logits", "patch_tokens", "register_tokens")),
    ],
)
def test_available_outputs(golden_dir, golden_features, name, outputs):
    config = _model(golden_dir, name).config
    assert available_outputs(config) == outputs
    assert set(outputs) - {LOGITS} == set(golden_features(name))


@pytest.mark.parametrize(
    "name, wanted, fragment",
    [
        ("attn_gap_r0_bias", "cls_token", "no CLS token"),
        ("hybrid_compress_concat", "cls_token", "no CLS token"),
        ("attn_gap_r0_bias", "register_tokens", "no registers"),
        ("hyena_gap", "register_tokens", "no registers"),
    ],
)
def test_missing_token_output_is_a_one_line_error(golden_dir, golden_io, name, wanted, fragment):
    model = _model(golden_dir, name)
    with pytest.raises(OutputError) as info:
        select_outputs(model.config, f"pre_logits,{wanted}")
    message = str(info.value)
    assert isinstance(info.value, Vit5Error) and "\n" not in message
    assert message.startswith(wanted) and fragment in message
    with pytest.raises(OutputError, match=fragment):
        model.forward_outputs(_pixels(golden_io, name), [wanted])


def test_parse_outputs():
    assert parse_outputs(None) == (LOGITS,)
    assert parse_outputs(" pre_logits, patch_tokens ,pre_logits") == ("pre_logits", "patch_tokens")
    assert parse_outputs(["cls_token", LOGITS]) == ("cls_token", LOGITS)
    with pytest.raises(OutputError, match="unknown output.*features; choose from logits"):
        parse_outputs("logits,features")
    with pytest.raises(OutputError, match="no outputs given"):
        parse_outputs(" , ")


def test_output_shapes_dynamic_batch(golden_dir):
    config = _model(golden_dir, "hybrid_compress_concat").config  # register_concat: F = R * D / 4
    assert output_shapes(config) == {
        LOGITS: ["batch", 10],
        "pre_logits": ["batch", 64],
        "patch_tokens": ["batch", 4, 4, 64],
        "register_tokens": ["batch", 4, 64],
    }
