"""vit5 triton-repo's library: config.pbtxt for ONNX and engine models, read back with Triton's own
ModelConfig message (tritonclient) where it is installed."""

from __future__ import annotations

import importlib.util
import warnings

import pytest

from vit5_infer.workflows.serving import RepositoryError, parse_model_config, write_model_repository
from vit5_infer.workflows.serving.model_repository import Enum, RepositoryOptions, to_pbtxt

from cli_runner import run_vit5

needs_tritonclient = pytest.mark.skipif(
    importlib.util.find_spec("tritonclient") is None,
    reason="reading config.pbtxt back needs tritonclient's ModelConfig: pip install 'vit5-infer[serve]'",
)


def read_config(result):
    return parse_model_config(result.config_path.read_text())


@needs_tritonclient
def test_onnx_model_config_parses_and_says_what_the_graph_says(digits_onnx, tmp_path):
    result = write_model_repository(
        digits_onnx, tmp_path / "repo", options=RepositoryOptions(instances=2, preferred_batch_sizes=(4, 8))
    )
    assert result.validated
    assert result.model_dir == tmp_path / "repo" / "digits"
    assert (result.model_dir / "1" / "model.onnx").read_bytes() == digits_onnx.read_bytes()
    config = read_config(result)
    assert config.name == "digits" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 8
    (pixel,) = config.input
    assert (pixel.name, list(pixel.dims)) == ("pixel_values", [3, 32, 32])
    assert pixel.data_type == 11  # TYPE_FP32
    (logits,) = config.output
    assert (logits.name, list(logits.dims), logits.data_type) == ("logits", [10], 11)
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    (group,) = config.instance_group
    assert group.count == 2 and group.kind == 2  # KIND_CPU
    assert [(w.name, w.batch_size) for w in config.model_warmup] == [("zeros_batch_1", 1), ("zeros_batch_8", 8)]
    warm = config.model_warmup[0].inputs["pixel_values"]
    assert list(warm.dims) == [3, 32, 32] and warm.zero_data and warm.data_type == 11
    assert not list(tmp_path.joinpath("repo").glob(".*")), "staging folders must not stay behind"


@needs_tritonclient
def test_gpu_onnx_model_with_the_tensorrt_accelerator(digits_onnx, tmp_path):
    options = RepositoryOptions(kind="gpu", gpus=(0, 1), tensorrt_accelerator="fp16", max_batch=32)
    config = read_config(write_model_repository(digits_onnx, tmp_path, name="digits-trt", options=options))
    assert config.max_batch_size == 32
    (group,) = config.instance_group
    assert group.kind == 1 and list(group.gpus) == [0, 1]  # KIND_GPU
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"


@needs_tritonclient
def test_engine_model_config(digits_engine, tmp_path):
    engine = tmp_path / "digits.plan"
    digits_engine(engine, precision="fp32")
    result = write_model_repository(engine, tmp_path / "repo")
    config = read_config(result)
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 16
    assert config.instance_group[0].kind == 1  # KIND_GPU
    assert (result.model_dir / "1" / "model.plan").read_bytes() == engine.read_bytes()
    assert (result.model_dir / "1" / "model.plan.json").is_file()
    with pytest.raises(RepositoryError, match="only on GPU instances"):
        write_model_repository(engine, tmp_path / "repo2", options=RepositoryOptions(kind="cpu"))


def test_a_version_compatible_plan_says_how_triton_must_start(digits_engine, tmp_path):
    """Triton's TensorRT backend lets an engine run its embedded host code only with
    --backend-config=tensorrt,version-compatible=true."""
    engine = tmp_path / "digits.plan"
    for flags, warns in [({"version_compatible": True}, True), ({}, False)]:
        digits_engine(engine, precision="fp32", build_flags=flags)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            write_model_repository(engine, tmp_path / f"repo{warns}")
        said = [str(w.message) for w in caught if "version-compatible=true" in str(w.message)]
        assert bool(said) is warns


@needs_tritonclient
def test_static_batch_graph_is_a_non_batching_model(digits_dir, tmp_path):
    from vit5_infer import resolve_model
    from vit5_infer.exporters import export_onnx

    model, origin = resolve_model(digits_dir / "digits_attn.safetensors")
    path = export_onnx(model, tmp_path / "static.onnx", batch=2, source=origin).path
    config = read_config(write_model_repository(path, tmp_path / "repo"))
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [2, 3, 32, 32]
    assert list(config.output[0].dims) == [2, 10]
    assert not config.HasField("dynamic_batching")


