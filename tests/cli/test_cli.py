"""The ``vit5`` command driven as a user drives it, through its entry function (cli_runner); the smoke tests of the
console start-up, a usage error and a one-line error run it as a process of its own."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_vit5 as vit5

REPO = Path(__file__).resolve().parents[2]
CASE = "attn_cls_r4"  # tiny attention model: 32x32 images, 10 classes


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode in (1, 2), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def exported(golden_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model.onnx"
    proc = vit5("export", golden_dir / f"{CASE}.safetensors", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "validation against PyTorch FP32 (passed)" in proc.stdout
    assert "fused ops: Attention x2" in proc.stdout
    return out


def test_help_and_version():
    """Through the console entry in a process of its own, as a user starts it."""
    proc = vit5("--help", process=True)
    assert proc.returncode == 0
    for command in ("export", "build-engine", "bench", "inspect", "presets", "predict"):
        assert command in proc.stdout
    version = vit5("--version", process=True)
    assert version.returncode == 0 and version.stdout.startswith("vit5-infer ")
    for command in ("export", "build-engine", "bench", "inspect"):
        assert vit5(command, "--help").returncode == 0


def _click_commands() -> dict:
    import typer.main

    from vit5_infer.cli.main import app

    return typer.main.get_command(app).commands


def test_every_option_help_shows_whole(monkeypatch):
    """Rich reads a bracketed word in a help text ('[default: ...]', 'vit5-infer[ray]') as markup and drops it:
    each option's help as declared must appear whole in ``vit5 CMD --help``."""
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: no wrapping to undo
    cut = []
    for name, command in sorted(_click_commands().items()):
        proc = vit5(name, "--help")
        assert proc.returncode == 0, proc.stderr
        shown = " ".join(proc.stdout.replace("│", " ").split())
        for param in command.params:
            declared = " ".join((getattr(param, "help", None) or "").split())
            if declared not in shown:
                cut.append(f"{name} {param.opts[0]}: {declared!r}")
    assert not cut, "\n".join(cut)


# (flag, {command: default}) for the flags cli/shared_options.py declares once for several commands
SHARED_FLAG_DEFAULTS = [
    ("--mean", {"bench": None, "debug": None, "export": None, "predict": None}),
    ("--std", {"bench": None, "debug": None, "export": None, "predict": None}),
    ("--labels", {"bench": None, "predict": None}),
    ("--threads", {"bench": None, "predict": None, "serve": None}),
    ("--max-batch", {"serve": None, "triton-repo": None}),
    ("--preferred-batch", {"serve": None, "triton-repo": None}),
    ("--max-queue-delay", {"serve": 0, "triton-repo": 100}),
    ("--instances", {"serve": 1, "triton-repo": 1}),
]


@pytest.mark.parametrize("flag, defaults", SHARED_FLAG_DEFAULTS, ids=[flag for flag, _ in SHARED_FLAG_DEFAULTS])
def test_shared_flags_keep_each_command_default(flag, defaults):
    """A shared declaration leaves the default to each command: serve batches at once (--max-queue-delay 0),
    a Triton repository waits 100 us."""
    commands = _click_commands()
    found = {}
    for name in defaults:
        params = [p for p in commands[name].params if flag in p.opts]
        assert len(params) == 1, f"vit5 {name} {flag}"
        found[name] = params[0].default
    assert found == defaults


