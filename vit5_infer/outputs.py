"""Which outputs a network can give, and their shapes: the backbone contract shared by the reference
modules, the exporter, the runners and the CLI.

- ``logits`` ``[B, classes]``;
- ``pre_logits`` ``[B, F]``: the classifier's input, ``out_norm`` of the readout (CLS token, patch
  mean, or the ``register_concat`` neck);
- ``patch_tokens`` ``[B, Hp, Wp, C]``: the last block's patch tokens on the row-major patch grid,
  without the final norm (Hyena padding tokens are never part of it);
- ``cls_token`` ``[B, C]`` (networks with a CLS token) and ``register_tokens`` ``[B, R, C]``
  (networks with registers): the last block's tokens, without the final norm.

Pure Python on a :class:`~vit5_infer.config.ViT5Config`; importing this pulls in nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Union

from .config import ViT5Config
from .errors import Vit5Error
from .vocabulary import LOGITS, OUTPUT_NAMES

PRE_LOGITS, PATCH_TOKENS, CLS_TOKEN, REGISTER_TOKENS = OUTPUT_NAMES[1:]
#: Outputs read from the last block's token sequence (as opposed to the readout's vector).
TOKEN_OUTPUTS = (PATCH_TOKENS, CLS_TOKEN, REGISTER_TOKENS)
DEFAULT_OUTPUTS = (LOGITS,)


class OutputError(Vit5Error, ValueError):
    """An output name that is unknown, or that this network does not have."""


def available_outputs(config: ViT5Config) -> tuple[str, ...]:
    """The outputs ``config``'s network has, in ``OUTPUT_NAMES`` order."""
    absent = set()
    if not config.has_cls:
        absent.add(CLS_TOKEN)
    if config.network.num_registers == 0:
        absent.add(REGISTER_TOKENS)
    return tuple(name for name in OUTPUT_NAMES if name not in absent)


def parse_outputs(value: Union[str, Iterable[str], None]) -> tuple[str, ...]:
    """``"pre_logits,patch_tokens"`` or a sequence of names -> the names, deduplicated, in the
    order given; OutputError for an unknown or empty selection."""
    if value is None:
        return DEFAULT_OUTPUTS
    names = [part.strip() for part in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    names = [n for n in names if n]
    if not names:
        raise OutputError(f"no outputs given; choose from {', '.join(OUTPUT_NAMES)}")
    unknown = [n for n in names if n not in OUTPUT_NAMES]
    if unknown:
        raise OutputError(f"unknown output(s) {', '.join(unknown)}; choose from {', '.join(OUTPUT_NAMES)}")
    return tuple(dict.fromkeys(names))


def select_outputs(config: ViT5Config, value: Union[str, Iterable[str], None]) -> tuple[str, ...]:
    """The requested outputs, checked against what ``config``'s network has (one-line OutputError)."""
    names = parse_outputs(value)
    if CLS_TOKEN in names and not config.has_cls:
        raise OutputError(
            f"cls_token: this network has no CLS token (readout {config.network.readout!r}); "
            f"its outputs are {', '.join(available_outputs(config))}"
        )
    if REGISTER_TOKENS in names and config.network.num_registers == 0:
        raise OutputError(
            f"register_tokens: this network has no registers; its outputs are {', '.join(available_outputs(config))}"
        )
    return names


def output_shapes(config: ViT5Config, batch: Union[int, str] = "batch") -> dict[str, list]:
    """Shape of every available output, with ``batch`` as the first dimension."""
    net = config.network
    grid, d = config.grid_size, net.hidden_dim
    shapes = {
        LOGITS: [batch, net.num_classes],
        PRE_LOGITS: [batch, config.head_input_dim],
        PATCH_TOKENS: [batch, grid, grid, d],
        CLS_TOKEN: [batch, d],
        REGISTER_TOKENS: [batch, net.num_registers, d],
    }
    return {name: shapes[name] for name in available_outputs(config)}
