"""`vit5 ...` as a test runs it: in this process through the CLI's entry function (vit5_infer.cli.main.main, what
the console script calls), with stdout and stderr captured as a subprocess would give them; or, for the tests
that need a process of their own (signals, start-up imports), as a real subprocess."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_vit5(*args, cwd=REPO, timeout=240, process: bool = False) -> subprocess.CompletedProcess:
    argv = [str(a) for a in args]
    if process:
        # PYTHONPATH: the checkout imports as vit5_infer from any working directory, installed or not
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        return subprocess.run(
            [sys.executable, "-m", "vit5_infer.cli.main", *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    import warnings

    from vit5_infer.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        # the entry function installs its own warning display; the caller's is restored after the run
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - what the interpreter would print for an uncaught error
                err.write(traceback.format_exc())
                code = 1
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(["vit5", *argv], code, out.getvalue(), err.getvalue())
