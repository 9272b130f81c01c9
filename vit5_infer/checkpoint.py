"""Reading upstream weights from disk: safetensors, plain state_dicts and Lightning checkpoints (SPEC 8)."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Union

import torch

from .errors import CheckpointError
from .vocabulary import PathLike

STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_LEGACY_SIREN = re.compile(r"(.*kernel\.)kernel_network\.(\d+)\.(weight|bias)$")
TRUST_PICKLE_HINT = "trust_pickle=True (CLI: --trust-pickle)"
# torch's weights_only unpickler names the class it refused; anything else is a damaged file.
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
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
        with warnings.catch_warnings():
            # torch warns about legacy formats and pickled storages before failing; the error says it all
            warnings.simplefilter("ignore")
            return torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        blocked = _UNSUPPORTED_GLOBAL.search(str(exc))
        if blocked and not trust_pickle:
            raise CheckpointError(
                f"{path}: needs arbitrary unpickling of {blocked.group(1)}, which can run code; "
                f"load it only if you trust it, with {TRUST_PICKLE_HINT}"
            ) from None
        detail = _first_line(exc, torch_advice=False)
        if _is_wellformed_pickle(path) and not trust_pickle:
            raise CheckpointError(
                f"{path}: a pickle that holds more than weights ({detail}); unpickling it can run code: "
                f"load it only if you trust it, with {TRUST_PICKLE_HINT}"
            ) from None
        raise CheckpointError(f"{path}: corrupt checkpoint ({detail})") from None
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - the unpickler raises KeyError, IndexError, struct.error, ... on garbage
        detail = _first_line(exc)
        if not isinstance(exc, (RuntimeError, OSError)):
            detail = f"{type(exc).__name__}: {detail}"
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None


def _is_wellformed_pickle(path: Path) -> bool:
    """Whether the file (or the pickle inside torch's zip format) parses as a pickle: then the weights-only
    unpickler refused its content, the file is not damaged."""
    import io
    import pickletools

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(name) if name else b""
        else:
            data = path.read_bytes()
        if not data:
            return False
        for _ in pickletools.genops(io.BytesIO(data)):
            pass
        return True
    except Exception:  # noqa: BLE001 - anything pickletools cannot walk is not a well-formed pickle
        return False


def _first_line(exc: BaseException, torch_advice: bool = True) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not torch_advice:
        # torch's weights_only message is mostly advice about torch.load; keep the line naming the failure
        lines = [
            line
            for line in lines
            if "torch.load" not in line and "weights_only" not in line and "torch.serialization" not in line
        ] or lines
    detail = lines[-1][:200] if lines else ""
    return f"{type(exc).__name__}: {detail}" if detail and not torch_advice else (detail or type(exc).__name__)


def normalize_keys(state_dict: dict) -> dict:
    """Strip ``network.`` / ``module.`` / ``_orig_mod.`` and remap legacy SIREN keys."""
    if any(k.startswith("network.") for k in state_dict):
        state_dict = {k[len("network.") :]: v for k, v in state_dict.items() if k.startswith("network.")}
    out = {}
    for key, value in state_dict.items():
        key = key.replace("_orig_mod.", "")
        if key.startswith("module."):
            key = key[len("module.") :]
        legacy = _LEGACY_SIREN.match(key)
        if legacy:
            prefix, index, leaf = legacy.groups()
            key = f"{prefix}hidden_linears.{int(index) // 2}.{leaf}"
        out[key] = value
    return out


def extract_state_dict(obj: Any, path: Path, weights: str = "ema") -> dict:
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


#: the weight types an upstream training run can have saved (mixed precision keeps FP32 masters)
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def check_weight_dtypes(state_dict: dict, path: Union[str, Path]) -> dict:
    """CheckpointError for integer, bool or complex tensors: upstream never saves them, and casting
    them to float32 would export a network that was never trained."""
    for key, value in state_dict.items():
        if value.dtype not in WEIGHT_DTYPES:
            raise CheckpointError(
                f"{path}: {key} is a {str(value.dtype).replace('torch.', '')} tensor; ViT-5 weights are "
                "floating point (fp32, fp16 or bf16)"
            )
    return state_dict


def read_state_dict(path: Union[str, Path], weights: str = "ema", trust_pickle: bool = False) -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint is not a file: {path}")
    if not os.access(path, os.R_OK):
        # Checked here: the loaders report an unreadable file as missing ("No such file or directory").
        raise CheckpointError(f"{path}: permission denied (the checkpoint is not readable by this user)")
    if path.suffix == ".safetensors":
        if weights == "raw":
            raise CheckpointError(f"{path}: a safetensors state_dict has no separate raw weights")
        return check_weight_dtypes(normalize_keys(_load_safetensors(path)), path)
    if path.suffix in STATE_DICT_SUFFIXES:
        return check_weight_dtypes(extract_state_dict(_load_pickle(path, trust_pickle), path, weights), path)
    raise CheckpointError(
        f"{path}: unknown checkpoint type '{path.suffix}'; expected one of {', '.join(STATE_DICT_SUFFIXES)}"
    )
