"""``vit5 serve`` (a model on NVIDIA Triton through PyTriton) and ``vit5 triton-repo`` (a model
repository for the stock Triton server): flags in, one call to ``vit5_infer.workflows.serving`` each.

The choices of --backend, --precision, --kind and --tensorrt-accelerator are built from the runner
registry and the serving workflow's tables, never written here."""

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from vit5_infer.workflows.backends import backend_names
from vit5_infer.workflows.serving.choices import ACCELERATOR_PRECISIONS, EXPORT_PRECISIONS, INSTANCE_KINDS

from . import console
from .model_options import ModelOptions, model_options
from .parsing import parse_int_list
from .shared_options import (
    BATCH_PANEL,
    InstancesOption,
    MaxBatchOption,
    MaxQueueDelayOption,
    PreferredBatchOption,
    choices,
    threads_option,
)

NETWORK_PANEL = "Network"
SOURCE_HELP = "Preset, checkpoint (exported to a temporary ONNX file), .onnx file or TensorRT engine."


def serve_backend_choices() -> type[enum.Enum]:
    return choices("ServeBackend", backend_names())


ServeBackend = serve_backend_choices()
ExportPrecision = choices("ExportPrecision", EXPORT_PRECISIONS)
AcceleratorPrecision = choices("AcceleratorPrecision", ACCELERATOR_PRECISIONS)
InstanceKind = choices("InstanceKind", INSTANCE_KINDS)

# serve's and triton-repo's flags for the model they put on a server
PrecisionOption = Annotated[
    ExportPrecision, typer.Option("--precision", help="Precision of the graph a preset/checkpoint is exported to.")
]
ModelNameOption = Annotated[
    Optional[str],
    typer.Option("--name", help="Model name on the server (default: preset name or file stem).", show_default=False),
]


def _preferred(text: Optional[str]) -> tuple:
    return tuple(parse_int_list(text, "--preferred-batch")) if text else ()


def _gpu_indices(text: Optional[str]) -> tuple:
    """``0,1`` -> (0, 1): GPU indices count from 0."""
    if text is None:
        return ()
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise typer.BadParameter(
            f"expected GPU indices (0, 1, ...) separated by commas, got {text!r}", param_hint="--gpus"
        )
    return tuple(dict.fromkeys(int(part) for part in parts))


@model_options
def serve(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP, show_default=False)],
    model_opts: ModelOptions,
    backend: Annotated[
        Optional[ServeBackend],
        typer.Option(
            "--backend",
            help="Runner: ort for ONNX (and exported presets/checkpoints), trt for an engine, or any other runner.",
            show_default=False,
        ),
    ] = None,
    precision: PrecisionOption = ExportPrecision.fp32,
    name: ModelNameOption = None,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).", rich_help_panel=NETWORK_PANEL),
    ] = "127.0.0.1",
    http_port: Annotated[
        int, typer.Option("--http-port", help="HTTP/REST port.", rich_help_panel=NETWORK_PANEL)
    ] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="gRPC port.", rich_help_panel=NETWORK_PANEL)] = 8001,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", help="Prometheus metrics port.", rich_help_panel=NETWORK_PANEL)
    ] = 8002,
    max_batch: MaxBatchOption = None,
    preferred_batch: PreferredBatchOption = None,
    max_queue_delay: MaxQueueDelayOption = 0,
    instances: InstancesOption = 1,
    threads: Annotated[Optional[int], threads_option(BATCH_PANEL)] = None,
    log_file: Annotated[
        Optional[Path], typer.Option("--log-file", help="Keep tritonserver's log in this file.", show_default=False)
    ] = None,
    verbose: Annotated[int, typer.Option("--log-verbose", help="tritonserver's verbose log level (0: off).")] = 0,
) -> None:
    """Serve a model on NVIDIA Triton Inference Server (through PyTriton) until Ctrl-C or SIGTERM.

    Inputs: pixel_values [B, C, H, W], or images (encoded PNG/JPEG bytes, decoded and preprocessed on
    the server as the graph's metadata says).  Outputs: every output of the runner (logits, ...).
    """
    from vit5_infer.workflows.serving import ServeOptions, ServingOptions
    from vit5_infer.workflows.serving import serve as serve_model

    options = ServingOptions(
        source,
        ServeOptions(
            host=host,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            instances=instances,
            max_queue_delay_us=max_queue_delay,
            preferred_batch_sizes=_preferred(preferred_batch),
            log_verbose=verbose,
            log_file=str(log_file) if log_file else None,
        ),
        backend=backend.value if backend else None,
        precision=precision.value,
        name=name,
        max_batch=max_batch,
        threads=threads,
        load=model_opts,
    )

    def ready(server) -> None:
        sig = server.signature
        console.err.print(
            console.styled(
                "serving ",
                (server.name, "bold"),
                f" ({server.served.backend}, max batch {sig.max_batch}, "
                f"{options.server.instances} instance(s)); Ctrl-C to stop",
            )
        )
        console.out.print(f"HTTP     {server.http_url}")
        console.out.print(f"gRPC     {server.grpc_url}")
        console.out.print(f"metrics  {server.metrics_url}")
        pixel = sig.pixel_input
        console.out.print(
            f"inputs   {pixel.name} {pixel.dtype} [B, {', '.join(map(str, pixel.dims))}] | images bytes [B, 1]"
        )
        console.out.print(
            "outputs  " + ", ".join(f"{t.name} {t.dtype} [B, {', '.join(map(str, t.dims))}]" for t in sig.outputs)
        )

    with console.status(f"preparing {source}") as status:
        live = {"status": status}

        def progress(message: str) -> None:
            if live["status"] is not None:
                live["status"].update(message)

        def on_ready(server) -> None:
            live["status"].stop()
            live["status"] = None
            ready(server)

        serve_model(options, progress, on_ready=on_ready, warn=console.warn)
    console.err.print("stopped")


