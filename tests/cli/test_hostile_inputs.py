"""Hostile but realistic inputs through the ``vit5`` command: one representative per class.

Every bad input ends in one ``error: ...`` line and a non-zero exit, never a traceback; nothing is
lost (an output never overwrites an input) and nothing is left behind (no stray staging folders,
no stale weights file).  The unit tests beside each module cover the siblings of each case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_vit5 as vit5

REPO = Path(__file__).resolve().parents[2]
CASE = "attn_cls_r4"  # tiny attention model: 32x32 images, 10 classes


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def checkpoint(golden_dir, tmp_path) -> Path:
    path = tmp_path / "model.safetensors"
    path.write_bytes((golden_dir / f"{CASE}.safetensors").read_bytes())
    return path


# ---- tracebacks become one line ----------------------------------------------------------------


def test_random_and_text_bytes_as_checkpoints(tmp_path):
    garbage = tmp_path / "random.pt"
    garbage.write_bytes(bytes((i * 7919 + 13) % 256 for i in range(1000)))
    text = tmp_path / "notes.ckpt"
    text.write_text("hello\n")
    assert_one_line_error(vit5("inspect", garbage), "random.pt")
    assert_one_line_error(vit5("inspect", text), "notes.ckpt", "not a readable PyTorch checkpoint")


def test_config_of_the_wrong_type_and_encoding(golden_dir, checkpoint, tmp_path):
    config = json.loads((golden_dir / f"{CASE}.json").read_text())
    config["attention"]["rope_base"] = "10000"
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(config))
    assert_one_line_error(
        vit5("export", checkpoint, "-o", tmp_path / "m.onnx", "--config", wrong), "attention.rope_base must be a number"
    )
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"network": "\xe9"}')
    assert_one_line_error(vit5("export", checkpoint, "-o", tmp_path / "m.onnx", "--config", latin), "not UTF-8")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("newdir/", "is a directory"),
        ("", "not a file name"),
        ("model.txt", "must end in .onnx"),
        ("blocker/model.onnx", "is a file, not a folder"),
    ],
)
def test_export_output_paths_are_checked_before_loading(checkpoint, tmp_path, name, fragment):
    (tmp_path / "blocker").write_text("a file where a folder would go")
    assert_one_line_error(vit5("export", checkpoint, "-o", name, cwd=tmp_path), fragment)
    assert not (tmp_path / "newdir").exists()


@pytest.mark.slow  # several exports or bench runs in subprocesses
def test_out_of_range_numbers(tmp_path):
    assert_one_line_error(vit5("export", "vit5-small", "-o", tmp_path / "m.onnx", "--seed", "9" * 23), "seed")
    assert_one_line_error(
        vit5("export", "vit5-small", "-o", tmp_path / "m.onnx", "--batch", "100000000"), "GiB", "smaller batch"
    )
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow  # several exports or bench runs in subprocesses
def test_rich_markup_in_paths_prints_as_given(checkpoint, tmp_path):
    proc = vit5("export", checkpoint, "-o", "model[v2].onnx", "--no-validate", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote model[v2].onnx" in proc.stdout
    proc = vit5("export", checkpoint, "-o", "a[/b]x.onnx", "--no-validate", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote a[/b]x.onnx" in proc.stdout


def test_ctrl_c_while_torch_imports_is_one_line(tmp_path):
    # A Ctrl-C that lands while torch is importing, made deterministic: the import itself raises it.
    script = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from vit5_infer.cli.main import main\n"
        f"main(['export', 'vit5-small', '-o', {str(tmp_path / 'm.onnx')!r}])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_ctrl_c_while_the_cli_imports_is_one_line(tmp_path):
    script = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'typer':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "import runpy\n"
        "runpy.run_module('vit5_infer.cli.main', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130
    assert proc.stderr.strip() == "error: interrupted"


# ---- data loss / wrong results with exit 0 -----------------------------------------------------


def test_export_never_overwrites_its_checkpoint(checkpoint, tmp_path):
    before = checkpoint.read_bytes()
    alias = tmp_path / "alias.onnx"
    alias.symlink_to(checkpoint)
    assert_one_line_error(vit5("export", checkpoint, "-o", alias), "also an input")
    # the same file by relative paths, from another working directory
    sub = tmp_path / "sub"
    sub.mkdir()
    assert_one_line_error(
        vit5("export", "../model.safetensors", "-o", "../sub/../alias.onnx", cwd=sub), "also an input"
    )
    assert checkpoint.read_bytes() == before


def test_integer_weights_are_refused(checkpoint, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(checkpoint))
    state["out_proj.weight"] = state["out_proj.weight"].round().to(torch.int32)
    bad = tmp_path / "ints.safetensors"
    save_file(state, str(bad))
    assert_one_line_error(vit5("export", bad, "-o", tmp_path / "m.onnx"), "int32", "floating point")
    assert not (tmp_path / "m.onnx").exists()


def test_missing_engine_with_a_manifest_fails(tmp_path):
    (tmp_path / "gone.engine.json").write_text("{}")
    assert_one_line_error(vit5("inspect", tmp_path / "gone.engine"), "engine not found")


def test_empty_onnx_file_fails_inspect(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert_one_line_error(vit5("inspect", tmp_path / "empty.onnx"), "not an ONNX model")


@pytest.mark.slow  # several exports or bench runs in subprocesses
def test_bench_runs_static_batch_and_nhwc_exports_as_exported(checkpoint, tmp_path):
    static = tmp_path / "b2.onnx"
    assert vit5("export", checkpoint, "-o", static, "--batch", "2", "--no-validate").returncode == 0
    assert_one_line_error(vit5("bench", static, "-b", "ort", "--iters", "1", "--warmup", "0"), "--batch 2")
    nhwc = tmp_path / "nhwc.onnx"
    assert vit5("export", checkpoint, "-o", nhwc, "--layout", "nhwc", "--no-validate").returncode == 0
    report = tmp_path / "nhwc.json"
    proc = vit5("bench", nhwc, "-b", "ort", "--iters", "1", "--warmup", "0", "--json", report)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(report.read_text())["results"]
    assert result["passed"] and result["backend"] == "ort"


# ---- stray files -------------------------------------------------------------------------------


@pytest.mark.slow  # several exports or bench runs in subprocesses
def test_export_removes_stale_staging_and_stale_weights(checkpoint, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".vit5-export-{dead.pid}-abcd1234"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"half-written")
    out = tmp_path / "model.onnx"
    assert vit5("export", checkpoint, "-o", out, "--external-data", "--no-validate").returncode == 0
    assert not stale.exists()
    assert (tmp_path / "model.onnx.data").is_file()
    # re-export with external data over the existing OUTPUT.data, from the output's own folder
    proc = vit5("export", checkpoint, "-o", "model.onnx", "--external-data", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # an inline re-export removes the weights file nothing reads any more
    assert vit5("export", checkpoint, "-o", out, "--inline-data", "--no-validate").returncode == 0
    assert not (tmp_path / "model.onnx.data").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.safetensors"]


def test_failing_export_leaves_no_folders(checkpoint, tmp_path):
    out = tmp_path / "new" / "deeper" / "model.onnx"
    proc = vit5("export", checkpoint, "-o", out, "--norm-eps", "-1")
    assert_one_line_error(proc, "norm_eps")
    assert not (tmp_path / "new").exists()


# ---- misleading messages -----------------------------------------------------------------------


@pytest.mark.slow  # several exports or bench runs in subprocesses
def test_non_finite_network_is_blamed_on_the_network_not_the_exporter(checkpoint, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(checkpoint))
    state["out_norm.weight"] = torch.full_like(state["out_norm.weight"], float("nan"))
    nan = tmp_path / "nan.safetensors"
    save_file(state, str(nan))
    line = assert_one_line_error(vit5("export", nan, "-o", tmp_path / "m.onnx"), "PyTorch model itself")
    assert "does not match" not in line
    assert_one_line_error(
        vit5("export", checkpoint, "-o", tmp_path / "m.onnx", "--rope-base", "nan"), "rope_base must be finite"
    )


def test_non_weights_pickle_points_to_trust_pickle(tmp_path):
    import pickle

    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(print))  # a global the weights-only unpickler refuses
    assert_one_line_error(vit5("inspect", path), "--trust-pickle")


def test_inspect_foreign_onnx_with_a_sequence_input(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    seq = helper.make_tensor_sequence_value_info("frames", TensorProto.FLOAT, [2])
    out = helper.make_tensor_value_info("first", TensorProto.FLOAT, [2])
    zero = helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.INT64, [], [0]))
    at = helper.make_node("SequenceAt", ["frames", "zero"], ["first"])
    model = helper.make_model(
        helper.make_graph([zero, at], "foreign", [seq], [out]), opset_imports=[helper.make_opsetid("", 17)]
    )
    onnx.checker.check_model(model)
    path = tmp_path / "foreign.onnx"
    onnx.save_model(model, str(path))
    proc = vit5("inspect", path)
    assert proc.returncode == 0, proc.stderr
    assert "frames" in proc.stdout and "seq(" in proc.stdout
    assert "no vit5 metadata" in proc.stdout


# ---- hostile inputs, round 3: one real-entry-point run per class (unit tests cover each class) --------


def _images(folder: Path, count: int = 2) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (40, 40), (60 * i, 90, 120)).save(folder / f"{i}.png")
    return folder


def _in_process(script_body: str, tmp_path: Path):
    """A runner of ``vit5 ARGS`` by ``main()`` in a fresh interpreter after ``script_body`` (a stand-in for the
    machine's state)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = script_body + "\nfrom vit5_infer.cli.main import main\nimport sys\nmain(sys.argv[1:])\n"
    return lambda *args: subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_no_output_lands_inside_an_input_folder(checkpoint, tmp_path):
    images = _images(tmp_path / "images")
    before = sorted(p.name for p in images.iterdir())
    assert_one_line_error(
        vit5("export", checkpoint, "--precision", "int8", "--calibration", images, "-o", images / "sub" / "m.onnx"),
        "output",
        "an input folder",
    )
    assert sorted(p.name for p in images.iterdir()) == before


@pytest.mark.slow  # an export
def test_inline_export_keeps_a_data_file_it_did_not_write(checkpoint, tmp_path):
    (tmp_path / "u.onnx.data").write_bytes(b"unrelated")
    proc = vit5("export", checkpoint, "-o", tmp_path / "u.onnx", "--no-validate", "--inline-data")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "u.onnx.data").read_bytes() == b"unrelated"


