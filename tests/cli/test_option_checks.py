"""Option checks reached without a subprocess: every value of a class refused in one line by the
library function the CLI calls (the real entry point is exercised once per class in test_hostile_inputs)."""

from __future__ import annotations

import math

import pytest
import typer

from vit5_infer.cli import console
from vit5_infer.cli.parsing import parse_channels, parse_int_list, parse_name_list
from vit5_infer.errors import BenchError, InputError
from vit5_infer.exporters.quantization.export import unmatched_patterns
from vit5_infer.memory import check_inputs_fit, physical_memory_bytes
from vit5_infer.workflows.benchmark.timing import MAX_SECONDS, TimingPlan
from vit5_infer.workflows.debug.layer_compare import LayerTolerance, check_tolerance


@pytest.mark.parametrize("text", ["1,,2", "1,", ",1", " , ", "", "1, ,8"])
def test_an_empty_item_in_a_list_is_refused(text):
    with pytest.raises(typer.BadParameter, match="empty value"):
        parse_int_list(text, "--batch")
    with pytest.raises(typer.BadParameter, match="empty value"):
        parse_name_list(
            text.replace("1", "torch").replace("2", "ort").replace("8", "ort"), "--backends", ["torch", "ort"]
        )


def test_lists_without_empty_items_parse_as_before():
    assert parse_int_list("1, 8,32,8", "--batch") == [1, 8, 32]
    assert parse_name_list("torch , ort", "--backends", ["torch", "ort"]) == ["torch", "ort"]


@pytest.mark.parametrize(
    "option, text, fragment",
    [
        ("--mean", "nan", "finite"),
        ("--mean", "inf", "finite"),
        ("--mean", "-inf", "finite"),
        ("--mean", "1e300", "must lie in"),
        ("--mean", "0.5,nan,0.5", "finite"),
        ("--std", "1e-300", "must lie in"),
        ("--std", "0", "must lie in"),
        ("--std", "inf", "finite"),
        ("--std", "nan", "finite"),
        ("--std", "-1", "must lie in"),
        ("--mean", "0.5,", "one value or three"),
        ("--mean", "0.5,0.5", "one value or three"),
    ],
)
def test_mean_and_std_are_checked_where_they_are_parsed(option, text, fragment):
    with pytest.raises(InputError, match=fragment) as info:
        parse_channels(text, option)
    assert str(info.value).startswith(option)


def test_valid_mean_and_std_parse():
    assert parse_channels("0.5", "--mean") == (0.5, 0.5, 0.5)
    assert parse_channels("0.229,0.224,0.225", "--std") == (0.229, 0.224, 0.225)


@pytest.mark.parametrize("seconds", [math.inf, math.nan, 0.0, -1.0, MAX_SECONDS * 2])
def test_bench_seconds_must_be_a_finite_budget(seconds):
    with pytest.raises(BenchError, match="--seconds must be > 0 and at most"):
        TimingPlan(iters=None, seconds=seconds)


@pytest.mark.parametrize(
    "rel_l2, cosine, fragment",
    [
        (math.nan, None, "--rel-l2"),
        (-1.0, None, "--rel-l2"),
        (math.inf, None, "--rel-l2"),
        (None, math.nan, "--cosine"),
        (None, 2.0, "--cosine"),
        (None, -1.5, "--cosine"),
    ],
)
def test_debug_tolerances_are_checked(rel_l2, cosine, fragment):
    with pytest.raises(InputError, match=fragment):
        check_tolerance(rel_l2, cosine)
    with pytest.raises(InputError, match=fragment):
        LayerTolerance(rel_l2=0.01 if rel_l2 is None else rel_l2, cosine=0.99 if cosine is None else cosine)


def test_valid_debug_tolerances_pass():
    check_tolerance(0.0, -1.0)
    check_tolerance(1e-5, 1.0)
    assert LayerTolerance(rel_l2=0.1, cosine=0.99).cosine == 0.99


def test_keep_float_patterns_that_match_no_layer_are_named():
    names = ["embed/proj", "blocks.0/attn/qkv", "head/fc"]
    assert unmatched_patterns(["embed/", "short_conv", "blocks.9"], names) == ["short_conv", "blocks.9"]
    assert unmatched_patterns([], names) == []


@pytest.mark.skipif(physical_memory_bytes() is None, reason="this platform does not report its memory size")
@pytest.mark.parametrize("count, what", [(99_999_999_999, "--calibration-count"), (1_000_000_000, "--batch")])
def test_inputs_that_cannot_fit_in_memory_are_refused(count, what):
    with pytest.raises(InputError, match=f"{what} {count} needs about .* GiB"):
        check_inputs_fit((3, 224, 224), count, what)
    check_inputs_fit((3, 32, 32), 128, what)


def test_progress_bars_are_off_when_stderr_is_not_a_terminal(monkeypatch):
    """A transient bar cannot be erased in a log or a pipe: it left a blank line before every error."""
    monkeypatch.setattr(console.err, "_force_terminal", False)
    assert console.make_progress().disable is True


def test_library_warnings_print_as_one_warning_line(capsys):
    import warnings

    with warnings.catch_warnings():  # restores Python's own showwarning afterwards
        warnings.simplefilter("always")
        console.show_warnings_as_lines()
        warnings.warn(
            "--images: cannot read folder x/locked (Permission denied); its images are left out", stacklevel=1
        )
    assert capsys.readouterr().err == (
        "warning: --images: cannot read folder x/locked (Permission denied); its images are left out\n"
    )


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ('{"engine": 1, "engine": 2}', "duplicate key 'engine'"),
        ("[1, 2]", "expected a JSON object, got a list"),
        ('{"x": NaN}', "NaN is not a JSON number"),
    ],
)
def test_an_engine_manifest_is_read_by_the_strict_reader(tmp_path, text, fragment):
    from vit5_infer.engine_manifest import manifest_path_for, read_manifest
    from vit5_infer.engines.errors import ManifestError

    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine")
    manifest_path_for(engine).write_text(text)
    with pytest.raises(ManifestError, match=f"not a readable JSON manifest: .*{fragment}".replace("[", r"\[")):
        read_manifest(engine)
