"""The block kinds of ``layer_pattern``: one registered ``BlockKind`` value per letter.

A kind is a layer module (``vit5_infer.layers``: the sequence mixer, in torch), one module here that
registers its ``BlockKind`` (its config check, its weights detector and the builder of its residual
block), and one ONNX emitter in the exporter (``exporters.lowering.EMITTERS``, keyed by the letter).
Importing this package registers the built-in kinds; a kind defined elsewhere calls
``register_block_kind`` itself.  An unknown letter is a ConfigError everywhere.
"""

from . import attention, hyena  # noqa: F401 - imported to register the built-in kinds
from .registry import BlockKind, block_kind, block_kinds, pads, register_block_kind, unregister_block_kind

__all__ = [
    "BlockKind",
    "block_kind",
    "block_kinds",
    "pads",
    "register_block_kind",
    "unregister_block_kind",
]