def _broken_chunk_png() -> bytes:
    """A PNG whose second IDAT chunk has a broken type: Pillow identifies it, then raises SyntaxError in load()."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=0)
    data = buffer.getvalue()
    second = data.index(b"IDAT", data.index(b"IDAT") + 4)
    return data[:second] + b"I\x00AT" + data[second + 4 :]


def test_a_png_with_a_broken_chunk_is_one_line(checkpoint, tmp_path):
    images = _images(tmp_path / "images", 1)
    (images / "broken.png").write_bytes(_broken_chunk_png())
    assert_one_line_error(vit5("debug", checkpoint, "--images", images, "--top", "0"), "cannot decode", "broken.png")


def test_preprocessing_and_calibration_values_are_one_line(checkpoint, tmp_path):
    """The crop ratio's resize bound, checked once the model is loaded; --mean/--std (tests/cli/
    test_option_checks.py) and --calibration-count (tests/workflows/test_export_entry.py) are checked in process."""
    assert_one_line_error(
        vit5("export", checkpoint, "-o", tmp_path / "m.onnx", "--crop-ratio", "5e-324"), "crop_ratio", "4096 pixels"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_a_full_disk_is_one_line_and_leaves_nothing(checkpoint, tmp_path):
    """The disk is a stand-in: onnx's save raises ENOSPC, as a full filesystem makes it."""
    full = _in_process(
        "import errno, onnx\n"
        "def full(*args, **kwargs):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "onnx.save_model = full\n",
        tmp_path,
    )
    proc = full("export", checkpoint, "-o", tmp_path / "out" / "m.onnx", "--no-validate")
    assert_one_line_error(proc, "cannot write", "m.onnx", "no space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_hand_edited_metadata_is_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        )
    )
    entry = model.metadata_props.add()
    entry.key, entry.value = "vit5.preprocessing", "[" * 100_000 + "]" * 100_000
    onnx.save(model, str(tmp_path / "nested.onnx"))
    assert_one_line_error(vit5("inspect", tmp_path / "nested.onnx"), "vit5.preprocessing", "nested deeper")
    entry.value = '"a string"'
    onnx.save(model, str(tmp_path / "string.onnx"))
    assert_one_line_error(
        vit5("debug", "--reference", tmp_path / "string.onnx", "--candidate", tmp_path / "string.onnx"),
        "vit5.preprocessing",
        "expected a JSON object",
    )


