"""``vit5 presets``: the built-in architectures with their sizes and FLOPs."""

import json
from typing import Annotated

import typer
from rich.table import Table

from . import console


def presets(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the built-in presets with their parameter counts and FLOPs per image."""
    from vit5_infer.workflows.presets import preset_rows

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
