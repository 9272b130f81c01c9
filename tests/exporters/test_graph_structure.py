"""Structure of the exported graphs: fused ops per opset, no DFT, baked SIREN, ONNX checker."""

from __future__ import annotations

import json

import onnx
import pytest
from export_cases import ATTENTION_ONLY_CASES, FILM_CASES, GOLDEN, GOLDEN_CASES, PLAIN_HYENA_CASES, op_counts


def _pattern(name: str) -> str:
    return json.loads((GOLDEN / f"{name}.json").read_text())["network"]["layer_pattern"]


def test_case_groups_match_the_golden_architectures(golden_exports):
    for name in GOLDEN_CASES:
        spec = json.loads((GOLDEN / f"{name}.json").read_text())
        has_h = "H" in spec["network"]["layer_pattern"]
        film = spec.get("film") is not None
        assert (name in FILM_CASES) == (has_h and film)
        assert (name in PLAIN_HYENA_CASES) == (has_h and not film)
        assert (name in ATTENTION_ONLY_CASES) == (not has_h)
        assert golden_exports.model(name)[0].config.network.layer_pattern == spec["network"]["layer_pattern"]


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_opset23_one_attention_node_per_attention_block(golden_exports, name):
    ops = op_counts(onnx.load(str(golden_exports.export(name, opset=23).path)))
    assert ops["Attention"] == _pattern(name).count("A")
    assert ops["Softmax"] == 0  # the softmax lives inside Attention


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("name", ["attn_cls_r4", "hybrid_pool_film"])
def test_opset23_reduced_precision_keeps_one_attention_per_block(golden_exports, name, precision):
    ops = op_counts(onnx.load(str(golden_exports.export(name, opset=23, precision=precision).path)))
    assert ops["Attention"] == _pattern(name).count("A")


@pytest.mark.parametrize("opset", [18, 17])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_pre23_graphs_have_no_fused_opset23_ops(golden_exports, name, opset):
    model = onnx.load(str(golden_exports.export(name, opset=opset).path))
    ops = op_counts(model)
    assert ops["Attention"] == 0 and ops["RMSNormalization"] == 0
    assert model.opset_import[0].version == opset
    if "A" in _pattern(name):
        assert ops["Softmax"] == _pattern(name).count("A")


@pytest.mark.parametrize(
    "options",
    [
        dict(opset=23),
        dict(opset=18),
        dict(opset=17),
        dict(opset=23, precision="fp16"),
        dict(opset=18, precision="fp16"),
        dict(opset=23, precision="bf16"),
        dict(opset=23, layout="nhwc"),
    ],
    ids=lambda o: "-".join(str(v) for v in o.values()),
)
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_no_dft_in_default_graphs(golden_exports, name, options):
    model = onnx.load(str(golden_exports.export(name, **options).path))
    ops = op_counts(model, recursive=True)
    assert ops["DFT"] == 0 and ops["STFT"] == 0


@pytest.mark.parametrize("opset", [23, 18])
@pytest.mark.parametrize("lowering", ["scan", "direct"])  # "direct" with FiLM kernels means the Scan
@pytest.mark.parametrize("name", FILM_CASES)
def test_film_scan_body_has_conv_and_no_dft(golden_exports, name, lowering, opset):
    """The per-sample FiLM long convolution runs in a Scan whose body holds the Conv (not a DFT)."""
    model = onnx.load(str(golden_exports.export(name, opset=opset, lowering=lowering).path))
    assert op_counts(model)["DFT"] == 0
    scans = [n for n in model.graph.node if n.op_type == "Scan"]
    assert len(scans) == _pattern(name).count("H")
    for scan in scans:
        body = next(a.g for a in scan.attribute if a.name == "body")
        body_ops = {n.op_type for n in body.node}
        assert "Conv" in body_ops and "DFT" not in body_ops


LOWERING_VARIANTS = [
    dict(opset=23),
    dict(opset=18),
    dict(opset=23, lowering="direct"),
    dict(opset=23, lowering="spectral"),
    dict(opset=23, lowering="scan"),
]


@pytest.mark.parametrize("options", LOWERING_VARIANTS, ids=lambda o: "-".join(str(v) for v in o.values()))
@pytest.mark.parametrize("name", PLAIN_HYENA_CASES + ATTENTION_ONLY_CASES)
def test_no_sin_without_film(golden_exports, name, options):
    ops = op_counts(onnx.load(str(golden_exports.export(name, **options).path)))
    assert ops["Sin"] == 0 and ops["DFT"] == 0


@pytest.mark.parametrize("options", LOWERING_VARIANTS, ids=lambda o: "-".join(str(v) for v in o.values()))
@pytest.mark.parametrize("name", FILM_CASES)
def test_film_hyena_keeps_the_siren_sines(golden_exports, name, options):
    model = golden_exports.model(name)[0]
    ops = op_counts(onnx.load(str(golden_exports.export(name, **options).path)))
    assert ops["DFT"] == 0
    # One FiLM-modulated SIREN per Hyena block; at least its last hidden sine depends on the input.
    assert ops["Sin"] >= _pattern(name).count("H")
    assert ops["Sin"] <= _pattern(name).count("H") * model.config.hyena.kernel_num_layers


