"""The ``vit5`` command: Typer app and the ``main()`` entry point.

User mistakes (missing file, wrong shape, corrupt checkpoint, mismatched engine, unknown preset)
reach ``main()`` as ``Vit5Error`` and are printed as one line; anything else keeps its traceback,
because it is a bug.
"""

import sys
from typing import Annotated, Optional


def _interrupted() -> None:
    print("error: interrupted", file=sys.stderr)
    sys.exit(130)


# Ctrl-C while the CLI's modules (or torch, later) import must end like any other Ctrl-C: one line.
try:
    import typer

    import vit5_infer
    from vit5_infer.errors import Vit5Error, disk_error

    from . import bench_cmd, build_engine_cmd, debug_cmd, export_cmd, inspect_cmd, predict_cmd, presets_cmd, serve_cmd
except KeyboardInterrupt:
    _interrupted()

app = typer.Typer(
    name="vit5",
    help="Inference toolkit for NVIDIA nvsubquadratic ViT-5 networks: export to ONNX, build TensorRT "
    "engines, benchmark backends against the PyTorch reference, run a model over image collections, "
    "inspect files.\n\n"
    "SOURCE is a preset name (see 'vit5 presets'), a checkpoint (.safetensors, .pt, .ckpt), "
    "an ONNX file or, where noted, a TensorRT engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vit5-infer {vit5_infer.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    pass  # the app's help text comes from Typer(help=...); this callback only carries --version


app.command("export", no_args_is_help=True)(export_cmd.export)
app.command("build-engine", no_args_is_help=True)(build_engine_cmd.build_engine)
app.command("bench", no_args_is_help=True)(bench_cmd.bench)
app.command("predict", no_args_is_help=True)(predict_cmd.predict)
app.command("inspect", no_args_is_help=True)(inspect_cmd.inspect_file)
app.command("presets")(presets_cmd.presets)
app.command("debug", no_args_is_help=True)(debug_cmd.debug)
app.command("serve", no_args_is_help=True)(serve_cmd.serve)
app.command("triton-repo", no_args_is_help=True)(serve_cmd.triton_repo)


def one_line(message: str) -> str:
    return " ".join(str(message).split()) or "unknown error"


def main(argv: Optional[list] = None) -> None:
    from .console import show_warnings_as_lines

    show_warnings_as_lines()
    try:
        app(args=argv, prog_name="vit5")
    except Vit5Error as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        # A full disk (or a read-only one) is the machine's state, not a bug, wherever the write happened.
        error = disk_error(exc)
        if error is None:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        _interrupted()


if __name__ == "__main__":
    main()
