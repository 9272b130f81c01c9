"""Flags that several commands take with one meaning: the preprocessing statistics, the class labels of an
ImageFolder, CPU threads, and Triton's batching and instances (``serve``, ``triton-repo``).

Each flag's name, help and ``show_default`` live here.  A fixed option is an ``Annotated`` alias; an option
that commands file under different help panels comes from a function of the panel.  The command keeps its
own default value, which Typer reads from the signature.
"""

from typing import Annotated, Any, Optional

import typer

BATCH_PANEL = "Batching and instances"
FROM_GRAPH = "the graph's metadata, else ImageNet's"


def channel_option(flag: str, panel: Optional[str] = None, default: str = FROM_GRAPH) -> Any:
    """``--mean`` or ``--std`` (a string; ``parsing.parse_mean_std`` checks it); ``default`` says where the
    value comes from when the flag is not given."""
    statistic = flag.lstrip("-")
    return typer.Option(
        flag,
        help=f"Per-channel {statistic} of the image preprocessing: one value or R,G,B (default: {default}).",
        rich_help_panel=panel,
        show_default=False,
    )


def labels_option(panel: Optional[str] = None) -> Any:
    return typer.Option(
        "--labels",
        help="Class index of each class folder of an ImageFolder: a .txt file with one folder name per line (index = "
        "line), or a .json list of names or {folder: index}; adds top-1/top-5 accuracy.",
        rich_help_panel=panel,
        show_default=False,
    )


def threads_option(panel: Optional[str] = None) -> Any:
    return typer.Option(
        "--threads",
        help="CPU threads of torch and ONNX Runtime, per runner (default: the runtime's).",
        rich_help_panel=panel,
        show_default=False,
    )


MaxBatchOption = Annotated[
    Optional[int],
    typer.Option(
        "--max-batch",
        help="Largest batch the dynamic batcher forms, Triton's max_batch_size (default: the engine's profile, or 8).",
        show_default=False,
        rich_help_panel=BATCH_PANEL,
    ),
]
PreferredBatchOption = Annotated[
    Optional[str],
    typer.Option(
        "--preferred-batch",
        help="Batch sizes the dynamic batcher aims for, e.g. 4,8.",
        show_default=False,
        rich_help_panel=BATCH_PANEL,
    ),
]
MaxQueueDelayOption = Annotated[
    int,
    typer.Option(
        "--max-queue-delay", help="Microseconds a request may wait for a fuller batch.", rich_help_panel=BATCH_PANEL
    ),
]
InstancesOption = Annotated[
    int,
    typer.Option(
        "--instances",
        help="Model instances: copies of the model that serve requests in parallel.",
        rich_help_panel=BATCH_PANEL,
    ),
]
