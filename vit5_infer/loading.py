"""``load_model``: one entry point from a preset, state_dict or training checkpoint to an eval-mode network."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from .architecture import apply_overrides, infer_config
from .checkpoint import file_sha256, read_state_dict
from .config import ViT5Config
from .errors import BenchError, CheckpointError, ConfigError
from .load_options import LoadOptions, check_seed
from .network import ViT5ClassificationNet
from .preset_weights import init_weights
from .presets import PRESETS, get_preset
from .vocabulary import PathLike

ConfigLike = Union[None, str, Path, dict, ViT5Config]


@dataclass
class ModelSource:
    """Where a model came from, recorded in exported metadata and manifests."""

    kind: str  # "preset" or "checkpoint"
    name: str
    sha256: Optional[str] = None
    weights: str = "ema"
    seed: Optional[int] = None


def _as_config(config: ConfigLike) -> Optional[ViT5Config]:
    if config is None:
        return None
    if isinstance(config, ViT5Config):
        return copy.deepcopy(config)  # overrides must not change the caller's object
    if isinstance(config, dict):
        return ViT5Config.from_dict(config)
    return ViT5Config.from_json(config)


def _strict_load(model: ViT5ClassificationNet, state_dict: dict, origin: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {missing[0]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[0]}")
        raise CheckpointError(f"{origin}: weights do not fit the architecture ({'; '.join(parts)})")
    for key, value in expected.items():
        if tuple(state_dict[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{origin}: {key} has shape {list(state_dict[key].shape)}, the architecture needs {list(value.shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)


def resolve_model(
    source: PathLike,
    config: ConfigLike = None,
    weights: str = "ema",
    trust_pickle: bool = False,
    seed: int = 0,
    **overrides,
) -> tuple[ViT5ClassificationNet, ModelSource]:
    """Like ``load_model`` but also says where the model came from."""
    check_seed(seed)
    cfg = _as_config(config)
    name = str(source)
    if name in PRESETS and not Path(name).exists():
        cfg = cfg or get_preset(name)
        cfg = apply_overrides(cfg, **overrides).validate()
        model = init_weights(ViT5ClassificationNet(cfg), seed=seed)
        return model.eval(), ModelSource("preset", name, seed=seed)
    path = Path(source)
    if not path.exists() and path.suffix == "":
        raise CheckpointError(f"{name!r} is neither a preset ({', '.join(PRESETS)}) nor an existing file")
    state_dict = read_state_dict(path, weights=weights, trust_pickle=trust_pickle)
    if cfg is None:
        try:
            cfg = infer_config(state_dict, **overrides)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    else:
        cfg = apply_overrides(cfg, **overrides)
    try:
        cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    model = ViT5ClassificationNet(cfg)
    _strict_load(model, state_dict, str(path))
    # The absolute path: an exported graph or engine records it, and is used from other folders.
    return model.eval(), ModelSource("checkpoint", str(path.resolve()), sha256=file_sha256(path), weights=weights)


def load_source(source: PathLike, options: Optional[LoadOptions] = None) -> tuple[ViT5ClassificationNet, ModelSource]:
    """``resolve_model`` with its options as one value (default options when None)."""
    options = options or LoadOptions()
    return resolve_model(
        source,
        config=options.config,
        weights=options.weights,
        trust_pickle=options.trust_pickle,
        seed=options.seed,
        **dict(options.overrides),
    )


def load_model(
    source: PathLike,
    config: ConfigLike = None,
    weights: str = "ema",
    trust_pickle: bool = False,
    seed: int = 0,
    **overrides,
) -> ViT5ClassificationNet:
    """An eval-mode float32 ViT-5 network.

    ``source``: a preset name (seeded random weights), a ``.safetensors`` / ``.pt`` state_dict or an
    upstream training checkpoint (``.ckpt``; ``weights='ema'`` by default, ``'raw'`` for the online
    weights).  The architecture is inferred from the weights unless ``config`` (a ViT5Config, a dict
    or a JSON path) is given; ``overrides`` set what weights cannot tell (``num_heads``, ``rope_base``,
    ``L_cache``, ...; see ``vit5_infer.architecture.OVERRIDES``).
    """
    model, _ = resolve_model(source, config, weights, trust_pickle, seed, **overrides)
    return model


@torch.no_grad()
def example_inputs(model: ViT5ClassificationNet, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Seeded standard-normal ``pixel_values`` (the scale of normalized images)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *model.input_shape), generator=gen)


def model_from_onnx(onnx_path: Union[str, Path], trust_pickle: bool = False) -> tuple[ViT5ClassificationNet, dict]:
    """The PyTorch FP32 model an exported ONNX file came from, rebuilt from its vit5 metadata, and
    that metadata.

    Presets are rebuilt from their seed; checkpoints are re-read from the recorded (absolute) path and
    must still have the recorded SHA-256, otherwise the comparison would measure a different model.
    """
    from .graph_metadata import config_from_metadata, read_metadata

    metadata = read_metadata(onnx_path)
    config = config_from_metadata(metadata)
    source = metadata.get("source")
    if not isinstance(source, dict) or "kind" not in source:
        raise BenchError(f"{onnx_path}: the metadata records no source model; cannot rebuild the PyTorch reference")
    if source["kind"] == "preset":
        model, _ = resolve_model(source["name"], config=config, seed=source.get("seed") or 0)
        return model, metadata
    checkpoint = Path(str(source.get("name")))
    if not checkpoint.is_file():
        raise BenchError(
            f"{onnx_path} was exported from {checkpoint}, which is not found here; the PyTorch reference "
            "is rebuilt from that checkpoint (sha256 " + str(source.get("sha256") or "?")[:16] + "...)"
        )
    model, origin = resolve_model(
        checkpoint, config=config, weights=source.get("weights") or "ema", trust_pickle=trust_pickle
    )
    # resolve_model already hashes the checkpoint (ModelSource.sha256): no extra pass over the file.
    expected = source.get("sha256")
    if expected and origin.sha256 != expected:
        raise BenchError(f"{checkpoint} changed since {onnx_path} was exported (SHA-256 differs); re-export it")
    return model, metadata
