"""Seeded, trained-looking random weights for presets (no hub download exists for these networks).

Scales are chosen so that every block changes the residual stream noticeably: the export and engine
checks then exercise each block instead of passing through near-identity LayerScales.
"""

from __future__ import annotations

import math
from typing import TypeVar, cast

import torch
from torch import nn

from .layers import (
    CKConvND,
    GaussianModulationND,
    GlobalResponseNorm,
    KernelFiLMGenerator,
    LayerScale,
    RegisterPooling,
    RMSNorm,
    SIRENKernelND,
)

ModuleT = TypeVar("ModuleT", bound=nn.Module)


@torch.no_grad()
def init_weights(model: ModuleT, seed: int = 0) -> ModuleT:
    gen = torch.Generator().manual_seed(seed)

    def normal(t: torch.Tensor, std: float, mean: float = 0.0):
        t.copy_(torch.randn(t.shape, generator=gen) * std + mean)

    def uniform(t: torch.Tensor, bound: float):
        t.copy_((torch.rand(t.shape, generator=gen) * 2 - 1) * bound)

    handled = set()
    for module in model.modules():
        if isinstance(module, SIRENKernelND):
            first, out = module.positional_embedding.linear, module.out_linear
            uniform(first.weight, 10.0 / 2)  # omega_0-scaled first layer
            hidden_linears = cast("list[nn.Linear]", list(module.hidden_linears))
            for linear in hidden_linears:
                uniform(linear.weight, math.sqrt(6.0 / linear.in_features))
            uniform(out.weight, math.sqrt(6.0 / out.in_features) / math.sqrt(math.prod(module.seq_lens)))
            for linear in [first, *hidden_linears, out]:
                handled.add(id(linear))
                if linear.bias is not None:
                    uniform(linear.bias, 0.5)
        elif isinstance(module, KernelFiLMGenerator):
            # Near-identity modulation (gamma ~ 1, beta ~ 0) that still varies per sample.
            hidden, head = cast(nn.Linear, module.mlp[0]), cast(nn.Linear, module.mlp[2])
            normal(hidden.weight, 1.0 / math.sqrt(hidden.in_features))
            normal(hidden.bias, 0.02)
            normal(head.weight, 0.1 / math.sqrt(head.in_features))
            hd = module.kernel_hidden_dim
            bias = torch.randn(head.bias.shape, generator=gen) * 0.05
            for layer in range(module.num_film_layers):
                bias[2 * layer * hd : (2 * layer + 1) * hd] += 1.0
            head.bias.copy_(bias)
            handled.update((id(hidden), id(head)))
    for module in model.modules():
        if isinstance(module, nn.Linear) and id(module) not in handled:
            normal(module.weight, 1.0 / math.sqrt(module.in_features))
            if module.bias is not None:
                normal(module.bias, 0.02)
        elif isinstance(module, nn.Conv2d):
            normal(module.weight, 1.0 / math.sqrt(module.weight[0].numel()))
            if module.bias is not None:
                normal(module.bias, 0.02)
        elif isinstance(module, RMSNorm):
            normal(module.weight, 0.1, 1.0)
        elif isinstance(module, LayerScale):
            normal(module.gamma, 0.05, 0.3)
        elif isinstance(module, GlobalResponseNorm):
            normal(module.gamma, 0.1)
            normal(module.beta, 0.02)
        elif isinstance(module, RegisterPooling):
            normal(module.logits, 0.5)
        elif isinstance(module, GaussianModulationND):
            uniform(module.std_param, 0.5)
            module.std_param.add_(0.6)
        elif isinstance(module, CKConvND):
            normal(module.shortcut, 0.5)
    for name in ("cls_token", "pos_embed", "reg_token"):
        param = getattr(model, name, None)
        if param is not None:
            normal(param, 0.5)
    return model
