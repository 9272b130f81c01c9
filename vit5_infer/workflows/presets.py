"""``vit5 presets``: the built-in architectures with their sizes and FLOPs, as rows to print."""

from __future__ import annotations


def preset_rows() -> list[dict]:
    from vit5_infer.presets import PRESET_DESCRIPTIONS, PRESET_SIZES, PRESETS

    rows = []
    for name, config in PRESETS.items():
        net = config.network
        parameters, flops = PRESET_SIZES[name]
        rows.append(
            {
                "name": name,
                "description": PRESET_DESCRIPTIONS.get(name, ""),
                "pattern": net.layer_pattern,
                "hidden_dim": net.hidden_dim,
                "image_size": net.image_size,
                "parameters": parameters,
                "gflops": flops / 1e9,
            }
        )
    return rows