@pytest.mark.parametrize("name", PLAIN_HYENA_CASES)
def test_plain_hyena_direct_long_conv_is_one_depthwise_conv_per_block(golden_exports, name):
    model = onnx.load(str(golden_exports.export(name, opset=23, lowering="direct").path))
    h_blocks = _pattern(name).count("H")
    # patch embedding + (short conv + long conv) per Hyena block
    assert op_counts(model)["Conv"] == 1 + 2 * h_blocks
    assert op_counts(model)["Scan"] == 0


@pytest.mark.parametrize("name", PLAIN_HYENA_CASES)
def test_plain_hyena_default_long_conv_is_spectral_matmuls(golden_exports, name):
    result = golden_exports.export(name, opset=23)
    model = onnx.load(str(result.path))
    h_blocks = _pattern(name).count("H")
    # patch embedding + the short conv of each Hyena block; the long conv is DFT-as-GEMM
    assert op_counts(model)["Conv"] == 1 + h_blocks
    assert op_counts(model)["Scan"] == 0 and op_counts(model)["DFT"] == 0
    assert result.lowering["long_conv"].startswith("spectral")


CHECKED_VARIANTS = [
    dict(opset=23),
    dict(opset=18),
    dict(opset=17),
    dict(opset=23, precision="fp16"),
    dict(opset=18, precision="fp16"),
    dict(opset=17, precision="fp16"),
    dict(opset=23, precision="bf16"),
    dict(opset=23, layout="nhwc"),
    dict(opset=18, layout="nhwc"),
    dict(opset=17, layout="nhwc", precision="fp16"),
    dict(opset=23, batch=2),
    dict(opset=23, precision="fp16", io_dtype="fp16"),
    dict(opset=23, precision="bf16", io_dtype="bf16"),
]


