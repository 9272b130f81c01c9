"""The backend names the commands offer, read from the runner registry (``vit5_infer.engines.registry``):
the CLI builds its choices from these, so a registered runner is offered without touching the CLI."""

from __future__ import annotations


def backend_names() -> tuple[str, ...]:
    """Every registered backend, in the registry's order."""
    from vit5_infer.engines.registry import BACKENDS

    return tuple(BACKENDS)
