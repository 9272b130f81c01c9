"""FP16 / BF16 graphs: accuracy on ORT CPU, float32 islands, IO types, convert_precision."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
from export_cases import FILM_CASES, GOLDEN, GOLDEN_CASES, PLAIN_HYENA_CASES, cosine, elem_types, load_golden_io
from onnx import TensorProto

from vit5_infer.exporters import convert_precision, graph_precision
from vit5_infer.exporters.graph import KEEP_FP32
from vit5_infer.exporters.precision import emulate_in_fp32

FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}


def _load(golden_exports, name, **options) -> onnx.ModelProto:
    return onnx.load(str(golden_exports.export(name, **options).path))


def _io_types(model: onnx.ModelProto) -> tuple[int, int]:
    return model.graph.input[0].type.tensor_type.elem_type, model.graph.output[0].type.tensor_type.elem_type


# ---- FP16 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [23, 18])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_fp16_close_to_fp32_on_golden_inputs(golden_exports, name, opset):
    pixels, upstream = load_golden_io(name)
    fp32 = golden_exports.run(golden_exports.export(name, opset=opset).path, pixels)
    result = golden_exports.export(name, opset=opset, precision="fp16")
    fp16 = golden_exports.run(result.path, pixels)
    assert fp16.dtype == np.float32
    assert cosine(fp16, fp32) >= 0.999
    assert np.array_equal(fp16.argmax(-1), fp32.argmax(-1))
    assert np.array_equal(fp16.argmax(-1), upstream.argmax(-1))
    assert result.validation.passed is True and result.validation.precision == "fp16"


@pytest.mark.parametrize("opset", [23, 18])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_fp16_graph_is_really_fp16_with_fp32_io(golden_exports, name, opset):
    model = _load(golden_exports, name, opset=opset, precision="fp16")
    assert _io_types(model) == (TensorProto.FLOAT, TensorProto.FLOAT)
    assert graph_precision(model) == "fp16"
    _assert_weights_follow_regions(model, TensorProto.FLOAT16)
    types = elem_types(model)
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.doc_string != KEEP_FP32]
    assert matmuls and all(types[n.input[0]] == TensorProto.FLOAT16 for n in matmuls)


def _assert_weights_follow_regions(model, reduced):
    """Float weights read by reduced-precision nodes are stored reduced; FP32 ones only feed KEEP_FP32 nodes."""
    floats = {TensorProto.FLOAT, reduced}
    inits = {i.name: i.data_type for i in model.graph.initializer if i.data_type in floats}
    readers = {}
    for node in model.graph.node:
        for name in node.input:
            if name in inits:
                readers.setdefault(name, set()).add(node.doc_string == KEEP_FP32)
    reduced_values = 0
    for init in model.graph.initializer:
        if init.name not in readers:
            continue
        if readers[init.name] == {False}:
            assert init.data_type == reduced, f"{init.name} feeds reduced-precision nodes but is stored as FP32"
            reduced_values += int(np.prod(init.dims))
        elif init.data_type == TensorProto.FLOAT:
            assert True in readers[init.name], f"{init.name} is FP32 but no KEEP_FP32 node reads it"
    # The projection weights are among them: something substantial is stored in reduced precision.
    assert reduced_values > 1000


def _keep_fp32_nodes(model):
    return [n for n in model.graph.node if n.doc_string == KEEP_FP32]


def _check_keep_fp32(model, name, opset, lowering):
    from vit5_infer.exporters.long_conv import choose

    types = elem_types(model)
    tagged = _keep_fp32_nodes(model)
    for node in tagged:
        for name_in in node.input:
            if name_in and types.get(name_in) in FLOAT_TYPES:
                assert types[name_in] == TensorProto.FLOAT, (
                    f"{node.op_type} {node.name} reads {name_in} as {TensorProto.DataType.Name(types[name_in])}"
                )
        for out in node.output:
            if types.get(out) in FLOAT_TYPES:
                assert types[out] == TensorProto.FLOAT, f"{node.name} writes {out}"
    kinds = Counter(n.op_type for n in tagged)
    pattern = golden_pattern(name)
    hyena_blocks = pattern.count("H")
    every = Counter(n.op_type for n in model.graph.node)
    # What must be in the float32 islands:
    assert kinds["Sin"] == every["Sin"], "every SIREN sine stays float32"
    assert kinds["Softmax"] == every["Softmax"]
    assert kinds["Scan"] == every["Scan"]
    if hyena_blocks:
        method = choose(lowering, name in FILM_CASES)
        if method == "scan" and name not in FILM_CASES:
            method = "direct"  # a shared baked kernel needs no per-sample Scan (see test_scan_lowering_report)
        if method == "direct":
            assert kinds["Conv"] == hyena_blocks  # not the short convs nor the patch embedding
        elif method == "scan":
            assert kinds["Scan"] == hyena_blocks
        else:  # spectral: the DFT matrix products of the long convolution
            long_conv_matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and "long_conv" in n.name]
            assert len(long_conv_matmuls) >= 4 * hyena_blocks
            assert all(n.doc_string == KEEP_FP32 for n in long_conv_matmuls)
    if name in FILM_CASES:
        assert kinds["Sin"] >= hyena_blocks
    if opset < 23:
        assert kinds["Softmax"] == pattern.count("A")
        # RMSNorm decomposition: ReduceMean -> Sqrt -> Reciprocal, one per norm
        assert kinds["Reciprocal"] == every["Reciprocal"] > 0
        assert kinds["Sqrt"] == every["Sqrt"] and kinds["ReduceMean"] >= kinds["Reciprocal"]
    else:
        assert every["RMSNormalization"] > 0 and every["Softmax"] == 0


@pytest.mark.parametrize("opset,precision", [(23, "fp16"), (18, "fp16"), (17, "fp16"), (23, "bf16")])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_keep_fp32_nodes_compute_in_float32(golden_exports, name, opset, precision):
    _check_keep_fp32(_load(golden_exports, name, opset=opset, precision=precision), name, opset, "auto")


@pytest.mark.parametrize("lowering", ["direct", "spectral", "scan"])
@pytest.mark.parametrize("name", PLAIN_HYENA_CASES + FILM_CASES)
def test_keep_fp32_for_every_long_conv_lowering(golden_exports, name, lowering):
    result = golden_exports.export(name, opset=23, precision="fp16", lowering=lowering)
    _check_keep_fp32(onnx.load(str(result.path)), name, 23, lowering)
    pixels, upstream = load_golden_io(name)
    out = golden_exports.run(result.path, pixels)
    assert cosine(out, upstream) >= 0.999 and np.array_equal(out.argmax(-1), upstream.argmax(-1))


def golden_pattern(name):
    return json.loads((GOLDEN / f"{name}.json").read_text())["network"]["layer_pattern"]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("name", ["attn_cls_r4", "attn_gap_r0_bias", "hybrid_pool_film"])
def test_attention_has_no_softmax_precision(golden_exports, name, precision):
    # TensorRT's parser rejects any Attention node carrying softmax_precision (onnxOpCheckers.cpp).
    model = _load(golden_exports, name, opset=23, precision=precision)
    attention = [n for n in model.graph.node if n.op_type == "Attention"]
    assert attention
    for node in attention:
        assert "softmax_precision" not in {a.name for a in node.attribute}


@pytest.mark.parametrize("name", ["attn_cls_r4", "hyena_gap", "hybrid_pool_film"])
def test_fp16_io_dtype(golden_exports, name):
    result = golden_exports.export(name, opset=23, precision="fp16", io_dtype="fp16")
    model = onnx.load(str(result.path))
    assert _io_types(model) == (TensorProto.FLOAT16, TensorProto.FLOAT16)
    pixels, upstream = load_golden_io(name)
    out = golden_exports.run(result.path, pixels.astype(np.float16))
    assert out.dtype == np.float16
    assert cosine(out, upstream) >= 0.999
    assert np.array_equal(out.astype(np.float32).argmax(-1), upstream.argmax(-1))
    assert result.metadata["io_dtype"] == "fp16"


# ---- BF16 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_bf16_weights_and_emulated_validation(golden_exports, name):
    result = golden_exports.export(name, opset=23, precision="bf16")
    model = onnx.load(str(result.path))
    assert graph_precision(model) == "bf16"
    kinds = Counter(init.data_type for init in model.graph.initializer)
    assert kinds[TensorProto.BFLOAT16] > 0 and kinds[TensorProto.FLOAT16] == 0
    _assert_weights_follow_regions(model, TensorProto.BFLOAT16)
    assert _io_types(model) == (TensorProto.FLOAT, TensorProto.FLOAT)
    v = result.validation
    assert v.passed is True and v.precision == "bf16"
    assert "emulat" in v.method.lower()


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_bf16_emulation_runs_on_golden_inputs(golden_exports, name):
    import onnxruntime as ort

    model = _load(golden_exports, name, opset=23, precision="bf16")
    emulated = emulate_in_fp32(model)
    assert all(i.data_type != TensorProto.BFLOAT16 for i in emulated.graph.initializer)
    session = ort.InferenceSession(emulated.SerializeToString(), providers=["CPUExecutionProvider"])
    pixels, upstream = load_golden_io(name)
    out = session.run(["logits"], {"pixel_values": pixels})[0]
    assert cosine(out, upstream) >= 0.995
    # it is not secretly the float32 graph: BF16 rounding shows
    assert np.abs(out - upstream).max() > 1e-5


def test_bf16_io_dtype(golden_exports):
    result = golden_exports.export("hybrid_pool_film", opset=23, precision="bf16", io_dtype="bf16")
    model = onnx.load(str(result.path))
    assert _io_types(model) == (TensorProto.BFLOAT16, TensorProto.BFLOAT16)
    assert result.validation.passed is True


# ---- convert_precision -----------------------------------------------------------------------------
def _structure(model: onnx.ModelProto) -> dict:
    from export_cases import op_counts

    attention = sorted(
        tuple(sorted((a.name, a.i) for a in n.attribute if a.type == onnx.AttributeProto.INT))
        for n in model.graph.node
        if n.op_type == "Attention"
    )
    casts = Counter(next(a.i for a in n.attribute if a.name == "to") for n in model.graph.node if n.op_type == "Cast")
    return {
        "ops": op_counts(model),
        "initializers": sorted((i.name, i.data_type, tuple(i.dims)) for i in model.graph.initializer),
        "io": _io_types(model),
        "attention": attention,
        "casts": casts,
        "keep_fp32": Counter(n.op_type for n in model.graph.node if n.doc_string == KEEP_FP32),
    }


@pytest.mark.parametrize("opset,precision", [(23, "fp16"), (18, "fp16"), (17, "fp16"), (23, "bf16")])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_convert_precision_equals_direct_export(golden_exports, name, opset, precision):
    fp32 = _load(golden_exports, name, opset=opset)
    converted = convert_precision(fp32, precision)
    direct = _load(golden_exports, name, opset=opset, precision=precision)
    assert _structure(converted) == _structure(direct)
    assert graph_precision(converted) == precision
    assert graph_precision(fp32) == "fp32"
    if precision == "fp16":
        pixels, _ = load_golden_io(name)
        import onnxruntime as ort

        session = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
        out = session.run(["logits"], {"pixel_values": pixels})[0]
        np.testing.assert_allclose(
            out,
            golden_exports.run(golden_exports.export(name, opset=opset, precision=precision).path, pixels),
            rtol=0,
            atol=1e-6,
        )


def test_convert_precision_does_not_modify_its_input(golden_exports):
    fp32 = _load(golden_exports, "hybrid_pool_film", opset=18)
    before = fp32.SerializeToString()
    convert_precision(fp32, "fp16")
    assert fp32.SerializeToString() == before


def test_convert_precision_of_untagged_graph_keeps_sensitive_ops_fp32(golden_exports):
    """A graph without KEEP_FP32 tags (from elsewhere): softmax, sines, norm statistics stay float32."""
    model = _load(golden_exports, "hybrid_pool_film", opset=18)
    model.producer_name = "elsewhere"  # ours name themselves, and their tags are read even when there are none
    for node in model.graph.node:
        node.doc_string = ""
    converted = convert_precision(model, "fp16")
    types = elem_types(converted)
    checked = 0
    for node in converted.graph.node:
        if node.op_type in ("Softmax", "Sin", "Scan", "Sqrt", "Reciprocal", "ReduceMean"):
            for i in node.input:
                if types.get(i) in FLOAT_TYPES:
                    assert types[i] == TensorProto.FLOAT, (node.op_type, node.name)
                    checked += 1
    assert checked > 0
    assert graph_precision(converted) == "fp16"


def test_graph_at_precision_converts_float_and_keeps_quantized_graphs(golden_exports, tmp_path):
    from vit5_infer.exporters.precision import PrecisionError, graph_at_precision

    fp32 = golden_exports.export("attn_cls_r4").path
    path, precision, _ = graph_at_precision(fp32, "fp16", tmp_path)
    assert precision == "fp16" and path != fp32 and path.is_file()
    with pytest.raises(
        PrecisionError, match="cannot convert .* to int8; .*'vit5 export SOURCE --precision int8 --target"
    ):
        graph_at_precision(fp32, "int8", tmp_path)  # quantizing needs calibration: vit5 export --precision int8
    fp16 = golden_exports.export("attn_cls_r4", precision="fp16").path
    with pytest.raises(PrecisionError, match="already an fp16 graph; build it with --fp16"):
        graph_at_precision(fp16, "bf16", tmp_path)


@pytest.mark.parametrize(
    "have, asked, fragment",
    [
        ("fp32", "int8", "cannot convert m.onnx to int8"),
        ("fp16", "bf16", "already an fp16 graph; build it with --fp16"),
        ("int8", "fp16", "m.onnx is an int8 graph; build it with --int8"),
        ("int8", "fp8", "m.onnx is an int8 graph; build it with --int8"),
        ("fp16", "fp32", "m.onnx is an fp16 graph; build it with --fp16"),
    ],
)
def test_check_build_precision_names_the_flag_that_fits(have, asked, fragment):
    """Decided from the recorded precision alone, so build-engine can say it before TensorRT is loaded;
    a quantized graph given --fp16 was built as the quantized graph without a word."""
    from vit5_infer.exporters.precision import PrecisionError, check_build_precision

    with pytest.raises(PrecisionError) as caught:
        check_build_precision("m.onnx", have, asked)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "have, asked",
    [
        ("fp32", "fp32"),
        ("fp32", "fp16"),
        ("fp32", "bf16"),
        ("fp16", "fp16"),
        ("int8", "int8"),
        ("int8", "fp32"),
        ("fp8", "fp8"),
    ],
)
def test_check_build_precision_lets_buildable_pairs_through(have, asked):
    from vit5_infer.exporters.precision import check_build_precision

    check_build_precision("m.onnx", have, asked)


def _graph_with_weight_beside(folder, size: int = 1):
    """A one-Add graph whose weight, ``size`` times 1.5, is external data in w.bin beside it."""
    from onnx_graphs import graph_with_external_data

    path = graph_with_external_data(folder, "w.bin", size)
    (folder / "w.bin").write_bytes(np.full(size, 1.5, np.float32).tobytes())
    return path


def test_graph_at_precision_reads_external_weights_only_to_convert(tmp_path):
    """A graph built as it is is returned with its weights left on disk for TensorRT's parser; a converted
    one has its weights read in (once, into a copy: the GraphFile's graph stays as read)."""
    from onnx.external_data_helper import uses_external_data

    from vit5_infer.exporters.precision import graph_at_precision
    from vit5_infer.graph_metadata import GraphFile

    graph = GraphFile.read(_graph_with_weight_beside(tmp_path / "model", size=512))  # 2 KiB: a weight
    path, precision, model = graph_at_precision(graph, "fp32", tmp_path)
    assert (path, precision) == (graph.path, "fp32") and model is graph.model
    assert uses_external_data(model.graph.initializer[0])
    path, precision, converted = graph_at_precision(graph, "fp16", tmp_path)
    assert path == tmp_path / "g.fp16.onnx" and precision == "fp16"
    assert onnx.numpy_helper.to_array(converted.graph.initializer[0]).tolist() == [1.5] * 512
    assert onnx.numpy_helper.to_array(onnx.load(str(path)).graph.initializer[0]).dtype == np.float16
    assert uses_external_data(graph.model.graph.initializer[0])


def test_graph_at_precision_reads_small_external_tensors_for_shape_inference(tmp_path):
    """A graph saved with every tensor external (onnx's size_threshold=0) keeps its shape constants readable:
    the build's attention report infers shapes from the graph returned, and a Reshape whose target shape sits
    on disk would leave every shape after it unknown."""
    from onnx.external_data_helper import uses_external_data

    from vit5_infer.exporters.precision import graph_at_precision
    from vit5_infer.graph_metadata import GraphFile

    graph = GraphFile.read(_graph_with_weight_beside(tmp_path / "model", size=4))
    path, _, model = graph_at_precision(graph, "fp32", tmp_path)
    assert path == graph.path and model is not graph.model
    assert onnx.numpy_helper.to_array(model.graph.initializer[0]).tolist() == [1.5] * 4
    assert uses_external_data(graph.model.graph.initializer[0])  # the read graph is left as it was


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_tensor_without_length_in_a_shared_file_is_refused(tmp_path, precision):
    """Without a 'length', onnx.load reads a tensor to the end of its file and TensorRT's parser reads the whole
    file: two tensors in one file then fit neither, refused in one line before TensorRT (as it is, or converted)."""
    from vit5_infer.exporters.precision import PrecisionError, graph_at_precision

    path = _graph_with_weight_beside(tmp_path / "model", size=512)
    with open(path.parent / "w.bin", "ab") as data:
        data.write(np.float32([7.0] * 512).tobytes())  # a second tensor's bytes after the first's
    words = "reads all 4096 bytes of w.bin" if precision == "fp32" else "has 4096 bytes, its shape needs 2048"
    with pytest.raises(PrecisionError, match=words):
        graph_at_precision(path, precision, tmp_path)


def test_a_tensor_without_length_past_offset_0_is_refused_where_tensorrt_reads_it(tmp_path):
    """TensorRT's parser reads a tensor without 'length' as the whole file from its offset: at offset 64 that
    overruns even when the rest of the file is exactly the tensor's size (which onnx.load accepts); a converted
    graph is saved again, so only the graph built as it is is refused."""
    from vit5_infer.exporters.precision import PrecisionError, graph_at_precision

    path = _graph_with_weight_beside(tmp_path / "model", size=512)
    data = path.parent / "w.bin"
    data.write_bytes(bytes(64) + data.read_bytes())
    model = onnx.load(str(path), load_external_data=False)
    model.graph.initializer[0].external_data.add(key="offset", value="64")
    onnx.save(model, str(path))
    with pytest.raises(PrecisionError, match="from offset 64; its shape needs 2048"):
        graph_at_precision(path, "fp32", tmp_path)
    assert graph_at_precision(path, "fp16", tmp_path)[1] == "fp16"


def test_an_external_length_that_is_not_the_tensors_size_is_refused(tmp_path):
    """TensorRT's parser fails on a 'length' other than the tensor's size, after the GPU is set up."""
    from vit5_infer.exporters.precision import PrecisionError, graph_at_precision

    path = _graph_with_weight_beside(tmp_path / "model", size=512)
    model = onnx.load(str(path), load_external_data=False)
    model.graph.initializer[0].external_data.add(key="length", value="1024")
    onnx.save(model, str(path))
    with pytest.raises(PrecisionError, match="external-data length 1024; its shape needs 2048 bytes"):
        graph_at_precision(path, "fp32", tmp_path)


@pytest.mark.parametrize("key, refused", [("basepath", True), ("checksum", False)])
def test_external_data_keys_tensorrt_fails_on_are_refused_when_built_as_is(tmp_path, key, refused):
    """onnx tolerates a 'basepath' (and warns of unknown keys); TensorRT's weights reader fails the parse on any
    key but location, offset, length and checksum.  A converted graph is saved again without it."""
    from vit5_infer.exporters.precision import PrecisionError, graph_at_precision

    path = _graph_with_weight_beside(tmp_path / "model", size=512)
    model = onnx.load(str(path), load_external_data=False)
    model.graph.initializer[0].external_data.add(key=key, value=".")
    onnx.save(model, str(path))
    if refused:
        with pytest.raises(PrecisionError, match=f"tensor 'w' has the external-data key '{key}'"):
            graph_at_precision(path, "fp32", tmp_path)
    else:
        assert graph_at_precision(path, "fp32", tmp_path)[0] == path
    converted = onnx.load(str(graph_at_precision(path, "fp16", tmp_path)[0]), load_external_data=False)
    assert not any(entry.key == key for t in converted.graph.initializer for entry in t.external_data)


def test_external_constants_of_local_functions_are_read_into_the_copy(tmp_path):
    """A Constant inside a model-local function, stored externally, is read in like the graph's own tensors."""
    from onnx import TensorProto, helper

    from vit5_infer.exporters.precision import graph_at_precision

    constant = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.FLOAT, [4], [2.0] * 4))
    function = helper.make_function(
        "local",
        "AddC",
        ["x"],
        ["y"],
        [constant, helper.make_node("Add", ["x", "c"], ["y"])],
        [helper.make_opsetid("", 18)],
    )
    graph = helper.make_graph(
        [helper.make_node("AddC", ["x"], ["y"], domain="local")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(
        graph, functions=[function], opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("local", 1)]
    )
    tmp_path.joinpath("model").mkdir()
    path = tmp_path / "model" / "f.onnx"
    (tmp_path / "model" / "c.bin").write_bytes(np.float32([2.0] * 4).tobytes())
    value = model.functions[0].node[0].attribute[0].t  # onnx.save_model leaves function tensors inline
    value.ClearField("float_data")
    value.data_location = TensorProto.EXTERNAL
    value.external_data.add(key="location", value="c.bin")
    onnx.save(model, str(path))
    out, precision, converted = graph_at_precision(path, "fp16", tmp_path)
    read = converted.functions[0].node[0].attribute[0].t
    assert precision == "fp16" and read.data_location == TensorProto.DEFAULT
    _, _, as_is = graph_at_precision(path, "fp32", tmp_path)
    assert as_is.functions[0].node[0].attribute[0].t.data_location == TensorProto.DEFAULT


@pytest.mark.parametrize(
    "type_name, count, size",
    [
        ("FLOAT", 15, 60),
        ("BOOL", 15, 15),
        ("INT4", 15, 8),
        ("INT2", 15, 4),
        ("FLOAT6E2M3", 15, 12),
        ("STRING", 3, None),
    ],
)
def test_byte_sizes_follow_onnx_packing(type_name, count, size):
    from onnx import TensorProto

    from vit5_infer.exporters.precision import _byte_size

    if not hasattr(TensorProto, type_name):
        pytest.skip(f"this onnx has no {type_name}")
    tensor = TensorProto(data_type=getattr(TensorProto, type_name), dims=[count])
    assert _byte_size(tensor) == size
    assert _byte_size(TensorProto(data_type=TensorProto.UNDEFINED, dims=[count])) is None


@pytest.mark.parametrize(
    "problem", ["missing", "symbolic link", "linked folder", "hard link", "folder", "offset past the end"]
)
def test_graph_at_precision_refuses_unreadable_weights_in_onnx_words(tmp_path, problem):
    """Weights that onnx.load would refuse are refused before TensorRT even where the graph is built as it is
    (its weights unread), in the words of onnx.load itself."""
    import os

    from vit5_infer.exporters.precision import PrecisionError, graph_at_precision

    path = _graph_with_weight_beside(tmp_path / "model")
    data = path.parent / "w.bin"
    if problem in ("missing", "folder"):
        data.unlink()
        if problem == "folder":
            data.mkdir()
    elif problem == "symbolic link":
        data.rename(path.parent / "real.bin")
        os.symlink("real.bin", data)
    elif problem == "linked folder":
        (path.parent / "real").mkdir()
        data.rename(path.parent / "real" / "w.bin")
        os.symlink("real", path.parent / "linked")
        model = onnx.load(str(path), load_external_data=False)
        model.graph.initializer[0].external_data[0].value = "linked/w.bin"
        onnx.save(model, str(path))
    elif problem == "hard link":
        os.link(data, path.parent / "real.bin")
    else:
        model = onnx.load(str(path), load_external_data=False)
        model.graph.initializer[0].external_data.add(key="offset", value="64")
        onnx.save(model, str(path))
    with pytest.raises(Exception) as loading:
        onnx.load(str(path))
    with pytest.raises(PrecisionError) as building:
        graph_at_precision(path, "fp32", tmp_path)
    assert str(building.value) == f"{path}: not a readable ONNX model ({str(loading.value).splitlines()[0]})"
