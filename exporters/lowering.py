"""Emits the ONNX graph of a ViT5ClassificationNet, module by module.

Choices that make the graph fast without changing the function (each is exact up to float32
rounding; the export validation checks the result against PyTorch):
- RoPE is one Gather and two Mul/Add per attention block, on q and k together.  The QK-norm weights
  and the rotation signs are folded into the baked cos/sin tables.  ONNX ``RotaryEmbedding`` is not
  used: it rotates channel pairs by one shared angle, while upstream's pairs use two different
  angles (SPEC 3.3), so it cannot express this RoPE exactly.
- LayerScale gammas are folded into the preceding projection when no GRN sits between them.
- Without FiLM, the SIREN kernel (with its Gaussian mask) is evaluated once at export, flipped and
  baked into a depthwise convolution whose centre tap also carries the ``shortcut`` term.
- Padding tokens are only appended when a Hyena block needs the padded grid, and are dropped after
  the last such block: attention blocks never read them and neither does the readout.
- With a ``cls`` or ``register_concat`` readout, a final attention block computes only the tokens
  the readout reads (as queries, and through its MLP); keys and values still span every token.
  Not when token outputs (``patch_tokens``, ``cls_token``, ``register_tokens``) are asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vit5_infer.blocks import block_kind, pads
from vit5_infer.errors import ConfigError
from vit5_infer.layers import (
    Hyena,
    RegisterCompressConcat,
    RegisterPooling,
    ViT5Attention,
    ViT5HyenaAdapter,
    ViT5ResidualBlock,
)
from vit5_infer.layers.rope import rotation_permutation
from vit5_infer.network import ViT5ClassificationNet
from vit5_infer.outputs import CLS_TOKEN, PATCH_TOKENS, PRE_LOGITS, REGISTER_TOKENS, TOKEN_OUTPUTS, output_shapes
from vit5_infer.vocabulary import GATED_ACTIVATIONS, INPUT_NAME, LOGITS

from .graph import FLOAT, GraphBuilder, as_float32
from .long_conv import long_conv
from .ops import activation, l2_normalize, rms_norm, silu


@dataclass
class LoweringOptions:
    opset: int = 23
    batch: int | None = None  # None: dynamic batch
    layout: str = "nchw"
    long_conv: str = "auto"
    #: graph outputs, in order (names from vit5_infer.vocabulary.OUTPUT_NAMES, checked by the caller)
    outputs: tuple = (LOGITS,)


def mlp(b: GraphBuilder, module, x: str, out_scale: np.ndarray | None) -> str:
    with b.scope("mlp"):
        h = b.linear_module(x, module.layer1, "layer1")
        if module.activation in GATED_ACTIVATIONS:
            a, g = b.split(h, [module.hidden_dim, module.hidden_dim], axis=-1)
            h = b.op("Mul", [a, b.op("Sigmoid", [g])]) if module.activation == "glu" else b.op("Mul", [g, silu(b, a)])
        else:
            h = activation(b, module.activation, h)
        return b.linear_module(h, module.layer2, "layer2", out_scale)


# ---- attention -------------------------------------------------------------------------------------
def rope_tables_for_graph(att: ViT5Attention, fold_scale: bool) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin tables ``[T, 2H, hd]`` for q and k stacked on the head axis, norm weights folded in."""
    hd, heads = att.head_dim, att.num_heads
    index, sign = rotation_permutation(hd)
    cos, sin = as_float32(att.rope_cos), as_float32(att.rope_sin)
    ones = np.ones(hd, np.float32)
    has_weight = att.q_norm is not None and hasattr(att.q_norm, "weight")
    w_q = as_float32(att.q_norm.weight) if has_weight else ones
    w_k = as_float32(att.k_norm.weight) if has_weight else ones
    scale = np.float32(att.scale) if fold_scale else np.float32(1.0)
    sign = np.asarray(sign, np.float32)

    def tables(weight: np.ndarray, factor: np.float32):
        return cos * weight * factor, sin * sign * weight[index] * factor

    cos_q, sin_q = tables(w_q, scale)
    cos_k, sin_k = tables(w_k, np.float32(1.0))
    cos_t = np.concatenate([np.repeat(cos_q[:, None], heads, 1), np.repeat(cos_k[:, None], heads, 1)], axis=1)
    sin_t = np.concatenate([np.repeat(sin_q[:, None], heads, 1), np.repeat(sin_k[:, None], heads, 1)], axis=1)
    return cos_t.astype(np.float32), sin_t.astype(np.float32)