def test_debug_on_a_graph_without_inputs_is_one_line(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    zeros = numpy_helper.from_array(np.zeros((1, 3, 8, 8), np.float32))
    constant = helper.make_node("Constant", [], ["y"], value=zeros)
    model = helper.make_model(
        helper.make_graph([constant], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    )
    onnx.save(model, str(tmp_path / "none.onnx"))
    assert_one_line_error(
        vit5("debug", "--reference", tmp_path / "none.onnx", "--candidate", tmp_path / "none.onnx"), "has 0 inputs"
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("debug", "vit5-small", "--rel-l2", "nan"), "--rel-l2 must be a finite number"),
    ],
)
def test_unbounded_or_meaningless_numbers_are_refused_before_work(args, fragment):
    assert_one_line_error(vit5(*args), fragment)


def test_a_bench_error_is_the_only_line_on_stderr(checkpoint, tmp_path):
    """bench's one-line-error class through the real entry point (its refusals: test_bench_options.py)."""
    proc = vit5("bench", checkpoint, "-b", "torch", "--images", tmp_path / "missing")
    assert_one_line_error(proc, "is not a directory")
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1  # no blank line before it


@pytest.mark.slow  # an int8 export
def test_a_keep_float_pattern_that_matches_nothing_is_named(checkpoint, tmp_path):
    proc = vit5(
        "export",
        checkpoint,
        "-o",
        tmp_path / "q.onnx",
        "--precision",
        "int8",
        "--calibrate-on-seeded-inputs",
        "--keep-float",
        "embed/,no_such_layer",
        "--no-validate",
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: --keep-float pattern 'no_such_layer' matches no quantizable layer" in proc.stderr
    assert "'embed/'" not in proc.stderr


def test_an_unreadable_image_folder_is_named(checkpoint, tmp_path):
    """Root reads every folder: the refusal the kernel gives other users is made by os.scandir here."""
    images = _images(tmp_path / "images")
    (images / "locked").mkdir()
    locked = _in_process(
        "import os\n"
        "real = os.scandir\n"
        "def scandir(path='.'):\n"
        "    if os.fspath(path).endswith('locked'):\n"
        "        raise PermissionError(13, 'Permission denied', os.fspath(path))\n"
        "    return real(path)\n"
        "os.scandir = scandir\n",
        tmp_path,
    )
    proc = locked("debug", checkpoint, "--images", images, "--top", "0")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: --images: cannot read folder {images / 'locked'} (Permission denied)" in proc.stderr
