"""``vit5 triton-repo`` against hostile inputs and outputs: every refusal is one ``error:`` line and a
non-zero exit, nothing is read or written outside the source and the repository, no source is
deleted, and what is published is readable by a server running as another user."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vit5_infer.workflows.serving import RepositoryError, write_model_repository
from vit5_infer.workflows.serving.model_repository import _publish


def vit5(*args, cwd, umask: int | None = None) -> subprocess.CompletedProcess:
    def set_umask():
        os.umask(umask)

    return subprocess.run(
        [sys.executable, "-m", "vit5_infer.cli.main", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=set_umask if umask is not None else None,
    )


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single ``error:`` line of a refused run (asserting there is no traceback)."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---- external data locations ----------------------------------------------------------------------
def graph_with_location(digits_onnx: Path, folder: Path, location_of) -> Path:
    """The digits graph in ``folder`` with its weights in one external file, whose recorded
    ``location`` is then rewritten to ``location_of(weights_path)`` (the file moved there)."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(digits_onnx))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    model = onnx.load(str(path), load_external_data=False)
    location, moved = location_of(folder / "weights.bin")
    if moved is not None:
        moved.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder / "weights.bin"), str(moved))
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_external_data_outside_the_graph_folder_is_refused(digits_onnx, tmp_path, kind):
    """A location of ../../escape.bin was read outside the graph's folder and copied outside the
    repository; an absolute one ended in a SameFileError traceback."""
    outside = tmp_path / "outside" / "escape.bin"
    if kind == "parent":
        graph = graph_with_location(digits_onnx, tmp_path / "a" / "b", lambda w: ("../../outside/escape.bin", outside))
    elif kind == "absolute":
        graph = graph_with_location(digits_onnx, tmp_path / "a" / "b", lambda w: (str(outside), outside))
    else:

        def via_link(weights):
            (weights.parent / "link").symlink_to(outside.parent, target_is_directory=True)
            return "link/escape.bin", outside

        graph = graph_with_location(digits_onnx, tmp_path / "a" / "b", via_link)
    before = tree(tmp_path)
    line = one_error_line(vit5("triton-repo", graph, "-o", tmp_path / "a" / "repo", cwd=tmp_path))
    assert "lies outside the graph's folder" in line
    assert tree(tmp_path) == before