def rotate_halves(b: GraphBuilder, x: str, heads: int, hd: int) -> str:
    """``[a, b, c, d] -> [b, a, d, c]`` on the last axis (quarters): the rotation without its signs.

    One reversed Slice over a [2, 2, hd/4] view; several times faster on ONNX Runtime CPU than a
    Gather along the innermost axis (measured 1.0 vs 6.2 ms for [8, 201, 12, 64]).
    """
    view = b.reshape(x, [0, 0, heads, 2, 2, hd // 4])
    return b.reshape(b.reverse(view, axis=4), [0, 0, heads, hd])


def attention(
    b: GraphBuilder, att: ViT5Attention, x: str, out_scale: np.ndarray | None, query_rows: tuple[int, int] | None = None
) -> str:
    """Self-attention on ``x [B, T, D]``; with ``query_rows=(start, count)`` only those tokens are
    computed as queries (keys and values still cover all T), giving ``[B, count, D]``."""
    d, heads, hd = att.hidden_dim, att.num_heads, att.head_dim
    fused = b.fused_attention
    with b.scope("sequence_mixer"):
        qkv = b.linear_module(x, att.qkv, "qkv")
        qk, v = b.split(qkv, [2 * d, d], axis=-1)
        qk = b.reshape(qk, [0, 0, 2 * heads, hd])
        if att.q_norm is not None:
            if att.qk_norm_kind == "rmsnorm":
                qk = rms_norm(b, qk, np.ones(hd, np.float32), att.q_norm.eps, "qk_norm")
            else:
                qk = l2_normalize(b, qk, axis=-1)
        cos_t, sin_t = rope_tables_for_graph(att, fold_scale=not fused)
        rotated = rotate_halves(b, qk, 2 * heads, hd)
        qk = b.op(
            "Add",
            [b.op("Mul", [qk, b.weight("rope_cos", cos_t)]), b.op("Mul", [rotated, b.weight("rope_sin", sin_t)])],
            name="rope",
        )
        # No softmax_precision on Attention: TensorRT's parser rejects any Attention node that has one
        # (onnx-tensorrt onnxOpCheckers.cpp), and ONNX Runtime ignores it.
        if fused and not b.attention_4d:
            q, k = b.split(b.reshape(qk, [0, 0, 2 * d]), [d, d], axis=-1)
            if query_rows is not None:
                q = b.slice(q, query_rows[0], sum(query_rows), axis=1)
            o = b.op("Attention", [q, k, v], q_num_heads=heads, kv_num_heads=heads, scale=float(att.scale))
        elif fused:
            # TensorRT 10.14's Attention importer takes 4-D [B, heads, T, head_dim] inputs only.
            q, k = b.split(b.transpose(qk, [0, 2, 1, 3]), [heads, heads], axis=1)
            if query_rows is not None:
                q = b.slice(q, query_rows[0], sum(query_rows), axis=2)
            v4 = b.transpose(b.reshape(v, [0, 0, heads, hd]), [0, 2, 1, 3])
            o4 = b.op("Attention", [q, k, v4], scale=float(att.scale))
            o = b.reshape(b.transpose(o4, [0, 2, 1, 3]), [0, 0, d])
        else:
            q, k = b.split(b.transpose(qk, [0, 2, 1, 3]), [heads, heads], axis=1)
            if query_rows is not None:
                q = b.slice(q, query_rows[0], sum(query_rows), axis=2)
            scores = b.op("MatMul", [q, b.transpose(k, [0, 1, 3, 2])], name="qk_matmul")
            if b.target.is_tensorrt:
                # No FP32 island: explicit Casts around the Softmax keep a strongly typed TensorRT from
                # fusing the MatMul-Softmax-MatMul into its attention kernel, and an FP16 softmax costs
                # nothing measurable (digits_attn, 200 real images, FP16 rounding of every tensor
                # emulated: max |logit error| 0.0157 with the FP32 island and without it).
                probs = b.op("Softmax", [scores], axis=-1)
            else:
                with b.fp32_region():
                    probs = b.op("Softmax", [scores], axis=-1)
            v4 = b.transpose(b.reshape(v, [0, 0, heads, hd]), [0, 2, 1, 3])
            o = b.reshape(b.transpose(b.op("MatMul", [probs, v4], name="pv_matmul"), [0, 2, 1, 3]), [0, 0, d])
        return b.linear_module(o, att.proj, "proj", out_scale)


# ---- Hyena -----------------------------------------------------------------------------------------
def hyena(
    b: GraphBuilder,
    adapter: ViT5HyenaAdapter,
    x: str,
    tokens: int,
    cond: str | None,
    out_scale: np.ndarray | None,
    long_conv_lowering: str,
) -> str:
    inner = adapter.inner_mixer
    mixer: Hyena = inner.mixer
    d = inner.hidden_dim
    cols = adapter.grid_w
    rows = tokens // cols
    with b.scope("sequence_mixer"):
        u = b.linear_module(x, inner.qkv_proj, "qkv_proj")
        sc = mixer.short_conv
        k = sc.kernel_size[0]
        u = b.reshape(b.transpose(u, [0, 2, 1]), [0, 3 * d, rows, cols])
        conv_inputs = [u, b.weight("short_conv.weight", as_float32(sc.weight))]
        if sc.bias is not None:
            conv_inputs.append(b.weight("short_conv.bias", as_float32(sc.bias)))
        u = b.op("Conv", conv_inputs, group=3 * d, pads=[k // 2] * 4, name="short_conv")
        u = b.transpose(b.reshape(u, [0, 3 * d, tokens]), [0, 2, 1])
        q, kk, v = b.split(u, [d, d, d], axis=-1)
        if mixer.qk_norm is not None:
            q = l2_normalize(b, q)
            if mixer.normalize_k:
                kk = l2_normalize(b, kk)
        z = b.op("Mul", [q, activation(b, mixer.gate, kk)])
        if mixer.pixelhyena_norm is not None:
            z = rms_norm(b, z, as_float32(mixer.pixelhyena_norm.weight), mixer.pixelhyena_norm.eps, "pixelhyena_norm")
        h = long_conv(b, mixer.global_conv, z, rows, cols, cond, long_conv_lowering)
        y = b.op("Mul", [h, activation(b, mixer.gate_2, v)])
        if mixer.output_norm is not None:
            y = rms_norm(b, y, as_float32(mixer.output_norm.weight), mixer.output_norm.eps, "output_norm")
        return b.linear_module(y, inner.out_proj, "out_proj", out_scale)


def grn(b: GraphBuilder, module, x: str, out_scale: np.ndarray | None = None) -> str:
    """``GRN(x) * out_scale`` as ``x * s + c`` with ``s = gamma*n + 1`` and ``c = beta`` (times out_scale):
    the statistics are small [B, 1, D] tensors, so only one Mul and one Add touch every token."""
    scale = np.ones_like(as_float32(module.gamma)) if out_scale is None else out_scale
    with b.scope("grn"):
        with b.fp32_region():
            g = b.op("Sqrt", [b.reduce("ReduceSumSquare", x, [1])])
            n = b.op("Div", [g, b.op("Add", [b.reduce("ReduceMean", g, [-1]), b.const(module.eps, np.float32)])])
            s = b.op(
                "Add", [b.op("Mul", [n, b.weight("gamma", as_float32(module.gamma) * scale)]), b.weight("one", scale)]
            )
        return b.op("Add", [b.op("Mul", [x, s]), b.weight("beta", as_float32(module.beta) * scale)])


def register_conditioning(b: GraphBuilder, pooling, a: str, start: int, count: int) -> str:
    regs = b.slice(a, start, start + count, axis=1)
    if isinstance(pooling, RegisterPooling):
        with torch.no_grad():
            weights = torch.softmax(pooling.logits, dim=0)[None, :]
        pooled = b.op("MatMul", [b.weight("register_weights", as_float32(weights)), regs])  # [B, 1, D]
        return b.reshape(pooled, [0, -1])
    if isinstance(pooling, RegisterCompressConcat):
        compressed = b.op("MatMul", [regs, b.weight("compress", as_float32(pooling.compress.weight).T)])
        return b.reshape(compressed, [0, -1])
    raise TypeError(f"unsupported register conditioning {type(pooling).__name__}")


@dataclass(frozen=True)
class MixerContext:
    """What a block's mixer emitter may need besides its input."""

    tokens: int  # length of the token sequence the block sees
    out_scale: np.ndarray | None  # LayerScale to fold into the mixer's output projection
    long_conv: str  # Hyena long-convolution lowering
    query_rows: tuple[int, int] | None = None  # (start, count): compute only these tokens (attention)
    conditioning: str | None = None  # register conditioning of FiLM kernels


def emit_attention(b: GraphBuilder, blk: ViT5ResidualBlock, a: str, ctx: MixerContext) -> str:
    return attention(b, blk.sequence_mixer, a, ctx.out_scale, ctx.query_rows)


def emit_hyena(b: GraphBuilder, blk: ViT5ResidualBlock, a: str, ctx: MixerContext) -> str:
    return hyena(b, blk.sequence_mixer, a, ctx.tokens, ctx.conditioning, ctx.out_scale, ctx.long_conv)


Emitter = Callable[[GraphBuilder, ViT5ResidualBlock, str, MixerContext], str]

#: block kind letter (vit5_infer.blocks) -> the ONNX of that kind's sequence mixer: ``(builder, block, input,
#: context) -> output``; a new kind adds its emitter here, or sets it from its own module
EMITTERS: dict[str, Emitter] = {
    "A": emit_attention,
    "H": emit_hyena,
}


def emitter(letter: str) -> Emitter:
    """The ONNX emitter of block kind ``letter``; ConfigError for an unknown kind or one the exporter lacks."""
    kind = block_kind(letter)
    emit = EMITTERS.get(letter)
    if emit is None:
        raise ConfigError(f"block kind {letter!r} ({kind.name}) has no ONNX emitter (exporters.lowering.EMITTERS)")
    return emit


def block(
    b: GraphBuilder,
    blk: ViT5ResidualBlock,
    letter: str,
    x: str,
    tokens: int,
    long_conv_lowering: str,
    query_rows: tuple[int, int] | None = None,
) -> str:
    """One residual block of kind ``letter``; ``query_rows`` (attention only) keeps just those output tokens."""
    ls_attn = None if blk.ls_attn is None else as_float32(blk.ls_attn.gamma)
    a = rms_norm(b, x, as_float32(blk.input_norm.weight), blk.input_norm.eps, "input_norm")
    cond = None
    if blk.register_pooling is not None:
        cond = register_conditioning(b, blk.register_pooling, a, blk.register_start_idx, blk.num_registers)
    context = MixerContext(tokens, ls_attn if blk.grn is None else None, long_conv_lowering, query_rows, cond)
    m = emitter(letter)(b, blk, a, context)
    if query_rows is not None:
        x = b.slice(x, query_rows[0], sum(query_rows), axis=1)
    if blk.grn is not None:
        m = grn(b, blk.grn, m, ls_attn)  # LayerScale folded into the GRN's affine terms
    x = b.op("Add", [x, m], name="residual_mixer")
    h = rms_norm(b, x, as_float32(blk.mlp_norm.weight), blk.mlp_norm.eps, "mlp_norm")
    h = mlp(b, blk.mlp, h, None if blk.ls_mlp is None else as_float32(blk.ls_mlp.gamma))
    return b.op("Add", [x, h], name="residual_mlp")


# ---- network ---------------------------------------------------------------------------------------
def emit_network(b: GraphBuilder, model: ViT5ClassificationNet, options: LoweringOptions) -> None:
    cfg, net = model.config, model.config.network
    d, n = net.hidden_dim, cfg.num_patches
    batch = options.batch if options.batch is not None else "batch"
    if options.layout == "nhwc":
        pixels = b.input(INPUT_NAME, FLOAT, [batch, net.image_size, net.image_size, net.in_channels])
        pixels = b.transpose(pixels, [0, 3, 1, 2])
    else:
        pixels = b.input(INPUT_NAME, FLOAT, [batch, net.in_channels, net.image_size, net.image_size])

    with b.scope("embed"):
        x = b.op(
            "Conv",
            [pixels, b.weight("patch_embed.weight", as_float32(model.patch_embed.weight))],
            strides=[net.patch_size] * 2,
            name="patch_embed",
        )
        x = b.transpose(b.reshape(x, [0, d, n]), [0, 2, 1])
        x = b.op("Add", [x, b.weight("pos_embed", as_float32(model.pos_embed))])
        pattern = net.layer_pattern
        padded_blocks = [i for i, kind in enumerate(pattern) if pads(kind)]
        extra = []
        if model.cls_token is not None:
            extra.append(as_float32(model.cls_token))
        if model.reg_token is not None:
            extra.append(as_float32(model.reg_token))
        if padded_blocks and cfg.num_pad:
            extra.append(np.zeros((1, cfg.num_pad, d), np.float32))
        if extra:
            tokens = b.weight("extra_tokens", np.concatenate(extra, axis=1))
            batch_dim = b.op("Shape", [pixels], start=0, end=1)
            shape = b.op("Concat", [batch_dim, b.const([sum(e.shape[1] for e in extra), d])], axis=0)
            x = b.op("Concat", [x, b.op("Expand", [tokens, shape])], axis=1)

    t0, padded = cfg.num_tokens, bool(padded_blocks and cfg.num_pad)
    lowering = options.long_conv
    last_padded = padded_blocks[-1] if padded_blocks else -1
    # The readout of cls / register_concat reads a few tokens: a final attention block only needs
    # to compute those (as queries; keys and values still span every token), unless token outputs
    # are asked for.
    readout_rows = {"cls": (n, 1), "register_concat": (n, net.num_registers)}.get(net.readout)
    wants_tokens = any(name in TOKEN_OUTPUTS for name in options.outputs)
    pruned = readout_rows is not None and pattern[-1] == "A" and not wants_tokens
    for i, (kind, blk) in enumerate(zip(pattern, model.blocks)):
        with b.scope(f"blocks.{i}"):
            if pruned and i == len(pattern) - 1:
                x = block(b, blk, kind, x, t0, lowering, query_rows=readout_rows)
            elif padded and not pads(kind):
                head, tail = b.slice(x, 0, t0, axis=1), b.slice(x, t0, cfg.num_padded_tokens, axis=1)
                x = b.op("Concat", [block(b, blk, kind, head, t0, lowering), tail], axis=1)
            else:
                x = block(b, blk, kind, x, cfg.num_padded_tokens if padded else t0, lowering)
            if padded and i == last_padded:
                x = b.slice(x, 0, t0, axis=1)  # nothing reads the padding tokens from here on
                padded = False

    results = {}
    if PRE_LOGITS in options.outputs or LOGITS in options.outputs:
        with b.scope("head"):
            first = 0 if pruned else n  # index of the first readout token in x
            if net.readout == "cls":
                pooled = b.op("Gather", [x, b.const(first)], axis=1)
            elif net.readout == "gap":
                pooled = b.reduce("ReduceMean", b.slice(x, 0, n, axis=1), [1], keepdims=0)
            else:
                regs = b.slice(x, first, first + net.num_registers, axis=1)
                pooled = b.reshape(
                    b.op("MatMul", [regs, b.weight("register_neck", as_float32(model.register_neck.weight).T)]), [0, -1]
                )
            results[PRE_LOGITS] = rms_norm(b, pooled, as_float32(model.out_norm.weight), model.out_norm.eps, "out_norm")
            if LOGITS in options.outputs:
                results[LOGITS] = b.op(
                    "MatMul", [results[PRE_LOGITS], b.weight("out_proj", as_float32(model.out_proj.weight).T)]
                )
    if wants_tokens:
        # x holds [patches | CLS | registers] here: the padding was dropped after the last Hyena block.
        with b.scope("features"):
            grid = cfg.grid_size
            results[PATCH_TOKENS] = b.reshape(b.slice(x, 0, n, axis=1), [0, grid, grid, d])
            if model.cls_token is not None:
                results[CLS_TOKEN] = b.op("Gather", [x, b.const(n)], axis=1)
            if net.num_registers:
                start = n + int(model.cls_token is not None)
                results[REGISTER_TOKENS] = b.slice(x, start, start + net.num_registers, axis=1)
    shapes = output_shapes(cfg, batch)
    for name in options.outputs:
        b.output(results[name], name, FLOAT, shapes[name])
