"""The debug entry's option checks (``check_debug_options``), refused before any work, and its seeded
inputs, which are bench's for the same seed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vit5_infer.errors import InputError
from vit5_infer.workflows.debug import DebugOptions, check_debug_options

GRAPHS = {"reference": Path("a.onnx"), "candidate": Path("b.onnx")}


@pytest.mark.parametrize(
    "options, fragment",
    [
        (
            DebugOptions(source="vit5-small", **GRAPHS),
            "give either SOURCE (a preset or checkpoint) or --reference and --candidate, not both",
        ),
        (DebugOptions(), "not both"),
        (DebugOptions(reference=Path("a.onnx")), "--reference and --candidate go together"),
        (DebugOptions(candidate=Path("b.onnx")), "--reference and --candidate go together"),
        (DebugOptions(precision="bf16", **GRAPHS), "--precision only applies to the graphs built from SOURCE"),
        (
            DebugOptions(target="tensorrt", opset=18, lowering="direct", **GRAPHS),
            "--target, --opset, --lowering only apply to the graphs built from SOURCE; --reference and --candidate are "
            "compared as they are: leave them out",
        ),
        (DebugOptions(source="vit5-small", mean=(0.5,) * 3, std=(0.25,) * 3), "--mean/--std only preprocess --images"),
        (DebugOptions(source="vit5-small", std=(0.25,) * 3), "--std only preprocess --images"),
        (DebugOptions(source="vit5-small", rel_l2=math.nan), "--rel-l2 must be a finite number"),
        (DebugOptions(source="vit5-small", cosine=2.0), "--cosine must lie in [-1, 1]"),
        (DebugOptions(source="vit5-small", json_out=Path("report.txt")), "--json"),
    ],
)
def test_contradictory_or_unused_settings_are_refused(options, fragment):
    with pytest.raises(InputError) as info:
        check_debug_options(options)
    assert fragment in str(info.value)


def test_json_report_never_overwrites_an_input(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    with pytest.raises(InputError):
        check_debug_options(
            DebugOptions(source=str(tmp_path / "m.safetensors"), images=images, json_out=tmp_path / "m.safetensors")
        )


def test_valid_settings_pass(tmp_path):
    check_debug_options(
        DebugOptions(
            source="vit5-small",
            precision="bf16",
            target="tensorrt",
            opset=18,
            rel_l2=0.0,
            cosine=-1.0,
            json_out=tmp_path / "r.json",
        )
    )
    check_debug_options(DebugOptions(images=Path("imgs"), mean=(0.5,) * 3, **GRAPHS))


def test_bench_and_debug_see_the_same_images_for_one_seed(golden_dir):
    """The same --seed gave bench torch.randn images and debug numpy ones."""
    from vit5_infer import load_model
    from vit5_infer.workflows.benchmark.inputs import seeded_inputs as bench_inputs
    from vit5_infer.workflows.debug.inputs import seeded_inputs as debug_inputs

    model = load_model(golden_dir / "attn_cls_r4.safetensors")
    bench = bench_inputs(model, [1, 3], seed=7)
    debug = debug_inputs(tuple(model.input_shape), 3, seed=7)
    assert debug.dtype == np.float32 and debug.shape == (3, *model.input_shape)
    np.testing.assert_array_equal(bench[3], debug)
    np.testing.assert_array_equal(bench[1], debug[:1])  # a smaller batch is the first samples of a larger one
    assert not np.array_equal(debug, debug_inputs(tuple(model.input_shape), 3, seed=8))
