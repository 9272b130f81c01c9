"""flop_count against SPEC 1.6, 3.4 and 5.2-5.5 (presets to the printed precision, tiny configs exactly)."""

from __future__ import annotations

import math

import pytest
from vit5_tiny import tiny_config

from vit5_infer import FilmConfig, ViT5ClassificationNet, get_preset


@pytest.mark.parametrize(
    "name, train, inference",
    [("vit5-small", 9.41, 9.41), ("vit5-small-hyena", 9.31, 8.88), ("vit5-small-hybrid", 9.70, 9.70)],
)
def test_preset_gflops(name, train, inference):
    model = ViT5ClassificationNet(get_preset(name))
    assert round(model.flop_count() / 1e9, 2) == train
    assert round(model.flop_count(inference=False) / 1e9, 2) == train
    assert round(model.flop_count(inference=True) / 1e9, 2) == inference
    assert isinstance(model.flop_count(), int)


# ---- hand formulas -----------------------------------------------------------------------------


def rms(t, dim):
    return 3 * t * dim


def mlp(t, d, hm):
    return 2 * t * d * hm + t * hm + 2 * t * hm * d


def attention(t, d, hd, qk_rms=True):
    return 6 * t * d * d + 4 * t * d + 4 * t * t * d + 2 * t * d * d + (2 * 3 * t * hd if qk_rms else 0)


def siren(rows, cols, c, e, hd, layers, film_gen=None, n_mod=0, inference=False):
    if inference and film_gen is None:
        return 0
    g = (2 * rows - 1) * (2 * cols - 1)
    total = 2 * g * 2 * e + g * e
    widths = [e] + [hd] * (layers - 1)
    for i in range(layers - 1):
        total += 2 * g * widths[i] * widths[i + 1] + g * widths[i + 1]
    total += 2 * g * hd * c
    if film_gen is not None:
        total += film_gen + n_mod * 2 * g * hd
    return total


def ckconv(rows, cols, c, kernel_flops, film, inference):
    np_y, np_x = 2 * rows, 2 * cols
    n_fft = 2 if (inference and not film) else 3
    total = kernel_flops + n_fft * 5 * c * np_y * np_x * (math.log2(np_y) + math.log2(np_x))
    return int(total + 6 * c * np_y * np_x + c * rows * cols)


def hyena_mixer(rows, cols, c, conv_flops):
    s = rows * cols
    hy = 2 * 1 * (3 * c) * s * 3 * 3 + 3 * c * s + 2 * c * s + 3 * c * s + conv_flops + 2 * c * s + 3 * c * s
    return 2 * s * c * 3 * c + hy + 2 * s * c * c


def block(t, d, hm, mixer_flops, extra=0):
    return rms(t, d) + mixer_flops + extra + 2 * t * d + rms(t, d) + mlp(t, d, hm)


def stem_and_head(cin, d, p, n, classes, readout_flops=0, dh=None):
    dh = dh or d
    return 2 * cin * d * p * p * n + n * d + readout_flops + 3 * dh + 2 * dh * classes


def test_tiny_attention_network_flops_exact():
    cfg = tiny_config(pattern="AA", readout="cls", registers=4, hidden=16, heads=2, classes=5)
    model = ViT5ClassificationNet(cfg)
    d, t, hm = 16, 9 + 1 + 4, 64  # attention blocks see T0 = 14 (pad stripped)
    expected = stem_and_head(3, d, 4, 9, 5) + 2 * block(t, d, hm, attention(t, d, 8))
    assert model.flop_count() == expected
    assert model.flop_count(inference=True) == expected


def test_tiny_attention_gap_readout_flops():
    cfg = tiny_config(pattern="A", readout="gap", registers=0, hidden=16, heads=2, classes=5, qk_norm=None)
    d, t = 16, 9
    expected = stem_and_head(3, d, 4, 9, 5, readout_flops=9 * d) + block(t, d, 64, attention(t, d, 8, qk_rms=False))
    assert ViT5ClassificationNet(cfg).flop_count() == expected


def test_tiny_hyena_network_flops_exact():
    cfg = tiny_config(pattern="HH", readout="gap", registers=0, hidden=8, classes=5)
    model = ViT5ClassificationNet(cfg)
    d, rows, cols = 8, 3, 3
    for inference in (False, True):
        kernel = siren(rows, cols, d, 8, 8, 3, inference=inference)
        mixer = hyena_mixer(rows, cols, d, ckconv(rows, cols, d, kernel, film=False, inference=inference))
        expected = stem_and_head(3, d, 4, 9, 5, readout_flops=9 * d) + 2 * block(9, d, 32, mixer)
        assert model.flop_count(inference=inference) == expected
    assert model.flop_count(inference=True) < model.flop_count(inference=False)


def test_tiny_hybrid_film_grn_register_concat_flops_exact():
    film = FilmConfig(num_film_layers=3, film_after_pos_embed=True, film_hidden_dim=64)
    cfg = tiny_config(
        pattern="HA",
        readout="register_concat",
        ratio=4,
        registers=4,
        hidden=16,
        heads=2,
        classes=5,
        mask=True,
        grn=True,
        film=film,
    )
    model = ViT5ClassificationNet(cfg)
    d, r, hm = 16, 4, 64
    t0 = 9 + 4  # no CLS with register_concat
    t = t0 + (-t0) % 3  # 15 padded tokens, 5 rows of 3
    rows, cols = t // 3, 3
    film_gen = 2 * d * 64 + 64 + 2 * 64 * (2 * 3 * 8)
    kernel = siren(rows, cols, d, 8, 8, 3, film_gen=film_gen, n_mod=3)
    mixer = hyena_mixer(rows, cols, d, ckconv(rows, cols, d, kernel, film=True, inference=False))
    h_block = block(t, d, hm, mixer, extra=(3 * r + 2 * r * d) + 6 * t * d)  # register pooling + GRN
    a_block = block(t0, d, hm, attention(t0, d, 8))
    dh = r * d // 4
    expected = stem_and_head(3, d, 4, 9, 5, readout_flops=r * 2 * d * (d // 4), dh=dh) + h_block + a_block
    assert model.flop_count() == expected
    assert model.flop_count(inference=True) == expected  # FiLM kernels are per sample: nothing to cache


def test_compress_concat_conditioning_flops():
    film = FilmConfig(
        conditioning="register_compress_concat",
        compressed_dim=2,
        num_film_layers=2,
        film_after_pos_embed=False,
        film_hidden_dim=8,
    )
    cfg = tiny_config(pattern="H", readout="cls", registers=4, hidden=8, film=film)
    model = ViT5ClassificationNet(cfg)
    blk = model.blocks[0]
    assert blk.register_pooling.flop_count(8) == 4 * 2 * 8 * 2
    gen = blk.sequence_mixer.inner_mixer.mixer.global_conv.kernel.film_generator
    assert gen.cond_dim == 4 * 2
    assert gen.flop_count() == 2 * 8 * 8 + 8 + 2 * 8 * (2 * 2 * 8)
