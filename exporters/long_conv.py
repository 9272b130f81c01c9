"""Lowerings of the Hyena long convolution (upstream's zero-padded FFT convolution, SPEC 5.6).

- ``direct``: a depthwise ``Conv`` with the kernel flipped in both axes (the exact equivalent of the
  FFT form for the double grid).  Best when the kernel is a baked constant: the runtime prepacks it.
- ``spectral``: the FFT itself, as matrix products with constant DFT matrices on channels-last data
  (rfft along the width, full DFT along the height, product, inverse restricted to the cropped
  window).  Each stage is one large GEMM broadcast over the batch, so per-sample (FiLM) kernels cost
  no more than shared ones, and no ``DFT`` op is needed (TensorRT's parser has none).

``auto`` is ``spectral``, chosen by measurement on ONNX Runtime CPU (2 cores, 224x224): for the
baked kernels of vit5-small-hyena it ran at 34 / 298 ms (batch 1 / 8) against 52 / 365 ms for
``direct``; for the per-sample FiLM kernels of vit5-small-hybrid at 39 / 313 ms against 101 / 791 ms
for ``scan`` (a depthwise Conv whose weights are not constant cannot be prepacked).
"""

from __future__ import annotations

import numpy as np
import torch

from .graph import FLOAT, GraphBuilder, as_float32
from .ops import gelu

LOWERINGS = ("direct", "spectral", "scan")


def choose(lowering: str, has_film: bool) -> str:
    if lowering == "auto":
        return "spectral"
    if lowering == "direct" and has_film:
        return "scan"  # per-sample kernels with a dynamic batch: a depthwise Conv per sample
    if lowering == "scan" and not has_film:
        return "direct"  # a baked kernel is shared by every sample: no Scan needed
    return lowering


