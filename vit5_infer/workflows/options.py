"""What every workflow takes about its model and its images, as the CLI builds it: how a preset or checkpoint
is loaded (``LoadOptions``, and the architecture overrides a bare state_dict cannot tell), and the check of
the preprocessing channels a user gives.  The definitions stay in the core; this is the workflows' face of
them, so the CLI reaches the library through the workflows only."""

from typing import Optional

from vit5_infer.architecture import OVERRIDES
from vit5_infer.load_options import LoadOptions


def check_channels(name: str, values, what: Optional[str] = None) -> tuple:
    """The preprocessing's own check of a mean or std (vit5_infer.preprocessing.check_channels), imported when
    called: preprocessing imports NumPy, which `vit5 --help` must not load."""
    from vit5_infer.preprocessing import check_channels as check

    return check(name, values, what)


__all__ = ["OVERRIDES", "LoadOptions", "check_channels"]