def test_external_data_inside_a_subfolder_is_copied_beside_the_model(digits_onnx, tmp_path):
    graph = graph_with_location(digits_onnx, tmp_path / "g", lambda w: ("sub/w.bin", w.parent / "sub" / "w.bin"))
    proc = vit5("triton-repo", graph, "-o", tmp_path / "repo", "--name", "m", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    copied = tmp_path / "repo" / "m" / "1" / "sub" / "w.bin"
    assert copied.read_bytes() == (tmp_path / "g" / "sub" / "w.bin").read_bytes()


def test_serving_reads_the_same_check(digits_onnx, tmp_path):
    """vit5 serve reads a graph's signature through the same check (before PyTriton is needed)."""
    from vit5_infer.errors import InputError
    from vit5_infer.workflows.serving import onnx_signature

    graph = graph_with_location(digits_onnx, tmp_path / "a", lambda w: ("../escape.bin", tmp_path / "escape.bin"))
    with pytest.raises(InputError, match="lies outside the graph's folder"):
        onnx_signature(graph)


# ---- the model folder being replaced holds the source ---------------------------------------------
@pytest.mark.parametrize("where", ["graph", "checkpoint"])
def test_force_never_deletes_its_own_source(digits_onnx, digits_dir, tmp_path, where):
    repo = tmp_path / "repo"
    source_dir = repo / "m" / "1"
    source_dir.mkdir(parents=True)
    if where == "graph":
        source = source_dir / "model.onnx"
        shutil.copyfile(digits_onnx, source)
    else:
        source = source_dir / "digits_attn.safetensors"
        shutil.copyfile(digits_dir / "digits_attn.safetensors", source)
    content = source.read_bytes()
    line = one_error_line(vit5("triton-repo", source, "-o", repo, "--name", "m", "--force", cwd=tmp_path))
    assert "lies inside" in line and "which this run replaces" in line
    assert source.read_bytes() == content


def test_force_never_deletes_the_external_data_it_reads(digits_onnx, tmp_path):
    """The graph lies beside the model folder, its weights inside it (REPO/m/w.bin)."""
    repo = tmp_path / "repo"
    graph = graph_with_location(digits_onnx, repo, lambda w: ("m/w.bin", repo / "m" / "w.bin"))
    weights = (repo / "m" / "w.bin").read_bytes()
    line = one_error_line(vit5("triton-repo", graph, "-o", repo, "--name", "m", "--force", cwd=tmp_path))
    assert "lies inside" in line
    assert (repo / "m" / "w.bin").read_bytes() == weights


# ---- leftovers of a killed run ----------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_scratch_of_a_killed_run_is_removed_by_the_next(digits_onnx, tmp_path):
    """SIGKILL left .vit5-export-* folders that no later run removed and that stock tritonserver tried to load."""
    repo = tmp_path / "repo"
    dead = _dead_pid()
    for name in (
        f".vit5-export-{dead}-abc",
        f".m.staging-{dead}-xyz",
        f".m.old-{dead}",
        f".vit5-export-{os.getpid()}-live",
    ):  # the last: a run still going on
        (repo / name).mkdir(parents=True)
        (repo / name / "big.bin").write_bytes(b"0" * 1024)
    proc = vit5("triton-repo", digits_onnx, "-o", repo, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in repo.iterdir()) == [f".vit5-export-{os.getpid()}-live", "digits"]


# ---- output errors --------------------------------------------------------------------------------
def test_output_errors_are_one_line(digits_onnx, tmp_path):
    (tmp_path / "file").write_text("x")
    line = one_error_line(vit5("triton-repo", digits_onnx, "-o", tmp_path / "file" / "repo", cwd=tmp_path))
    assert "is a file, not a folder" in line
    line = one_error_line(vit5("triton-repo", digits_onnx, "-o", tmp_path / "file", cwd=tmp_path))
    assert "is a file, not a folder" in line
    line = one_error_line(vit5("triton-repo", digits_onnx, "-o", tmp_path / ("r" * 300), cwd=tmp_path))
    assert "longer than this filesystem allows" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_an_unwritable_output_is_one_line(digits_onnx, tmp_path, monkeypatch):
    """A read-only filesystem answers access(W_OK) with EROFS; as root a chmod cannot make a folder
    unwritable, so access() is made to answer as it would there (the check, not the kernel, is tested)."""
    from vit5_infer.files import check_output_dir

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path else real_access(path, mode))
    with pytest.raises(RepositoryError, match="is not writable"):
        write_model_repository(digits_onnx, tmp_path / "repo")
    with pytest.raises(Exception, match="read-only filesystem"):
        check_output_dir(tmp_path / "x", "--output")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("errno_value", [errno.ENOSPC, errno.EROFS, errno.EDQUOT])
def test_a_failed_write_is_one_line_and_leaves_nothing(digits_onnx, tmp_path, monkeypatch, capsys, errno_value):
    """Disk full (or a filesystem that turns read-only) while the model is copied: a traceback before.
    The copy is made to fail as the kernel would; the run goes through the command's real main()."""
    from vit5_infer.cli.main import main
    from vit5_infer.workflows.serving import model_repository

    def full(src, dst, *args, **kwargs):
        Path(dst).write_bytes(b"partial")
        raise OSError(errno_value, os.strerror(errno_value), str(dst))

    monkeypatch.setattr(model_repository.shutil, "copyfile", full)
    with pytest.raises(SystemExit) as info:
        main(["triton-repo", str(digits_onnx), "-o", str(tmp_path / "repo")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"error: cannot write {tmp_path / 'repo' / 'digits'}: {os.strerror(errno_value)}"], err
    assert not (tmp_path / "repo").exists()


# ---- names, batch bound, GPUs -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, message",
    [("m\n", "may hold only"), ("a" * 300, "characters long"), (".hidden", "may hold only"), ("a/b", "may hold only")],
)
def test_bad_model_names_are_one_line(digits_onnx, tmp_path, name, message):
    line = one_error_line(vit5("triton-repo", digits_onnx, "-o", tmp_path / "repo", "--name", name, cwd=tmp_path))
    assert message in line and "Traceback" not in line
    assert not (tmp_path / "repo").exists()