def test_presets_lists_sizes_and_flops():
    proc = vit5("presets", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["vit5-small"]["parameters"] == 22_010_112
    assert rows["vit5-small"]["gflops"] == pytest.approx(9.41, abs=0.01)
    assert set(rows) >= {"vit5-base", "vit5-large", "vit5-small-hyena", "vit5-small-hybrid"}


def test_export_inspect_bench(exported, tmp_path, golden_dir):
    info = json.loads(vit5("inspect", exported, "--json").stdout)
    assert info["inputs"][0]["name"] == "pixel_values"
    assert info["summary"]["fused_ops"]["Attention"] == 2
    assert info["metadata"]["source"]["name"].endswith(f"{CASE}.safetensors")

    ckpt = json.loads(vit5("inspect", golden_dir / f"{CASE}.ckpt", "--json").stdout)
    assert ckpt["parameters"] == 113_216 and ckpt["architecture"]["heads"] == 4

    report_path, csv_path = tmp_path / "r.json", tmp_path / "r.csv"
    proc = vit5(
        "bench",
        exported,
        "--backends",
        "torch,ort",
        "--batch",
        "1,3",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--json",
        report_path,
        "--csv",
        csv_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert set(report) >= {"model", "environment", "results"}
    assert report["environment"]["torch"] and "onnxruntime" in report["environment"]
    rows = {(r["backend"], r["batch"]): r for r in report["results"]}
    assert set(rows) == {("torch", 1), ("torch", 3), ("ort", 1), ("ort", 3)}
    for row in rows.values():
        assert set(row["latency_ms"]) == {"mean", "p50", "p90", "p99", "min", "max", "std"}
        assert row["throughput_per_s"] > 0 and row["precision"] == "fp32"
    # ORT on the exported graph agrees with the PyTorch reference rebuilt from the ONNX metadata
    assert rows[("ort", 3)]["accuracy"]["cosine"] >= 0.9999
    assert rows[("ort", 3)]["accuracy"]["top1_agreement"] == 1.0
    assert rows[("torch", 3)]["accuracy"]["max_abs_err"] == 0.0
    assert len(csv_path.read_text().strip().splitlines()) == 5


def test_bench_checkpoint_exports_for_ort_and_prints_markdown(golden_dir):
    proc = vit5(
        "bench",
        golden_dir / "hyena_gap.safetensors",
        "--backends",
        "ort",
        "--iters",
        "2",
        "--warmup",
        "0",
        "--markdown",
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| ort")]
    assert len(lines) == 1 and lines[0].rstrip().endswith("| yes |")


def test_bench_fails_when_accuracy_is_outside_tolerance(exported, tmp_path, golden_dir):
    # The reference is rebuilt from the checkpoint the ONNX metadata names; point it at other weights
    # (same architecture) by rewriting the metadata: ORT then disagrees and bench must fail.
    import onnx

    model = onnx.load(str(exported))
    for prop in model.metadata_props:
        if prop.key == "vit5.source":
            source = json.loads(prop.value)
            source.update(name=str(golden_dir / f"{CASE}.ckpt"), sha256=None, weights="raw")
            prop.value = json.dumps(source)
    other = tmp_path / "mismatched.onnx"
    onnx.save(model, str(other))
    proc = vit5("bench", other, "--backends", "ort", "--iters", "1", "--warmup", "0", "--trust-pickle")
    assert_one_line_error(proc, "accuracy outside tolerance", "ort[fp32]")
    assert proc.returncode == 1


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["export", "vit5-tiny-typo", "-o", "x.onnx"], ["neither a preset", "vit5-small"]),
        (["export", "missing.safetensors", "-o", "x.onnx"], ["not found"]),
        (["inspect", "missing.onnx"], ["not found"]),
        (["inspect", "model.engine"], ["engine not found"]),
    ],
)
def test_bad_inputs_are_one_line_errors(args, fragments, tmp_path):
    assert_one_line_error(vit5(*args, cwd=tmp_path), *fragments)


def test_corrupt_checkpoint_and_wrong_architecture(tmp_path, golden_dir):
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    assert_one_line_error(vit5("inspect", bad), "corrupt.safetensors")
    # heads that do not divide the width: the architecture override is rejected before anything runs
    assert_one_line_error(
        vit5("export", golden_dir / f"{CASE}.safetensors", "-o", tmp_path / "x.onnx", "--num-heads", "5"), "num_heads 5"
    )
    # a config whose shapes do not fit the weights
    assert_one_line_error(
        vit5("inspect", golden_dir / f"{CASE}.safetensors", "--config", golden_dir / "hyena_gap.json"), "do not fit"
    )
    not_onnx = tmp_path / "fake.onnx"
    not_onnx.write_text("hello")
    assert_one_line_error(vit5("inspect", not_onnx), "not a readable ONNX model")


def test_usage_errors_keep_typer_messages(tmp_path):
    """bench's usage-error class through the real entry point (the values: test_bench_options.py)."""
    proc = vit5("bench", "vit5-small", "--backends", "torch,tpu", process=True)
    assert proc.returncode == 2 and "tpu" in proc.stderr