# ---- DFT matrices (float64, cast once) ---------------------------------------------------------------
def rfft_matrix(n_in: int, n_fft: int) -> np.ndarray:
    """``[2*(n_fft//2+1), n_in]``: rows Re then Im of the rfft of a length-``n_in`` signal."""
    k = np.arange(n_fft // 2 + 1)[:, None]
    j = np.arange(n_in)[None, :]
    angle = 2 * np.pi * k * j / n_fft
    return np.concatenate([np.cos(angle), -np.sin(angle)]).astype(np.float32)


def dft_matrix(n_in: int, n_fft: int) -> np.ndarray:
    """``[2*n_fft, 2*n_in]``: complex DFT on (Re rows, Im rows) stacked inputs."""
    k = np.arange(n_fft)[:, None]
    i = np.arange(n_in)[None, :]
    c, s = np.cos(2 * np.pi * k * i / n_fft), np.sin(2 * np.pi * k * i / n_fft)
    return np.block([[c, s], [-s, c]]).astype(np.float32)


def product_factor_matrix(n_in: int, n_fft: int) -> np.ndarray:
    """``[4*n_fft, 2*n_in]``: the DFT giving ``[Re, Re, -Im, Im]`` of the spectrum at once.

    With ``K1 = [Re K; Re K]`` and ``K2 = [-Im K; Im K]`` the complex product of a spectrum
    ``Z = [Re Z; Im Z]`` with K is ``Z * K1 + swap(Z) * K2``: two Mul and one Add, no split/concat.
    """
    m = dft_matrix(n_in, n_fft)
    re, im = m[:n_fft], m[n_fft:]
    return np.concatenate([re, re, -im, im])


def idft_rows_matrix(n_fft: int, first: int, count: int) -> np.ndarray:
    """``[2*count, 2*n_fft]``: inverse complex DFT, outputs ``first .. first+count-1`` only."""
    i = np.arange(first, first + count)[:, None]
    k = np.arange(n_fft)[None, :]
    c, s = np.cos(2 * np.pi * k * i / n_fft), np.sin(2 * np.pi * k * i / n_fft)
    return (np.block([[c, -s], [s, c]]) / n_fft).astype(np.float32)


def irfft_matrix(n_fft: int, first: int, count: int) -> np.ndarray:
    """``[count, 2*(n_fft//2+1)]``: irfft from (Re, Im) bins to outputs ``first .. first+count-1``.

    As numpy's irfft, the imaginary parts of the DC and Nyquist bins are ignored (their sines vanish).
    """
    half = n_fft // 2
    k = np.arange(half + 1)[None, :]
    j = np.arange(first, first + count)[:, None]
    weight = np.where((k == 0) | (k == half), 1.0, 2.0)
    angle = 2 * np.pi * j * k / n_fft
    return (np.concatenate([weight * np.cos(angle), -weight * np.sin(angle)], axis=1) / n_fft).astype(np.float32)


def spectrum(
    b: GraphBuilder, x: str, rows: int, cols: int, channels: int, n_rows: int, n_cols: int, factors: bool = False
) -> str:
    """2-D real DFT of channels-last ``x [B, rows, cols, C]`` -> ``[B, 2, F]`` (Re, Im), with
    ``F = n_rows*(n_cols//2+1)*C``; with ``factors`` -> ``[B, 4, F]``: K1 then K2 (product_factor_matrix)."""
    bins = n_cols // 2 + 1
    y = b.op("MatMul", [b.weight("rfft_w", rfft_matrix(cols, n_cols)), x])  # [B, rows, 2*bins, C]
    y = b.transpose(b.reshape(y, [0, rows, 2, bins, channels]), [0, 2, 1, 3, 4])
    y = b.reshape(y, [0, 2 * rows, bins * channels])
    matrix = product_factor_matrix(rows, n_rows) if factors else dft_matrix(rows, n_rows)
    y = b.op("MatMul", [b.weight("dft_h", matrix), y])  # [B, 2*n_rows or 4*n_rows, bins*C]
    return b.reshape(y, [0, 4 if factors else 2, n_rows * bins * channels])


def kernel_product_factors(kernel: np.ndarray, n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """K1, K2 (see product_factor_matrix) of a baked ``[C, Ky, Kx]`` kernel, each ``[1, 2, F]``."""
    f = np.fft.rfft2(kernel.astype(np.float64), s=(n_rows, n_cols))  # [C, n_rows, bins]
    re, im = (part.transpose(1, 2, 0).reshape(1, 1, -1) for part in (f.real, f.imag))  # [n_rows, bins, C]
    return (np.concatenate([re, re], axis=1).astype(np.float32), np.concatenate([-im, im], axis=1).astype(np.float32))


def spectral_conv(b: GraphBuilder, z: str, k1: str, k2: str, rows: int, cols: int, channels: int) -> str:
    """``z [B, rows*cols, C]`` convolved through the kernel factors ``k1, k2`` -> ``[B, rows*cols, C]``."""
    n_rows, n_cols = 2 * rows, 2 * cols
    bins = n_cols // 2 + 1
    z_hat = spectrum(b, b.reshape(z, [0, rows, cols, channels]), rows, cols, channels, n_rows, n_cols)
    swapped = b.reverse(z_hat, axis=1)
    p = b.op("Add", [b.op("Mul", [z_hat, k1]), b.op("Mul", [swapped, k2])])
    p = b.reshape(p, [0, 2 * n_rows, bins * channels])
    # Crop window of upstream's irfft2 output: rows/cols [N-1, 2N-1).
    q = b.op("MatMul", [b.weight("idft_h", idft_rows_matrix(n_rows, rows - 1, rows)), p])  # [B, 2*rows, bins*C]
    q = b.transpose(b.reshape(q, [0, 2, rows, bins, channels]), [0, 2, 1, 3, 4])
    q = b.reshape(q, [0, rows, 2 * bins, channels])
    y = b.op("MatMul", [b.weight("irfft_w", irfft_matrix(n_cols, cols - 1, cols)), q])  # [B, rows, cols, C]
    return b.reshape(y, [0, rows * cols, channels])


# ---- kernels ---------------------------------------------------------------------------------------
def grid_embedding(kernel, flip: bool) -> np.ndarray:
    """``sin(positional_linear(grid))`` flattened to ``[G, E]``, optionally over the flipped grid.

    Evaluating the SIREN on the flipped grid yields the flipped kernel directly, which is what a
    cross-correlation (ONNX Conv) needs to compute upstream's convolution.
    """
    with torch.no_grad():
        grid = kernel.grid.flip(1, 2) if flip else kernel.grid
        e = torch.sin(kernel.positional_embedding(grid))
    return as_float32(e.reshape(-1, e.shape[-1]))


def baked_kernel(conv) -> np.ndarray:
    """The masked kernel ``[C, Ky, Kx]`` (upstream orientation) with the shortcut on its centre tap."""
    with torch.no_grad():
        kernel = conv.channels_first_kernel()[0].clone()
        ky, kx = kernel.shape[-2:]
        kernel[:, ky // 2, kx // 2] += conv.shortcut
    return as_float32(kernel)


def film_kernel(b: GraphBuilder, conv, cond: str, flip: bool, with_shortcut: bool = True) -> str:
    """Per-sample kernel ``[B, Ky*Kx, C]`` (channels-last; with the shortcut on its centre tap if
    ``with_shortcut``), in float32."""
    kernel = conv.kernel
    gen = kernel.film_generator
    hd = kernel.mlp_hidden_dim
    ky, kx = (2 * s - 1 for s in kernel.seq_lens)
    with b.scope("film"), b.fp32_region():
        hidden = b.linear_module(cond, gen.mlp[0], "mlp0")
        out = b.linear_module(gelu(b, hidden), gen.mlp[2], "mlp2")
        pieces = b.split(out, [hd] * (2 * gen.num_film_layers), axis=-1)
        pairs = [
            (b.op("Unsqueeze", [pieces[2 * i], b.const([1])]), b.op("Unsqueeze", [pieces[2 * i + 1], b.const([1])]))
            for i in range(gen.num_film_layers)
        ]

        def modulate(h: str, pair) -> str:
            return b.op("Add", [b.op("Mul", [h, pair[0]]), pair[1]])

        embedding = grid_embedding(kernel, flip)
        layers = list(kernel.hidden_linears)
        if kernel.film_after_pos_embed:
            h = modulate(b.weight("grid_embedding", embedding), pairs[0])
        else:
            # No modulation before the first hidden sine: that layer is input-independent too.
            first = layers.pop(0)
            with torch.no_grad():
                baked = torch.sin(first(torch.from_numpy(embedding)))
            h = modulate(b.weight("hidden0", as_float32(baked)), pairs[0])
        for i, linear in enumerate(layers):
            h = b.op("Sin", [b.linear_module(h, linear, f"hidden{i + 1}")])
            h = modulate(h, pairs[i + 1])
        k = b.linear_module(h, kernel.out_linear, "out_linear")
        if conv.mask is not None:
            with torch.no_grad():
                grid = kernel.grid.flip(1, 2) if flip else kernel.grid
                mask = conv.mask.mask(grid)
            k = b.op("Mul", [k, b.weight("mask", as_float32(mask.reshape(-1, mask.shape[-1])))])
        if not with_shortcut:
            return k
        centre = np.zeros((ky * kx, conv.hidden_dim), np.float32)
        centre[(ky // 2) * kx + kx // 2] = as_float32(conv.shortcut)
        return b.op("Add", [k, b.weight("shortcut_tap", centre)])


def _scan_depthwise_conv(
    b: GraphBuilder, z: str, kernel: str, channels: int, ksize: tuple[int, int], pads: list[int]
) -> str:
    """Per-sample depthwise convolution for a dynamic batch: Scan over the batch axis."""
    from onnx import helper

    ky, kx = ksize
    body = b.subgraph("per_sample_conv")
    z4 = body.op("Unsqueeze", ["z_b", body.const([0])])
    k4 = body.reshape("k_b", [channels, 1, ky, kx])
    y_b = body.op("Squeeze", [body.op("Conv", [z4, k4], group=channels, pads=pads), body.const([0])])
    graph = body.build_subgraph(
        "per_sample_conv",
        [helper.make_tensor_value_info("z_b", FLOAT, None), helper.make_tensor_value_info("k_b", FLOAT, None)],
        [helper.make_tensor_value_info(y_b, FLOAT, None)],
    )
    return b.op("Scan", [z, kernel], num_scan_inputs=2, body=graph, name="long_conv_scan")


def long_conv(b: GraphBuilder, conv, z: str, rows: int, cols: int, cond: str | None, lowering: str) -> str:
    """``z [B, rows*cols, C]`` -> ``[B, rows*cols, C]``, upstream's FFT convolution plus shortcut."""
    c = conv.hidden_dim
    ky, kx = 2 * rows - 1, 2 * cols - 1
    method = choose(lowering, conv.has_film)
    with b.scope("long_conv"), b.fp32_region():
        if method == "spectral":
            if conv.has_film:
                # The shortcut is applied on z after the convolution: cheaper than on the larger kernel.
                k = b.reshape(film_kernel(b, conv, cond, flip=False, with_shortcut=False), [0, ky, kx, c])
                k1, k2 = b.split(spectrum(b, k, ky, kx, c, 2 * rows, 2 * cols, factors=True), [2, 2], axis=1)
                y = spectral_conv(b, z, k1, k2, rows, cols, c)
                return b.op("Add", [y, b.op("Mul", [z, b.weight("shortcut", as_float32(conv.shortcut))])])
            k1, k2 = kernel_product_factors(baked_kernel(conv), 2 * rows, 2 * cols)
            return spectral_conv(b, z, b.weight("kernel_k1", k1), b.weight("kernel_k2", k2), rows, cols, c)
        pads = [rows - 1, cols - 1, rows - 1, cols - 1]
        z4 = b.reshape(b.transpose(z, [0, 2, 1]), [0, c, rows, cols])
        if conv.has_film:
            k = film_kernel(b, conv, cond, flip=True)  # [B, G, C]
            k = b.reshape(b.transpose(k, [0, 2, 1]), [0, c, ky, kx])
            y = _scan_depthwise_conv(b, z4, k, c, (ky, kx), pads)
        else:
            weight = baked_kernel(conv)[:, ::-1, ::-1][:, None]
            y = b.op("Conv", [z4, b.weight("kernel", np.ascontiguousarray(weight))], group=c, pads=pads)
        return b.transpose(b.reshape(y, [0, c, rows * cols]), [0, 2, 1])
