"""Reading upstream weights from disk: safetensors, plain state_dicts and Lightning checkpoints (SPEC 8)."""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import Union

import torch

from .errors import CheckpointError

STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_LEGACY_SIREN = re.compile(r"(.*kernel\.)kernel_network\.(\d+)\.(weight|bias)$")
TRUST_PICKLE_HINT = "trust_pickle=True (CLI: --trust-pickle)"
# torch's weights_only unpickler names the class it refused; anything else is a damaged file.
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def file_sha256(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def _load_pickle(path: Path, trust_pickle: bool) -> object:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        blocked = _UNSUPPORTED_GLOBAL.search(str(exc))
        if blocked and not trust_pickle:
            raise CheckpointError(
                f"{path}: needs arbitrary unpickling of {blocked.group(1)}, which can run code; "
                f"load it only if you trust it, with {TRUST_PICKLE_HINT}"
            ) from None
        raise CheckpointError(f"{path}: corrupt checkpoint ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[-1][:200] if text else type(exc).__name__


def normalize_keys(state_dict: dict) -> dict:
    """Strip ``network.`` / ``module.`` / ``_orig_mod.`` and remap legacy SIREN keys."""
    if any(k.startswith("network.") for k in state_dict):
        state_dict = {k[len("network."):]: v for k, v in state_dict.items() if k.startswith("network.")}
    out = {}
    for key, value in state_dict.items():
        key = key.replace("_orig_mod.", "")
        if key.startswith("module."):
            key = key[len("module."):]
        legacy = _LEGACY_SIREN.match(key)
        if legacy:
            prefix, index, leaf = legacy.groups()
            key = f"{prefix}hidden_linears.{int(index) // 2}.{leaf}"
        out[key] = value
    return out


def extract_state_dict(obj: object, path: Path, weights: str = "ema") -> dict:
    """The network weights inside a loaded checkpoint object."""
    if weights not in ("ema", "raw"):
        raise CheckpointError(f"weights must be 'ema' or 'raw', got {weights!r}")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state_dict or training checkpoint")
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        # Lightning with EMA: state_dict holds the EMA weights, current_model_state the raw ones.
        if weights == "raw":
            if not isinstance(obj.get("current_model_state"), dict):
                raise CheckpointError(
                    f"{path}: has no raw weights ('current_model_state'); it was saved without EMA, use weights='ema'"
                )
            obj = obj["current_model_state"]
        else:
            obj = obj["state_dict"]
    elif weights == "raw":
        raise CheckpointError(f"{path}: is a bare state_dict, it has no separate raw weights")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: contains no tensors")
    if len(tensors) != len(obj):
        bad = next(k for k, v in obj.items() if not isinstance(v, torch.Tensor))
        raise CheckpointError(f"{path}: entry {bad!r} is not a tensor; not a state_dict")
    return normalize_keys(tensors)


def read_state_dict(path: Union[str, Path], weights: str = "ema", trust_pickle: bool = False) -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint is not a file: {path}")
    if path.suffix == ".safetensors":
        if weights == "raw":
            raise CheckpointError(f"{path}: a safetensors state_dict has no separate raw weights")
        return normalize_keys(_load_safetensors(path))
    if path.suffix in STATE_DICT_SUFFIXES:
        return extract_state_dict(_load_pickle(path, trust_pickle), path, weights)
    raise CheckpointError(
        f"{path}: unknown checkpoint type '{path.suffix}'; expected one of {', '.join(STATE_DICT_SUFFIXES)}"
    )
