"""``vit5 predict`` driven as a user drives it (subprocesses): one-line errors, Ctrl-C, and a run
killed with SIGKILL then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from predict_data import read_rows, write_images

REPO = Path(__file__).resolve().parents[3]


def _command(*args) -> list:
    return [sys.executable, "-m", "vit5_infer.cli.main", "predict", *map(str, args)]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def vit5_predict(*args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc, *fragments):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode in (1, 2) and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_input_is_one_line(predict_graph, tmp_path):
    images = tmp_path / "images"
    write_images(images, 2)
    _one_line_error(vit5_predict(predict_graph, images, "-o", tmp_path / "out", "--shard", "3/2"), "--shard")
    _one_line_error(vit5_predict(predict_graph, images, "-o", images / "out"), "overlaps the input")
    _one_line_error(vit5_predict(predict_graph, tmp_path / "nothing", "-o", tmp_path / "out"), "does not exist")
    assert not (tmp_path / "out").exists() and not (images / "out").exists()


# batch 1 and many small parts: slow enough to be stopped part-way; the token arrays are staged for a
# whole part, so a stop leaves staging behind that the resumed run must clear
STOPPED_RUN = ("--batch", "1", "--rows-per-file", "4", "--workers", "1", "--outputs", "register_tokens")


def _start(graph, images, out) -> subprocess.Popen:
    return subprocess.Popen(
        _command(graph, images, "-o", out, *STOPPED_RUN),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_interrupt,
    )


def _default_interrupt() -> None:
    # A test runner started in the background inherits an ignored SIGINT, and Python keeps it ignored:
    # the command must start as an interactive one does, with Ctrl-C raising KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_parts(proc, out: Path, count: int) -> None:
    deadline = time.monotonic() + 180
    while len(list(out.glob("part-*.parquet"))) < count:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no part file appeared"
        time.sleep(0.005)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _wait_until_gone(pids: list[int], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, f"processes {pids} outlived the command"
        time.sleep(0.1)


def _check_complete(out: Path, images: Path, total: int) -> None:
    rows = read_rows(out)
    assert [r["index"] for r in rows] == list(range(total))  # every row once: nothing lost, nothing twice
    assert all(r["error"] is None and len(r["classes"]) == 5 for r in rows)
    assert not list(out.rglob(".*.tmp"))


@pytest.mark.parametrize("how", ["sigkill", "ctrl-c"])
def test_a_stopped_run_resumes(predict_graph, tmp_path, how):
    import pyarrow.parquet as pq

    images = tmp_path / "images"
    total = 400
    write_images(images, total, size=(8, 8))
    out = tmp_path / "out"
    proc = _start(predict_graph, images, out)
    _wait_for_parts(proc, out, 2)
    children = _children(proc.pid)
    assert children, "the decoding worker did not start"
    proc.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    if how == "ctrl-c":
        lines = stderr.strip().splitlines()
        assert proc.returncode == 130 and len(lines) == 1 and lines[0].startswith("error: interrupted"), stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    _wait_until_gone(children)  # no orphaned decoding worker, SIGKILL included
    parts = sorted(out.glob("part-*.parquet"))
    assert 2 <= len(parts) < total // 4, "the run was not stopped part-way"
    for part in parts:  # every part on disk is complete
        start, end = map(int, part.name.split("-")[1:3])
        assert pq.read_table(part).column("index").to_pylist() == list(range(start, end))
    resumed = vit5_predict(predict_graph, images, "-o", out, *STOPPED_RUN)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(parts) * 4} already done" in resumed.stdout
    _check_complete(out, images, total)
