"""What an export records in its graph's metadata: what a runtime or `vit5 bench` needs to rebuild the reference."""

from __future__ import annotations

from vit5_infer import __version__
from vit5_infer.config import ViT5Config

# the format itself is the core's (graph_metadata): runtimes read it without the exporters
from vit5_infer.graph_metadata import (  # noqa: F401 - re-exported for the exporters' users
    config_from_metadata,
    graph_outputs,
    read_metadata,
    write_metadata,
)
from vit5_infer.loading import ModelSource
from vit5_infer.outputs import output_shapes
from vit5_infer.preprocessing import Preprocessing
from vit5_infer.vocabulary import LOGITS


def build_metadata(
    config: ViT5Config,
    source: ModelSource | None,
    precision: str,
    opset: int,
    layout: str,
    lowering: dict,
    io_dtype: str,
    batch,
    outputs=(LOGITS,),
    preprocessing: Preprocessing | None = None,
) -> dict:
    """``preprocessing``: what the graph's users must apply to images (default: SPEC 8.4 at the
    model's input size)."""
    pre = preprocessing or Preprocessing(image_size=config.network.image_size)
    return {
        "config": config.to_dict(),
        "preprocessing": pre.to_metadata(layout),
        "toolkit_version": __version__,
        "source": None if source is None else source.__dict__,
        "precision": precision,
        "io_dtype": io_dtype,
        "opset": opset,
        "lowering": lowering,
        "batch": batch if batch is not None else "dynamic",
        # graph output name -> shape ("batch" for a dynamic batch)
        "outputs": _output_shapes(config, outputs, batch),
    }


def _output_shapes(config: ViT5Config, outputs, batch) -> dict:
    shapes = output_shapes(config, batch if batch is not None else "batch")
    return {name: shapes[name] for name in outputs}
