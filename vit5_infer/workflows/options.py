"""What every workflow takes about its model and its images, as the CLI builds it: how a preset or checkpoint
is loaded (``LoadOptions``, and the architecture overrides a bare state_dict cannot tell), and the check of
the preprocessing channels a user gives.  The definitions stay in the core; this is the workflows' face of
them, so the CLI reaches the library through the workflows only."""

from vit5_infer.architecture import OVERRIDES
from vit5_infer.load_options import LoadOptions
from vit5_infer.preprocessing import check_channels

__all__ = ["OVERRIDES", "LoadOptions", "check_channels"]
