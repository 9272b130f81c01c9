"""Errors that describe a user mistake (bad config, bad file, bad input).

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class Vit5Error(Exception):
    """Base class for every user-facing error of the toolkit."""


class ConfigError(Vit5Error, ValueError):
    """An architecture that upstream would build wrongly or not at all (SPEC section 9)."""


class CheckpointError(Vit5Error):
    """A file that is not a usable ViT-5 checkpoint."""


class InputError(Vit5Error, ValueError):
    """An input tensor of the wrong shape, layout or dtype."""


class BenchError(Vit5Error):
    """A benchmark that cannot run as asked (bad option, missing optional dependency, missing reference)."""


class PredictError(Vit5Error):
    """A ``vit5 predict`` run that cannot start or go on as asked (bad option, input list or output dataset)."""


class OutputError(Vit5Error):
    """An output the disk cannot take (full, over quota, read-only): the run's result is not written."""
