"""The block-kind registry: a new kind is one layer module, one registration and one emitter."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from vit5_tiny import randomize, tiny_config

from vit5_infer import ConfigError, ViT5ClassificationNet
from vit5_infer.architecture import infer_config
from vit5_infer.blocks import BlockKind, block_kind, block_kinds, register_block_kind, unregister_block_kind
from vit5_infer.layers import residual_block


class GatedMixer(nn.Module):
    """Toy sequence mixer: ``x * sigmoid(x W^T)``: a layer module of a made-up block kind."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.gate(x))

    def flop_count(self, tokens: int, inference: bool = False) -> int:
        return 2 * tokens * self.gate.in_features * self.gate.out_features


def _emit_gated(b, blk, x, context):
    from vit5_infer.exporters.graph import as_float32

    gate = b.op("Sigmoid", [b.linear(x, as_float32(blk.sequence_mixer.gate.weight), name="gate")])
    y = b.op("Mul", [x, gate])
    if context.out_scale is not None:
        y = b.op("Mul", [y, b.weight("layer_scale", context.out_scale)])
    return y


def _detect_gated(sd, prefix):
    key = prefix + "sequence_mixer.gate.weight"
    return {"dim": tuple(sd[key].shape)} if key in sd else None


def _validate_gated(config):
    if config.network.hidden_dim % 2:
        raise ConfigError("the gated toy needs an even hidden_dim")


# The whole core side of a new kind: one value, registered once.
TOY = BlockKind(
    "G",
    "gated toy",
    validate=_validate_gated,
    detect=_detect_gated,
    configure=lambda by_block, hidden_dim, overrides: {},
    build=lambda config: residual_block(config, "G", GatedMixer(config.network.hidden_dim)),
)


@pytest.fixture
def toy_kind(monkeypatch):
    from vit5_infer.exporters.lowering import EMITTERS

    register_block_kind(TOY)
    monkeypatch.setitem(EMITTERS, "G", _emit_gated)  # the exporter's side: one emitter
    yield TOY
    unregister_block_kind("G")


def test_a_kind_is_complete_or_refused():
    hooks = {"validate": _validate_gated, "detect": _detect_gated, "configure": TOY.configure, "build": TOY.build}
    with pytest.raises(TypeError):
        BlockKind("G", "no hooks")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="block kind 'G' \\(gated toy\\): build must be callable"):
        register_block_kind(BlockKind("G", "gated toy", **dict(hooks, build=None)))
    assert "G" not in block_kinds()


def test_the_kinds_own_config_check_runs(toy_kind):
    with pytest.raises(ConfigError, match="even hidden_dim"):
        tiny_config(pattern="G", hidden=15).validate()


def test_a_kind_without_an_emitter_is_a_config_error_at_export(tmp_path):
    register_block_kind(TOY)
    try:
        model = ViT5ClassificationNet(tiny_config(pattern="GA")).eval()
        from vit5_infer.exporters import export_onnx

        with pytest.raises(ConfigError, match="block kind 'G' \\(gated toy\\) has no ONNX emitter"):
            export_onnx(model, tmp_path / "toy.onnx")
        assert not (tmp_path / "toy.onnx").exists()
    finally:
        unregister_block_kind("G")


def test_builtin_kinds_and_unknown_letter():
    assert set(block_kinds()) >= {"A", "H"}
    assert block_kind("H").pads and not block_kind("A").pads
    with pytest.raises(ConfigError, match="unknown block type 'Z'.*A \\(attention\\), H \\(Hyena\\)"):
        tiny_config(pattern="AZ").validate()


def test_letter_is_checked_and_not_registered_twice():
    with pytest.raises(ConfigError, match="one upper-case letter"):
        register_block_kind(dataclasses.replace(TOY, letter="ab"))
    with pytest.raises(ConfigError, match="already registered"):
        register_block_kind(dataclasses.replace(TOY, letter="A"))


def test_a_new_kind_needs_only_its_layer_registration_and_emitter(toy_kind, tmp_path):
    config = tiny_config(pattern="GA")  # the toy block, then attention
    model = randomize(ViT5ClassificationNet(config)).eval()
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, config.network.num_classes) and torch.isfinite(logits).all()
    assert model.flop_count(inference=True) > 0

    # Architecture inference finds the kind from the weights alone.
    inferred = infer_config(model.state_dict())
    assert inferred.network.layer_pattern == "GA"

    # The exporter emits it through the registry and the graph matches PyTorch on ONNX Runtime.
    from vit5_infer.exporters import export_onnx

    result = export_onnx(model, tmp_path / "toy.onnx")
    assert result.validation.passed
    assert result.validation.comparison.max_abs_err < 1e-5
    ops = result.summary["op_counts"]
    assert ops.get("Sigmoid", 0) >= 1 and ops.get("Attention") == 1


def test_unknown_kind_in_weights_is_a_checkpoint_error(toy_kind):
    model = ViT5ClassificationNet(tiny_config(pattern="GA"))
    state = model.state_dict()
    unregister_block_kind("G")
    from vit5_infer.errors import CheckpointError

    with pytest.raises(CheckpointError, match="block 0: unknown sequence mixer"):
        infer_config(state)
    register_block_kind(TOY)  # the fixture unregisters it again
