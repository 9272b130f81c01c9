"""Building blocks of the ViT-5 family, one job per module (in the spirit of timm's layers/)."""

from .attention import ViT5Attention
from .block import ViT5ResidualBlock, residual_block
from .ckconv import CKConvND, direct_conv2d, fftconv2d
from .film import KernelFiLMGenerator, RegisterCompressConcat, RegisterPooling
from .hyena import Hyena, QKVSequenceMixer, ViT5HyenaAdapter
from .masks import GaussianModulationND
from .mlp import MLP
from .norms import GlobalResponseNorm, L2Norm, LayerScale, RMSNorm
from .rope import apply_rope, rope_tables, rotate_pairs
from .siren import SIRENKernelND, coordinate_grid

__all__ = [
    "CKConvND",
    "GaussianModulationND",
    "GlobalResponseNorm",
    "Hyena",
    "KernelFiLMGenerator",
    "L2Norm",
    "LayerScale",
    "MLP",
    "QKVSequenceMixer",
    "RMSNorm",
    "RegisterCompressConcat",
    "RegisterPooling",
    "SIRENKernelND",
    "ViT5Attention",
    "ViT5HyenaAdapter",
    "ViT5ResidualBlock",
    "apply_rope",
    "coordinate_grid",
    "direct_conv2d",
    "fftconv2d",
    "residual_block",
    "rope_tables",
    "rotate_pairs",
]