@model_options
def triton_repo(
    source: Annotated[
        str,
        typer.Argument(
            help="Preset, checkpoint (exported here), .onnx file or TensorRT engine (.plan/.engine).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Model repository folder (created if missing); the model goes to OUTPUT/NAME/.",
            show_default=False,
        ),
    ],
    model_opts: ModelOptions,
    name: ModelNameOption = None,
    precision: PrecisionOption = ExportPrecision.fp32,
    opset: Annotated[
        int,
        typer.Option(
            "--opset",
            help="ONNX opset of the export: 23 needs ONNX Runtime >= 1.22 in the server; 17/18 for older Triton "
            "releases.",
        ),
    ] = 23,
    kind: Annotated[
        Optional[InstanceKind],
        typer.Option(
            "--kind",
            help="Instance kind (default: gpu for an engine, cpu for ONNX); gpu puts --instances on each GPU.",
            show_default=False,
            rich_help_panel=BATCH_PANEL,
        ),
    ] = None,
    instances: InstancesOption = 1,
    gpus: Annotated[
        Optional[str],
        typer.Option(
            "--gpus",
            help="GPU indices for --kind gpu, e.g. 0,1 (default: all).",
            show_default=False,
            rich_help_panel=BATCH_PANEL,
        ),
    ] = None,
    max_batch: MaxBatchOption = None,
    preferred_batch: PreferredBatchOption = None,
    max_queue_delay: MaxQueueDelayOption = 100,
    tensorrt_accelerator: Annotated[
        Optional[AcceleratorPrecision],
        typer.Option(
            "--tensorrt-accelerator",
            help="ONNX on GPU: run through ONNX Runtime's TensorRT execution provider at this precision.",
            show_default=False,
        ),
    ] = None,
    warmup: Annotated[
        bool, typer.Option("--warmup/--no-warmup", help="Zero-filled warm-up requests at batch 1 and max batch.")
    ] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT/NAME if it exists.")] = False,
) -> None:
    """Write a model repository for the stock Triton server: NAME/config.pbtxt and NAME/1/model.onnx or model.plan."""
    from vit5_infer.workflows.serving import RepositoryOptions, RepositoryWriteOptions, write_repository

    options = RepositoryWriteOptions(
        source,
        output,
        RepositoryOptions(
            instances=instances,
            kind=kind.value if kind else None,
            gpus=_gpu_indices(gpus),
            max_batch=max_batch,
            preferred_batch_sizes=_preferred(preferred_batch),
            max_queue_delay_us=max_queue_delay,
            tensorrt_accelerator=tensorrt_accelerator.value if tensorrt_accelerator else None,
            warmup=warmup,
        ),
        name=name,
        precision=precision.value,
        opset=opset,
        load=model_opts,
        force=force,
    )
    with console.status(f"writing the model repository for {source}") as status:
        result = write_repository(options, lambda message: status.update(message))
    sig = result.signature
    console.out.print(
        f"wrote {result.model_dir} ({result.platform}, max_batch_size "
        f"{sig.max_batch if sig.static_batch is None else 0})"
    )
    for path in result.files:
        console.out.print(f"  {path}")
    if result.validated:
        console.out.print("config.pbtxt parses as Triton's ModelConfig")
    else:
        console.warn(
            "config.pbtxt not checked against Triton's ModelConfig (tritonclient is not installed: "
            "pip install 'vit5-infer[serve]')"
        )
    console.out.print(
        f"run: docker run --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v {Path(output).resolve()}:/models "
        "nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models"
    )