def test_build_engine_without_tensorrt_is_one_line(exported, tmp_path):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here; the missing-TensorRT path cannot be exercised")
    proc = vit5("build-engine", exported, "-o", tmp_path / "m.engine", "--fp16", process=True)
    assert_one_line_error(proc, "TensorRT is not installed")
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.parametrize("flag", ["--int8", "--fp8"])
def test_build_engine_takes_the_quantized_precisions(golden_dir, tmp_path, flag):
    """--int8/--fp8 build a Q/DQ graph: the flags exist (the next thing missing here is TensorRT itself)."""
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here; the missing-TensorRT path cannot be exercised")
    import vit5_infer
    from vit5_infer.exporters import GraphForm
    from vit5_infer.exporters.quantization import QuantizationSettings, export_quantized, seeded_calibration

    model = vit5_infer.load_model(golden_dir / "attn_cls_r4.safetensors")
    graph = tmp_path / "q.onnx"
    with pytest.warns(UserWarning, match="accuracy on real images is unknown"):
        seeded = seeded_calibration(tuple(model.input_shape), count=8, held_out=4)
    export_quantized(model, graph, QuantizationSettings(flag[2:]), seeded, GraphForm(target="tensorrt", validate=False))
    assert_one_line_error(vit5("build-engine", graph, "-o", tmp_path / "m.engine", flag), "TensorRT is not installed")
    # the same graph under another precision flag was built as the quantized graph without a word
    other = "--fp16" if flag == "--int8" else "--int8"
    assert_one_line_error(
        vit5("build-engine", graph, "-o", tmp_path / "m.engine", other),
        f"q.onnx is an {flag[2:]} graph; build it with {flag}",
    )


def test_build_engine_takes_one_precision(exported, tmp_path):
    proc = vit5("build-engine", exported, "-o", tmp_path / "m.engine", "--fp16", "--int8")
    words = " ".join(proc.stderr.replace("│", " ").split())  # typer's box wraps the line
    assert proc.returncode == 2 and "choose one of --fp16, --bf16, --int8 and --fp8" in words


def test_export_fp16_io_with_external_data(golden_dir, tmp_path):
    import numpy as np
    import onnx
    import onnxruntime as ort

    out = tmp_path / "m16.onnx"
    proc = vit5(
        "export",
        golden_dir / "attn_cls_r4.safetensors",
        "-o",
        out,
        "--precision",
        "fp16",
        "--io-dtype",
        "fp16",
        "--external-data",
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m16.onnx.data").is_file()
    graph = onnx.load(str(out), load_external_data=False)
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"pixel_values": np.zeros((2, 3, 32, 32), np.float16)})[0]
    assert logits.dtype == np.float16 and logits.shape == (2, 10)


def test_export_outputs_flag_and_inspect(golden_dir, tmp_path):
    import onnx

    out = tmp_path / "features.onnx"
    proc = vit5(
        "export",
        golden_dir / "hybrid_pool_film.safetensors",
        "-o",
        out,
        "--opset",
        "18",
        "--outputs",
        "pre_logits,patch_tokens,register_tokens",
    )
    assert proc.returncode == 0, proc.stderr
    assert "outputs: pre_logits ['batch', 64], patch_tokens ['batch', 4, 4, 64], register_tokens" in proc.stdout
    assert "validation against PyTorch FP32 (passed), per output:" in proc.stdout
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["pre_logits", "patch_tokens", "register_tokens"]
    info = json.loads(vit5("inspect", out, "--json").stdout)
    assert [(o["name"], o["shape"]) for o in info["outputs"]] == [
        ("pre_logits", ["batch", 64]),
        ("patch_tokens", ["batch", 4, 4, 64]),
        ("register_tokens", ["batch", 4, 64]),
    ]
    assert list(info["metadata"]["outputs"]) == ["pre_logits", "patch_tokens", "register_tokens"]
    text = vit5("inspect", out).stdout
    assert "output: patch_tokens float32 ['batch', 4, 4, 64]" in text


def test_export_outputs_the_network_lacks(golden_dir, tmp_path):
    """One output error through the command; tests/workflows/test_export_entry.py has the others."""
    out = tmp_path / "x.onnx"
    proc = vit5("export", golden_dir / "hyena_gap.safetensors", "-o", out, "--outputs", "register_tokens")
    assert_one_line_error(proc, "no registers")
    assert proc.returncode == 1 and not out.exists()


def test_export_unknown_output_is_a_usage_error(golden_dir, tmp_path):
    proc = vit5(
        "export", golden_dir / "hyena_gap.safetensors", "-o", tmp_path / "x.onnx", "--outputs", "logits,embedding"
    )
    assert proc.returncode == 2 and "embedding" in proc.stderr and "pre_logits" in proc.stderr


def test_bench_outputs_flag(golden_dir, tmp_path):
    report_path = tmp_path / "r.json"
    proc = vit5(
        "bench",
        golden_dir / "attn_cls_r4.safetensors",
        "--backends",
        "ort",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--outputs",
        "logits,register_tokens",
        "--markdown",
        "--json",
        report_path,
    )
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| backend"))
    assert "| cos register_tokens |" in header
    row = json.loads(report_path.read_text())["results"][0]
    assert list(row["outputs"]) == ["logits", "register_tokens"] and row["outputs"]["register_tokens"]["passed"]


