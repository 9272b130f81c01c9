"""Flags that several commands take with one meaning: the preprocessing statistics, the class labels of an
ImageFolder, CPU threads, and Triton's batching and instances (``serve``, ``triton-repo``).

Each flag's name, help and ``show_default`` live here.  A fixed option is an ``Annotated`` alias; an option
that commands file under different help panels comes from a function of the panel.  The command keeps its
own default value, which Typer reads from the signature.
"""

import enum
from collections.abc import Iterable
from typing import Annotated, Any, Optional

import typer

BATCH_PANEL = "Batching and instances"
FROM_GRAPH = "the graph's metadata, else ImageNet's"


def choices(name: str, values: Iterable) -> type[enum.Enum]:
    """A Typer choice type whose members are ``values`` (strings, or str-valued enum members), so that a
    flag's choices come from the table that holds them."""
    return enum.Enum(name, [(str(value), str(value)) for value in values], type=str)  # type: ignore[return-value]


def _flag(flag: str, help: str, panel: Optional[str], show_default: bool = False) -> Any:
    return typer.Option(flag, help=help, rich_help_panel=panel, show_default=show_default)


def channel_option(flag: str, panel: Optional[str] = None, default: str = FROM_GRAPH) -> Any:
    """``--mean`` or ``--std`` (a string; ``parsing.parse_mean_std`` checks it); ``default`` says where the
    value comes from when the flag is not given."""
    statistic = flag.lstrip("-")
    return _flag(
        flag, f"Per-channel {statistic} of the image preprocessing: one value or R,G,B (default: {default}).", panel
    )


def labels_option(panel: Optional[str] = None) -> Any:
    return _flag(
        "--labels",
        "Class index of each class folder of an ImageFolder: a .txt file with one folder name per line (index = line), "
        "or a .json list of names or {folder: index}; adds top-1/top-5 accuracy.",
        panel,
    )


def threads_option(panel: Optional[str] = None) -> Any:
    return _flag("--threads", "CPU threads of torch and ONNX Runtime, per runner (default: the runtime's).", panel)


MaxBatchOption = Annotated[
    Optional[int],
    _flag(
        "--max-batch",
        "Largest batch the dynamic batcher forms, Triton's max_batch_size (default: the engine's profile, or 8).",
        BATCH_PANEL,
    ),
]
PreferredBatchOption = Annotated[
    Optional[str], _flag("--preferred-batch", "Batch sizes the dynamic batcher aims for, e.g. 4,8.", BATCH_PANEL)
]
MaxQueueDelayOption = Annotated[
    int,
    _flag("--max-queue-delay", "Microseconds a request may wait for a fuller batch.", BATCH_PANEL, show_default=True),
]
InstancesOption = Annotated[
    int,
    _flag(
        "--instances",
        "Model instances: copies of the model that serve requests in parallel.",
        BATCH_PANEL,
        show_default=True,
    ),
]
