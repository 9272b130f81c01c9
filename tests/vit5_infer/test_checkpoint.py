"""Reading weights from disk (SPEC 8): file errors, pickle trust, Lightning layouts, legacy keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from vit5_infer import CheckpointError, load_model
from vit5_infer.checkpoint import normalize_keys, read_state_dict

from golden import load_golden_io


class NotATensor:
    """A custom class: torch.load(weights_only=True) refuses to unpickle it."""

    def __init__(self, value=3):
        self.value = value


def _golden_sd(golden_dir, name="attn_cls_r4"):
    return load_file(str(golden_dir / f"{name}.safetensors"))


def _logits(model, name):
    x, _ = load_golden_io(name)
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _assert_golden(model, name):
    _, ref = load_golden_io(name)
    np.testing.assert_allclose(_logits(model, name), ref, atol=1e-5, rtol=0)


# ---- unreadable files --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "missing.pt")


def test_directory_is_not_a_checkpoint(tmp_path):
    (tmp_path / "d.pt").mkdir()
    with pytest.raises(CheckpointError, match="not a file"):
        read_state_dict(tmp_path / "d.pt")


def test_text_file_named_safetensors(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_text("this is not a safetensors file\n" * 4)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(path)


def test_truncated_pt(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_model(path)


def test_corrupt_pt_is_reported_as_corrupt_not_as_untrusted(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(range(256)) * 4)  # neither a zip archive nor a pickle
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert "trust_pickle" not in str(info.value)


def test_corrupt_pt_raises_checkpoint_error(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(range(256)) * 4)
    for trust in (False, True):
        with pytest.raises(CheckpointError, match=str(path.name)):
            load_model(path, trust_pickle=trust)


def test_pt_holding_a_list(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2), torch.ones(2)], path)
    with pytest.raises(CheckpointError, match="holds a list, not a state_dict"):
        load_model(path)


def test_unknown_suffix(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown checkpoint type '.npz'"):
        read_state_dict(path)


def test_keys_that_fit_no_vit5_network(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(4, 4), "head.bias": torch.zeros(4)}, str(path))
    with pytest.raises(CheckpointError, match="not a ViT-5 state_dict"):
        load_model(path)


def test_state_dict_with_non_tensor_entry(tmp_path):
    path = tmp_path / "mixed.pt"
    torch.save({"pos_embed": torch.zeros(1, 4, 8), "note": "hello"}, path)
    with pytest.raises(CheckpointError, match="'note' is not a tensor"):
        read_state_dict(path)


def test_wrong_shape_with_config_names_key_and_shapes(golden_dir, tmp_path):
    sd = _golden_sd(golden_dir)
    sd["blocks.1.mlp.layer1.weight"] = torch.zeros(128, 64)  # config says 256 x 64
    path = tmp_path / "bad.safetensors"
    save_file(sd, str(path))
    with pytest.raises(CheckpointError, match=r"blocks\.1\.mlp\.layer1\.weight has shape \[128, 64\].*\[256, 64\]"):
        load_model(path, config=golden_dir / "attn_cls_r4.json")


def test_missing_and_unexpected_keys_with_config(golden_dir, tmp_path):
    sd = _golden_sd(golden_dir)
    del sd["blocks.0.ls_attn.gamma"]
    sd["blocks.0.extra.weight"] = torch.zeros(2)
    path = tmp_path / "bad.safetensors"
    save_file(sd, str(path))
    with pytest.raises(CheckpointError, match="missing 1 key.*ls_attn.gamma.*unexpected 1 key.*extra.weight"):
        load_model(path, config=golden_dir / "attn_cls_r4.json")


def test_hyena_weights_with_attention_config_do_not_fit(golden_dir):
    with pytest.raises(CheckpointError, match="do not fit the architecture"):
        load_model(golden_dir / "hyena_gap.safetensors", config=golden_dir / "attn_cls_r4.json")


# ---- pickle trust --------------------------------------------------------------------------------


def test_custom_class_pickle_needs_trust(golden_dir, tmp_path):
    sd = {f"network.{k}": v for k, v in _golden_sd(golden_dir).items()}
    path = tmp_path / "with_object.ckpt"
    torch.save({"state_dict": sd, "hyper_parameters": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="trust_pickle"):
        load_model(path)
    model = load_model(path, trust_pickle=True)
    _assert_golden(model, "attn_cls_r4")


# ---- Lightning layouts -----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["network.", "network._orig_mod."])
def test_lightning_prefixes(golden_dir, tmp_path, prefix):
    sd = {prefix + k: v for k, v in _golden_sd(golden_dir).items()}
    sd["loss_fn.weight_buffer_not_network"] = torch.zeros(1)  # non-network keys are dropped
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": sd, "epoch": 3}, path)
    model = load_model(path)
    _assert_golden(model, "attn_cls_r4")


def test_normalize_keys():
    t = torch.zeros(1)
    sd = {
        "network._orig_mod.pos_embed": t,
        "network.blocks.0.sequence_mixer.inner_mixer.mixer.global_conv.kernel.kernel_network.2.weight": t,
        "network.blocks.0.sequence_mixer.inner_mixer.mixer.global_conv.kernel.kernel_network.0.bias": t,
        "other.thing": t,
    }
    k = "blocks.0.sequence_mixer.inner_mixer.mixer.global_conv.kernel."
    assert set(normalize_keys(sd)) == {"pos_embed", k + "hidden_linears.1.weight", k + "hidden_linears.0.bias"}


def test_lightning_without_raw_weights(golden_dir, tmp_path):
    sd = {f"network.{k}": v for k, v in _golden_sd(golden_dir).items()}
    path = tmp_path / "noema.ckpt"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointError, match="current_model_state"):
        load_model(path, weights="raw")


def test_weights_raw_on_safetensors_errors(golden_dir):
    with pytest.raises(CheckpointError, match="no separate raw weights"):
        load_model(golden_dir / "attn_cls_r4.safetensors", weights="raw")


def test_weights_raw_on_bare_pt_errors(golden_dir, tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(_golden_sd(golden_dir), path)
    with pytest.raises(CheckpointError, match="no separate raw weights"):
        load_model(path, weights="raw")
    _assert_golden(load_model(path), "attn_cls_r4")


def test_unknown_weights_choice(golden_dir):
    with pytest.raises(CheckpointError, match="'ema' or 'raw'"):
        load_model(golden_dir / "attn_cls_r4.ckpt", weights="best")


def test_legacy_siren_keys_are_remapped(golden_dir, tmp_path):
    sd = _golden_sd(golden_dir, "hyena_gap")
    legacy = {}
    renamed = 0
    for key, value in sd.items():
        if ".kernel.hidden_linears." in key:
            head, tail = key.split(".kernel.hidden_linears.")
            index, leaf = tail.split(".")
            key = f"{head}.kernel.kernel_network.{2 * int(index)}.{leaf}"
            renamed += 1
        legacy[key] = value
    assert renamed == 2 * 2 * 2  # 2 blocks x 2 hidden linears x (weight, bias)
    path = tmp_path / "legacy.pt"
    torch.save({"state_dict": {f"network._orig_mod.{k}": v for k, v in legacy.items()}}, path)
    _assert_golden(load_model(path), "hyena_gap")
    _assert_golden(load_model(path, config=golden_dir / "hyena_gap.json"), "hyena_gap")


def test_ckpt_ema_and_raw(golden_dir):
    ema_sd = read_state_dict(golden_dir / "attn_cls_r4.ckpt")
    raw_sd = read_state_dict(golden_dir / "attn_cls_r4.ckpt", weights="raw")
    plain = _golden_sd(golden_dir)
    assert set(ema_sd) == set(plain) == set(raw_sd)
    assert all(torch.equal(ema_sd[k], plain[k]) for k in plain)
    assert any(not torch.equal(raw_sd[k], plain[k]) for k in plain)


# ---- hostile files -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"hello\n",  # the unpickler reads 'h' (BINGET) and fails with a KeyError
        b"\x80\x02K",  # truncated pickle: struct.error / EOF
        b"\x80\x02h\x05.",  # memo lookup of nothing: KeyError
        b"]q\x00(e" + b"\x00" * 10,  # IndexError / unknown opcode
        bytes((i * 7919 + 13) % 256 for i in range(1000)),
    ],
)
@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".pth", ".bin"])
def test_any_unreadable_bytes_are_a_checkpoint_error(tmp_path, content, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path.name)):
        read_state_dict(path)


def test_non_weights_pickle_names_trust_pickle(tmp_path):
    import pickle

    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"fn": print}))
    with pytest.raises(CheckpointError, match="trust_pickle"):
        read_state_dict(path)


def test_no_torch_warnings_before_the_error(tmp_path, recwarn):
    path = tmp_path / "model.pt"
    path.write_bytes(b"hello\n")
    with pytest.raises(CheckpointError):
        read_state_dict(path)
    assert not [w for w in recwarn if "torch" in str(w.filename)]


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool, torch.complex64])
def test_integer_bool_and_complex_weights_are_refused(golden_dir, tmp_path, dtype):
    state = _golden_sd(golden_dir)
    state["out_proj.weight"] = state["out_proj.weight"].to(dtype)
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="out_proj.weight.*floating point"):
        load_model(path)
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="floating point"):
        load_model(tmp_path / "model.pt")


@pytest.mark.parametrize("dtype, atol", [(torch.float16, 5e-2), (torch.bfloat16, 2e-1)])
def test_fp16_and_bf16_weights_are_accepted(golden_dir, tmp_path, dtype, atol):
    state = {k: v.to(dtype) for k, v in _golden_sd(golden_dir).items()}
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    _, ref = load_golden_io("attn_cls_r4")
    np.testing.assert_allclose(_logits(load_model(path), "attn_cls_r4"), ref, atol=atol, rtol=0)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_an_unreadable_checkpoint_says_permission_denied(tmp_path, monkeypatch, suffix):
    """Root reads any file, so the refusal the kernel gives other users is made by os.access here."""
    import os

    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"weights")
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if str(p) == str(path) else real_access(p, mode, **kw)
    )
    with pytest.raises(CheckpointError, match="permission denied") as info:
        read_state_dict(path)
    assert "No such file" not in str(info.value)