def test_a_max_batch_past_memory_is_refused(digits_onnx, tmp_path):
    """--max-batch 100000000 wrote a config whose warm-up allocates about 1.2 TB in the server."""
    line = one_error_line(
        vit5("triton-repo", digits_onnx, "-o", tmp_path / "repo", "--max-batch", "100000000", cwd=tmp_path)
    )
    assert "max batch 100000000 needs about" in line and "use a smaller max batch" in line
    assert not (tmp_path / "repo").exists()


def test_gpu_zero_is_a_gpu(digits_onnx, tmp_path):
    """--gpus 0 and the docs' own --gpus 0,1 were refused as not positive."""
    proc = vit5("triton-repo", digits_onnx, "-o", tmp_path / "repo", "--kind", "gpu", "--gpus", "0,1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "gpus: [ 0, 1 ]" in (tmp_path / "repo" / "digits" / "config.pbtxt").read_text()
    proc = vit5("triton-repo", digits_onnx, "-o", tmp_path / "repo2", "--kind", "gpu", "--gpus", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for bad in ("-1", "0,,1", "a", ""):
        proc = vit5("triton-repo", digits_onnx, "-o", tmp_path / "repo3", "--kind", "gpu", "--gpus", bad, cwd=tmp_path)
        assert proc.returncode == 2 and "--gpus" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "repo3").exists()


# ---- concurrent runs ----------------------------------------------------------------------------------
def test_two_concurrent_runs_publish_once(digits_onnx, tmp_path):
    """Both runs exited 0 and the second silently replaced the first."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vit5_infer.cli.main",
                "triton-repo",
                str(digits_onnx),
                "-o",
                str(tmp_path / "repo"),
                "--instances",
                str(n),
            ],
            cwd=tmp_path,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in (1, 2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    (err,) = [text for code, text in results if code == 1]
    assert "already exists" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["digits"]


def test_publishing_over_a_model_that_appeared_meanwhile_is_refused(tmp_path):
    """The race itself, made deterministic: the model folder appears after the early check."""
    final = tmp_path / "m"
    (final / "1").mkdir(parents=True)
    (final / "config.pbtxt").write_text("first")
    stage = tmp_path / ".m.staging"
    (stage / "1").mkdir(parents=True)
    (stage / "config.pbtxt").write_text("second")
    with pytest.raises(RepositoryError, match="already exists"):
        _publish(stage, final, force=False)
    assert (final / "config.pbtxt").read_text() == "first"
    _publish(stage, final, force=True)
    assert (final / "config.pbtxt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


# ---- permissions -----------------------------------------------------------------------------------
@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_the_published_model_follows_the_umask(digits_onnx, tmp_path, umask, folder_mode, file_mode):
    """The model folder was drwx------ (mkdtemp): a Triton running as another user could not read it."""
    proc = vit5("triton-repo", digits_onnx, "-o", tmp_path / "repo", cwd=tmp_path, umask=umask)
    assert proc.returncode == 0, proc.stderr
    model = tmp_path / "repo" / "digits"
    for path in (model, model / "1"):
        assert stat.S_IMODE(path.stat().st_mode) == folder_mode, path
    for path in (model / "config.pbtxt", model / "1" / "model.onnx"):
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path
    json.dumps(tree(model))  # the listing is readable
