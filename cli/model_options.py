"""The options that say which model to load, shared by ``export``, ``build-engine`` and ``bench``.

``@model_options`` adds them to a command's signature (Typer reads signatures) and hands the command
one ``ModelOptions`` value instead of twenty keyword arguments.
"""

import enum
import functools
import inspect
from pathlib import Path
from typing import Annotated, Optional, Union, get_type_hints

import typer

from vit5_infer.errors import ConfigError
from vit5_infer.workflows.options import OVERRIDES, LoadOptions

SOURCE_PANEL = "Model source"
ARCH_PANEL = "Architecture overrides (what a checkpoint's weights cannot tell)"


class Weights(str, enum.Enum):
    ema = "ema"
    raw = "raw"


ModelOptions = LoadOptions  # what every command that loads a model receives as ``model_opts``


def parse_l_cache(text: Optional[str]) -> Union[None, int, list]:
    """``14`` -> 14, ``14,15`` -> [14, 15] (rows, columns)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--l-cache must be an integer or two integers 'rows,cols', got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values
    raise ConfigError(f"--l-cache takes one or two integers, got {text!r}")


def _opt(flag: str, help: str, panel: str = ARCH_PANEL, **kw):
    return typer.Option(flag, help=help, rich_help_panel=panel, show_default=False, **kw)


# (parameter name, annotation, default).  Override parameters carry the OVERRIDES key as their name
# (lower-cased for L_cache) so that the mapping below stays mechanical.
_SOURCE_PARAMS = [
    (
        "config",
        Annotated[
            Optional[Path],
            _opt(
                "--config",
                "Architecture JSON (the shape of tests/data/golden/*.json); default: inferred from the weights or the "
                "preset.",
                SOURCE_PANEL,
            ),
        ],
        None,
    ),
    (
        "weights",
        Annotated[
            Weights,
            typer.Option(
                "--weights",
                help="Which weights of a training checkpoint: the EMA or the raw online ones.",
                rich_help_panel=SOURCE_PANEL,
            ),
        ],
        Weights.ema,
    ),
    (
        "trust_pickle",
        Annotated[
            bool,
            _opt(
                "--trust-pickle",
                "Allow arbitrary unpickling of .pt/.ckpt files (runs code from the file; only for files you trust).",
                SOURCE_PANEL,
            ),
        ],
        False,
    ),
    (
        "seed",
        Annotated[
            int,
            typer.Option(
                "--seed",
                help="Seed of a preset's random weights and of the example inputs.",
                rich_help_panel=SOURCE_PANEL,
            ),
        ],
        0,
    ),
]
_OVERRIDE_PARAMS = [
    ("num_heads", Annotated[Optional[int], _opt("--num-heads", "Attention heads.")], None),
    ("rope_base", Annotated[Optional[float], _opt("--rope-base", "RoPE base of the patch grid.")], None),
    ("reg_rope_base", Annotated[Optional[float], _opt("--reg-rope-base", "RoPE base of the register grid.")], None),
    (
        "attention_qk_norm",
        Annotated[Optional[str], _opt("--attention-qk-norm", "Attention QK-norm: rmsnorm or l2.")],
        None,
    ),
    (
        "attention_scale",
        Annotated[Optional[float], _opt("--attention-scale", "Attention logit scale (default head_dim^-0.5).")],
        None,
    ),
    ("l_cache", Annotated[Optional[str], _opt("--l-cache", "Hyena SIREN coordinate extent: N or ROWS,COLS.")], None),
    ("gate", Annotated[Optional[str], _opt("--gate", "Hyena first gate (silu, sigmoid, gelu, relu, identity).")], None),
    ("gate_2", Annotated[Optional[str], _opt("--gate-2", "Hyena second gate.")], None),
    ("hyena_qk_norm", Annotated[Optional[str], _opt("--hyena-qk-norm", "Hyena QK-norm (l2).")], None),
    (
        "mask_parametrization",
        Annotated[Optional[str], _opt("--mask-parametrization", "Gaussian mask: direct, log or softplus.")],
        None,
    ),
    (
        "min_attenuation_at_step",
        Annotated[Optional[float], _opt("--min-attenuation-at-step", "Gaussian mask bound.")],
        None,
    ),
    (
        "max_attenuation_at_limit",
        Annotated[Optional[float], _opt("--max-attenuation-at-limit", "Gaussian mask bound.")],
        None,
    ),
    (
        "mlp_activation",
        Annotated[
            Optional[str], _opt("--mlp-activation", "MLP activation (gelu, gelu_exact, relu, silu, glu, swiglu).")
        ],
        None,
    ),
    ("norm_eps", Annotated[Optional[float], _opt("--norm-eps", "RMSNorm epsilon.")], None),
    ("num_classes", Annotated[Optional[int], _opt("--num-classes", "Classifier classes.")], None),
]
_OVERRIDE_KEY = {name: ("L_cache" if name == "l_cache" else name) for name, _, _ in _OVERRIDE_PARAMS}
assert set(_OVERRIDE_KEY.values()) == set(OVERRIDES), (
    "CLI override flags out of sync with vit5_infer.architecture.OVERRIDES"
)


def model_options(func):
    """Give ``func`` the model-source and override flags; it receives them as ``model_opts: ModelOptions``."""
    signature = inspect.signature(func)
    hints = get_type_hints(func, include_extras=True)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "model_opts"
    ]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
        for name, annotation, default in _SOURCE_PARAMS + _OVERRIDE_PARAMS
    ]
    names = {name for name, _, _ in _SOURCE_PARAMS + _OVERRIDE_PARAMS}

    @functools.wraps(func)
    def wrapper(**kwargs):
        picked = {name: kwargs.pop(name) for name in names}
        overrides = {_OVERRIDE_KEY[n]: picked[n] for n in _OVERRIDE_KEY if picked[n] is not None}
        if "L_cache" in overrides:
            overrides["L_cache"] = parse_l_cache(overrides["L_cache"])
        weights = picked["weights"]
        opts = LoadOptions(
            config=picked["config"],
            weights=weights.value if isinstance(weights, Weights) else weights,
            trust_pickle=picked["trust_pickle"],
            seed=picked["seed"],
            overrides=tuple(overrides.items()),
        )
        return func(model_opts=opts, **kwargs)

    # Keyword-only parameters after the command's own: Typer reads this signature for its flags.
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    wrapper.__signature__ = signature.replace(parameters=own + added)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
    del wrapper.__wrapped__  # Typer must see the new signature, not follow back to func's
    return wrapper
