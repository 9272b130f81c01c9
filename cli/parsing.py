"""Parsing of comma-separated option values (``--batch 1,8,32``, ``--backends torch,ort``)."""

from collections.abc import Iterable
from typing import Optional

import typer

from vit5_infer.errors import InputError


def split_list(text: str, option: str) -> list[str]:
    """``text`` split at commas, each part stripped; an empty part (``1,,2``, a trailing comma) is refused:
    it is a value the user meant to type and did not."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise typer.BadParameter(f"empty value in {text!r}: give values separated by single commas", param_hint=option)
    return parts


def parse_int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in split_list(text, option)]
    except ValueError:
        raise typer.BadParameter(
            f"expected positive integers separated by commas, got {text!r}", param_hint=option
        ) from None
    if not values or any(v < 1 for v in values):
        raise typer.BadParameter(f"expected positive integers separated by commas, got {text!r}", param_hint=option)
    return list(dict.fromkeys(values))


def parse_name_list(text: str, option: str, choices: Iterable[str]) -> list[str]:
    choices = list(choices)
    names = split_list(text, option)
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown value(s) {', '.join(unknown) or repr(text)}; choose from {', '.join(choices)}", param_hint=option
        )
    return list(dict.fromkeys(names))


def parse_channels(text: Optional[str], option: str) -> Optional[tuple]:
    """``0.5`` or ``0.485,0.456,0.406`` -> three floats (one value applies to every channel), checked as
    the preprocessing checks them (finite, within range) before any work; ``option`` is --mean or --std."""
    from vit5_infer.workflows.options import check_channels

    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise InputError(f"{option} takes one value or three (R, G, B) separated by commas, got {text!r}")
    return check_channels(option.lstrip("-"), values, option)


def parse_mean_std(mean: Optional[str], std: Optional[str]) -> dict[str, Optional[tuple]]:
    """``--mean`` and ``--std`` parsed and checked, as ``{"mean": ..., "std": ...}`` (None where not given)."""
    return {"mean": parse_channels(mean, "--mean"), "std": parse_channels(std, "--std")}
