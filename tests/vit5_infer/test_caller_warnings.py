"""Warnings point at the code that called the toolkit, however deep inside it they were raised."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from vit5_infer.caller_warnings import warn_at_caller


def _toolkit_chain(depth: int, innermost, *args):
    """``depth`` nested functions whose module is inside the vit5_infer namespace, the last calling
    ``innermost(*args)``: the call path a workflow, an engine and a helper make."""
    namespace = {"__name__": "vit5_infer.workflows.chain_0", "innermost": innermost, "args": args}
    exec("def call():\n    innermost(*args)\n", namespace)
    for level in range(1, depth):
        inner = namespace["call"]
        namespace = {"__name__": f"vit5_infer.workflows.chain_{level}", "inner": inner}
        exec("def call():\n    inner()\n", namespace)
    return namespace["call"]


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_the_warning_names_the_first_frame_outside_the_toolkit(depth):
    call = _toolkit_chain(depth, warn_at_caller, "careful", RuntimeWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
        line = _line_of_previous_statement()
    assert len(caught) == 1 and caught[0].category is RuntimeWarning
    assert caught[0].filename == __file__ and caught[0].lineno == line


def _line_of_previous_statement() -> int:
    import inspect

    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno - 1


def test_a_not_fused_verdict_reached_through_the_layers_warns_the_caller(tmp_path):
    from vit5_infer.engines.attention_report import fusion_report
    from vit5_infer.engines.tensorrt_builder import AttentionNotFusedWarning, _fusion_problems

    report = fusion_report('{"Layers": [{"Name": "g", "TacticName": "sm80_xmma_gemm"}]}', 2)
    call = _toolkit_chain(2, _fusion_problems, Path("m.engine"), report, print)
    with pytest.warns(AttentionNotFusedWarning) as caught:
        call()
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]


def test_a_warning_while_a_toolkit_module_is_imported_names_the_import(tmp_path):
    import importlib.util

    source = tmp_path / "probe.py"
    source.write_text("from vit5_infer.caller_warnings import warn_at_caller\nwarn_at_caller('on import')\n")
    spec = importlib.util.spec_from_file_location("vit5_infer._import_probe", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec.loader.exec_module(module)
        line = _line_of_previous_statement()
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]


def test_a_warning_to_a_main_module_is_shown_not_raised():
    """``python -c`` and ``python -m`` callers are ``__main__`` modules whose loader cannot give their source;
    the warning must still be shown there (warnings.warn asks for no source either)."""
    import subprocess
    import sys

    code = "from vit5_infer.caller_warnings import warn_at_caller\nwarn_at_caller('look here')\nprint('went on')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "UserWarning: look here" in done.stderr and done.stdout == "went on\n"