def test_external_weights_travel_with_the_graph(digits_dir, tmp_path):
    from vit5_infer import resolve_model
    from vit5_infer.exporters import export_onnx

    model, origin = resolve_model(digits_dir / "digits_attn.safetensors")
    path = export_onnx(model, tmp_path / "ext.onnx", external_data=True, source=origin, validate=False).path
    result = write_model_repository(path, tmp_path / "repo")
    assert (result.model_dir / "1" / "ext.onnx.data").read_bytes() == (tmp_path / "ext.onnx.data").read_bytes()
    import onnxruntime as ort

    session = ort.InferenceSession(str(result.model_file), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits"]


def test_a_checkpoint_is_exported_into_the_repository_at_the_asked_opset(digits_dir, tmp_path):
    import onnx

    result = write_model_repository(digits_dir / "digits_attn.safetensors", tmp_path, opset=17)
    assert result.model_file == tmp_path / "digits_attn" / "1" / "model.onnx"
    model = onnx.load(str(result.model_file), load_external_data=False)
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_attn"]  # no export scratch left


def test_existing_model_is_replaced_only_with_force(digits_onnx, tmp_path):
    first = write_model_repository(digits_onnx, tmp_path, options=RepositoryOptions(instances=1))
    with pytest.raises(RepositoryError, match="already exists; pass --force"):
        write_model_repository(digits_onnx, tmp_path)
    second = write_model_repository(digits_onnx, tmp_path, options=RepositoryOptions(instances=3), force=True)
    assert second.model_dir == first.model_dir
    assert "count: 3" in second.config_path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits"]


@pytest.mark.parametrize(
    "options, message",
    [
        (RepositoryOptions(tensorrt_accelerator="fp16"), "GPU instances"),
        (RepositoryOptions(kind="tpu"), "cpu or gpu"),
        (RepositoryOptions(kind="gpu", tensorrt_accelerator="int8"), "precision must be fp32 or fp16, got 'int8'"),
        (RepositoryOptions(instances=0), "instances must be >= 1"),
        (RepositoryOptions(preferred_batch_sizes=(4, 64)), "[64] lie outside 1..8"),
        (RepositoryOptions(max_queue_delay_us=-1), "max queue delay"),
    ],
)
def test_bad_options_write_nothing(digits_onnx, tmp_path, options, message):
    with pytest.raises(RepositoryError) as info:
        write_model_repository(digits_onnx, tmp_path / "repo", options=options)
    assert message in str(info.value)
    assert not (tmp_path / "repo").exists()  # not even an empty repository folder


@pytest.mark.parametrize("source", ["missing.onnx", "missing.engine", "garbage.safetensors"])
def test_a_failed_model_leaves_no_new_folders(tmp_path, source):
    """The repository (and its missing parents) is created only once the source is found and loaded."""
    (tmp_path / "garbage.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception) as info:
        write_model_repository(tmp_path / source, tmp_path / "new" / "repo")
    assert "Vit5Error" in [c.__name__ for c in type(info.value).__mro__]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.safetensors"]


def test_an_existing_repository_stays_after_a_failure(tmp_path):
    (tmp_path / "repo").mkdir()
    with pytest.raises(RepositoryError):
        write_model_repository(tmp_path / "missing.onnx", tmp_path / "repo")
    assert (tmp_path / "repo").is_dir() and not list((tmp_path / "repo").iterdir())


@pytest.mark.parametrize("kwargs, flag", [({"precision": "fp16"}, "--precision fp16"), ({"opset": 18}, "--opset 18")])
def test_export_options_with_a_given_graph_are_refused(digits_onnx, tmp_path, kwargs, flag):
    """--precision/--opset only shape a preset or checkpoint exported here; a given graph ignored them."""
    with pytest.raises(RepositoryError) as info:
        write_model_repository(digits_onnx, tmp_path / "repo", **kwargs)
    assert flag in str(info.value) and "as it is" in str(info.value)
    assert not (tmp_path / "repo").exists()


def test_pbtxt_writer():
    text = to_pbtxt(
        {
            "name": 'a "b"',
            "n": 3,
            "flag": True,
            "kind": Enum("KIND_GPU"),
            "dims": [1, -1],
            "empty": [],
            "none": None,
            "msg": {"x": 1},
            "rep": [{"y": 2}, {"y": 3}],
        }
    )
    assert text == (
        'name: "a \\"b\\""\nn: 3\nflag: true\nkind: KIND_GPU\ndims: [ 1, -1 ]\nmsg {\n  x: 1\n}\n'
        "rep [\n  {\n    y: 2\n  },\n  {\n    y: 3\n  }\n]\n"
    )


@needs_tritonclient
def test_triton_rejects_what_it_does_not_know():
    with pytest.raises(RepositoryError, match="not a valid Triton ModelConfig"):
        parse_model_config('name: "m"\nmax_batch_sizes: 4\n')


# ---- the command ---------------------------------------------------------------------------------
def vit5(*args, cwd):
    return run_vit5(*args, cwd=cwd, timeout=300, process=True)


def test_vit5_triton_repo_writes_the_model_and_says_how_to_serve_it(digits_onnx, tmp_path):
    proc = vit5(
        "triton-repo",
        digits_onnx,
        "-o",
        tmp_path / "repo",
        "--preferred-batch",
        "4,8",
        "--instances",
        "2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {tmp_path / 'repo' / 'digits'} (onnxruntime_onnx, max_batch_size 8)" in proc.stdout
    assert "tritonserver --model-repository=/models" in proc.stdout
    text = (tmp_path / "repo" / "digits" / "config.pbtxt").read_text()
    assert "preferred_batch_size: [ 4, 8 ]" in text and "count: 2" in text
    if importlib.util.find_spec("tritonclient") is not None:
        assert "parses as Triton's ModelConfig" in proc.stdout
    else:
        assert "not checked against Triton's ModelConfig" in proc.stderr

    again = vit5("triton-repo", digits_onnx, "-o", tmp_path / "repo", cwd=tmp_path)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("error: ") and "pass --force" in again.stderr