def test_export_int8_with_calibration_images_and_preprocessing(digits_dir, tmp_path):
    out = tmp_path / "int8.onnx"
    proc = vit5(
        "export",
        digits_dir / "digits_attn.safetensors",
        "-o",
        out,
        "--precision",
        "int8",
        "--calibration",
        digits_dir / "calibration",
        "--calibration-count",
        "8",
        "--mean",
        "0.5",
        "--std",
        "0.25",
    )
    assert proc.returncode == 0, proc.stderr
    assert "validation against PyTorch FP32 (passed)" in proc.stdout
    assert "quantization: uint8 asymmetric per tensor activations" in proc.stdout
    from vit5_infer.exporters import read_metadata

    meta = read_metadata(out)
    assert meta["precision"] == "int8" and meta["preprocessing"]["std"] == [0.25] * 3


def test_quantized_export_errors_are_one_line_and_write_nothing(digits_dir, tmp_path):
    """A calibration error through the command; tests/workflows/test_export_entry.py has the other quantized
    export errors, in process."""
    proc = vit5("export", digits_dir / "digits_attn.safetensors", "-o", tmp_path / "q.onnx", "--precision", "int8")
    assert_one_line_error(proc, "needs calibration images", "--calibration DIR")
    assert list(tmp_path.iterdir()) == []


def test_bench_labels_flag(digits_dir, tmp_path):
    """--labels maps class folders to class indices (its refusals: test_bench_options.py)."""
    import shutil

    images = tmp_path / "images"
    for digit, word in [(1, "one"), (2, "two")]:  # sorted order would give them classes 0 and 1
        (images / word).mkdir(parents=True)
        for first in sorted((digits_dir / "test" / str(digit)).glob("*.png"))[:2]:
            shutil.copy(first, images / word / first.name)
    labels = tmp_path / "classes.json"
    labels.write_text('{"one": 1, "two": 2}')
    report_path = tmp_path / "report.json"
    common = [
        "bench",
        digits_dir / "digits_attn.safetensors",
        "--backends",
        "ort",
        "--batch",
        "2",
        "--iters",
        "1",
        "--images",
        images,
        "--mean",
        "0.5",
        "--std",
        "0.25",
    ]
    proc = vit5(*common, "--labels", labels, "--json", report_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(report_path.read_text())["results"][0]["dataset"] == {"images": 4, "top1": 1.0, "top5": 1.0}


def test_export_quantization_flags_need_a_quantized_precision(digits_dir, tmp_path):
    """A float export given a calibration flag would ignore it: one line naming the flag and --precision
    (every flag: tests/workflows/test_export_entry.py)."""
    proc = vit5(
        "export",
        digits_dir / "digits_attn.safetensors",
        "-o",
        tmp_path / "f.onnx",
        "--calibration",
        digits_dir / "calibration",
    )
    assert_one_line_error(proc, "--calibration", "--precision int8")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("source", ["exported", "checkpoint"])
def test_build_engine_refuses_a_float_source_for_int8_before_tensorrt(exported, golden_dir, tmp_path, source):
    """A float graph or a checkpoint (exported float) can never give an int8 engine: that was said only
    once TensorRT was installed, after the GPU check and the export."""
    src = exported if source == "exported" else golden_dir / "attn_cls_r4.safetensors"
    proc = vit5("build-engine", src, "-o", tmp_path / "m.engine", "--int8")
    assert_one_line_error(proc, "--precision int8 --target tensorrt --calibration DIR")
    assert "TensorRT is not installed" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_warnings_stay_on_one_line_when_piped(golden_dir, tmp_path):
    """stderr is not a terminal here: a warning must not be wrapped at 80 columns, mid-sentence."""
    proc = vit5(
        "export",
        golden_dir / "attn_cls_r4.safetensors",
        "-o",
        tmp_path / "q.onnx",
        "--precision",
        "int8",
        "--calibrate-on-seeded-inputs",
        "--no-validate",
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: calibrating on seeded random inputs: the quantized graph's accuracy on real images is unknown"
    ], proc.stderr


def test_help_imports_neither_torch_nor_numpy():
    """`vit5 --help` and each command's help stay fast: the CLI reaches heavy modules only when a command runs."""
    code = (
        "import sys\n"
        "from vit5_infer.cli.main import main\n"
        "for args in (['--help'], ['export', '--help'], ['bench', '--help'], ['predict', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'numpy', 'onnx', 'onnxruntime') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
