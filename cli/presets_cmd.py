"""``vit5 presets``: the built-in architectures with their sizes and FLOPs."""

import json
from typing import Annotated

import typer
from rich.table import Table

from . import console


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


def presets(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the built-in presets with their parameter counts and FLOPs per image."""
    rows = preset_rows()
    if as_json:
        console.out.print_json(json.dumps(rows))
        return
    table = Table(title="ViT-5 presets (random weights from --seed; FLOPs per 224x224 image, inference)")
    for header in ("preset", "params", "GFLOPs", "width", "blocks", "description"):
        table.add_column(
            header,
            justify="right" if header in ("params", "GFLOPs", "width", "blocks") else "left",
            no_wrap=header != "description",
        )
    for r in rows:
        table.add_row(
            r["name"],
            f"{r['parameters'] / 1e6:.1f} M",
            f"{r['gflops']:.2f}",
            str(r["hidden_dim"]),
            str(len(r["pattern"])),
            r["description"],
        )
    console.out.print(table)