@pytest.mark.parametrize("options", CHECKED_VARIANTS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_checker_and_strict_shape_inference(golden_exports, name, options):
    path = golden_exports.export(name, **options).path
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    out = inferred.graph.output[0].type.tensor_type.shape.dim
    assert out[1].dim_value == golden_exports.model(name)[0].config.network.num_classes


@pytest.mark.parametrize("opset", [18, 17])
def test_bf16_below_opset22_is_refused_up_front(golden_exports, tmp_path, opset):
    # ONNX Conv takes bfloat16 only from opset 22: the combination is refused by name, nothing written.
    from vit5_infer.exporters import ExportError, export_onnx

    model, source = golden_exports.model("attn_cls_r4")
    path = tmp_path / "bf16.onnx"
    with pytest.raises(ExportError, match=f"bf16 graphs need opset 23.*got opset {opset}"):
        export_onnx(model, path, opset=opset, precision="bf16", source=source)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_scan_lowering_report_matches_the_graph(golden_exports):
    result = golden_exports.export("hyena_gap", opset=23, lowering="scan")
    model = onnx.load(str(result.path))
    has_scan = op_counts(model)["Scan"] > 0
    described = result.lowering["long_conv"]
    assert ("Scan" in described) == has_scan, f"graph has Scan: {has_scan}; reported: {described!r}"
    from vit5_infer.exporters import read_metadata

    assert read_metadata(result.path)["lowering"]["long_conv"] == described


def _casts_beside(model: onnx.ModelProto, op_type: str) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(Cast, the node on its other side) for every Cast that feeds or reads an ``op_type`` node."""
    producers = {out: node for node in model.graph.node for out in node.output}
    readers: dict = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    pairs = []
    for node in model.graph.node:
        if node.op_type != op_type:
            continue
        cast = producers.get(node.input[0])
        if cast is not None and cast.op_type == "Cast":
            pairs.append((cast, producers.get(cast.input[0])))
        for cast in readers.get(node.output[0], []):
            if cast.op_type == "Cast":
                pairs.extend((cast, reader) for reader in readers.get(cast.output[0], []))
    return pairs


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_tensorrt_rms_normalization_runs_in_the_graph_precision_without_casts(golden_exports, name, precision):
    """The 10.15+ form: TensorRT's importer computes the statistics in stash_type (FP32) itself, so no
    Cast surrounds a norm except one joining it to a float32 island (a Hyena long convolution)."""
    from vit5_infer.exporters import build_graph
    from vit5_infer.exporters.graph import KEEP_FP32

    model, _ = build_graph(golden_exports.model(name)[0], precision=precision, target="tensorrt")
    norms = [n for n in model.graph.node if n.op_type == "RMSNormalization"]
    assert norms and not any(n.doc_string == KEEP_FP32 for n in norms)
    assert all(next(a.i for a in n.attribute if a.name == "stash_type") == 1 for n in norms)
    pairs = _casts_beside(model, "RMSNormalization")
    assert all(other is not None and other.doc_string == KEEP_FP32 for _, other in pairs), [
        (c.name, getattr(o, "name", None)) for c, o in pairs
    ]
    if "H" not in _pattern(name):
        assert pairs == []
    # The ONNX Runtime form keeps its measured FP32 island (one Cast in, one out per norm at least).
    ort_model, _ = build_graph(golden_exports.model(name)[0], precision=precision)
    assert len(_casts_beside(ort_model, "RMSNormalization")) >= len(norms)


def test_tensorrt_fp16_rms_normalization_validates_against_pytorch(golden_exports):
    """ORT CPU runs the FP16 RMSNormalization with FP32 statistics: the 10.15+ FP16 graph still meets the
    fp16 tolerance against PyTorch FP32 (the export's own validation)."""
    for name in ("hyena_gap", "attn_cls_r4"):
        result = golden_exports.export(name, precision="fp16", target="tensorrt")
        assert result.validation.passed, result.validation.reason
        ops = op_counts(onnx.load(str(result.path)))
        assert ops["RMSNormalization"] > 0


def _qk_rmsnorm_model(seed: int = 0):
    import torch

    from vit5_infer.config import ViT5Config
    from vit5_infer.network import ViT5ClassificationNet

    spec = json.loads((GOLDEN / "attn_gap_r0_bias.json").read_text())
    spec["attention"]["qk_norm"] = "rmsnorm"
    torch.manual_seed(seed)
    model = ViT5ClassificationNet(ViT5Config.from_dict(spec)).eval()
    with torch.no_grad():
        for block in model.blocks:  # a real (non-unit) QK-norm weight, which the RoPE tables absorb
            for norm in (block.sequence_mixer.q_norm, block.sequence_mixer.k_norm):
                norm.weight.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("opset", [18, 17])
def test_primitive_qk_norm_has_no_all_ones_weight(tmp_path, opset):
    """The QK norm's weight lives in the RoPE tables; the primitive RMSNorm of q/k multiplies by nothing."""
    from vit5_infer.exporters import export_onnx

    model = _qk_rmsnorm_model()
    result = export_onnx(model, tmp_path / "qk.onnx", opset=opset)
    assert result.validation.passed, result.validation.reason
    graph = onnx.load(str(result.path)).graph
    assert not [i.name for i in graph.initializer if "qk_norm" in i.name]
    muls = [n for n in graph.node if n.op_type == "Mul" and "sequence_mixer" in n.name]
    # per attention block: x * x and x * inv_rms of the QK norm, and the two RoPE products with their tables
    assert len(muls) == 4 * model.config.network.layer_pattern.count("A")


def test_fused_qk_norm_keeps_the_required_scale_input():
    from vit5_infer.exporters import build_graph

    graph, _ = build_graph(_qk_rmsnorm_model(), opset=23)
    qk_norms = [n for n in graph.graph.node if n.op_type == "RMSNormalization" and "qk_norm" in n.input[1]]
    assert len(qk_norms) == 2


def _add_with_2_kib_weight():
    """A one-Add model whose weight (512 ones) is large enough to be stored externally."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [512])],
        [numpy_helper.from_array(np.ones(512, np.float32), "w")],
    )
    return helper.make_model(graph)


def _saved_weight(path) -> list:
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(onnx.load(str(path)).graph.initializer[0]).tolist()


def test_save_graph_writes_external_weights_whatever_the_working_directory_holds(tmp_path, monkeypatch):
    """onnx's own external-data conversion refuses when a file of the data file's name exists in the *working
    directory*; save_graph marks the tensors itself, so converting a graph from its own folder works."""
    from vit5_infer.exporters.graph import save_graph

    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.fp16.onnx.data").write_bytes(b"someone else's")
    out = tmp_path / "work" / "g.fp16.onnx"
    out.parent.mkdir()
    assert save_graph(_add_with_2_kib_weight(), out, external=True)
    assert _saved_weight(out) == [1.0] * 512
    assert (tmp_path / "g.fp16.onnx.data").read_bytes() == b"someone else's"


def test_save_graph_replaces_a_data_file_left_from_an_earlier_save(tmp_path):
    from vit5_infer.exporters.graph import save_graph

    out = tmp_path / "g.onnx"
    for _ in range(2):
        save_graph(_add_with_2_kib_weight(), out, external=True)
    assert (tmp_path / "g.onnx.data").stat().st_size == 2048
    assert _saved_weight(out) == [1.0] * 512


def test_save_graph_keeps_the_data_file_its_unread_tensors_point_at(tmp_path):
    """A graph read without its external data and saved over itself still needs its data file: it is kept."""
    import onnx

    from vit5_infer.exporters.graph import save_graph

    out = tmp_path / "g.onnx"
    save_graph(_add_with_2_kib_weight(), out, external=True)
    save_graph(onnx.load(str(out), load_external_data=False), out, external=True)
    assert _saved_weight(out) == [1.0] * 512
