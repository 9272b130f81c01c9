"""Load on a served model vs the same runner in-process (served against in-process throughput).

One command (from the repository root, in the environment with the serve extra):

    python benchmarks/serve_load.py vit5-small --out benchmarks/results/serve

It exports SOURCE once, starts ``vit5 serve`` on that file (a separate process, loopback ports)
and then, for a few rounds, times the same runner in-process at batch 1 and 8 (in this process,
the server idle) and drives the server with 1/4/8/16 concurrent clients that each send
single-image requests back to back (the runner idle).  Alternating the two makes a shared
machine's load weigh on both alike.  It writes
``serve_load.json`` and ``serve_load.png``: throughput and p50/p99 latency per level, and the
ratio served@8 clients / in-process batch 8 that the issue asks to be >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def percentiles(latencies: list[float]) -> dict:
    ms = np.asarray(latencies) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "count": int(ms.size)}


def in_process(runner, batch: int, seconds: float, image_shape) -> dict:
    x = np.random.default_rng(batch).standard_normal((batch, *image_shape)).astype(np.float32)
    for _ in range(2):
        runner.run(x)
    latencies, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        runner.run(x)
        latencies.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    return {"batch": batch, "images_per_s": batch * len(latencies) / wall, **percentiles(latencies)}


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start_server(path: Path, name: str, backend: str, threads, max_batch: int, queue_delay_us: int, log: Path):
    http, grpc, metrics = free_ports(3)
    command = [
        sys.executable,
        "-m",
        "vit5_infer.cli.main",
        "serve",
        str(path),
        "--name",
        name,
        "--backend",
        backend,
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc),
        "--metrics-port",
        str(metrics),
        "--max-batch",
        str(max_batch),
        "--max-queue-delay",
        str(queue_delay_us),
    ]
    if threads:
        command += ["--threads", str(threads)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    return proc, {"http": f"127.0.0.1:{http}", "grpc": f"127.0.0.1:{grpc}"}


def wait_ready(url: str, name: str, protocol: str, proc, timeout_s: float = 300) -> None:
    from vit5_infer.workflows.serving.client import TritonModelClient

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vit5 serve exited with {proc.returncode}")
        with TritonModelClient(url, name, protocol) as client:
            if client.is_ready():
                return
        time.sleep(0.5)
    raise SystemExit("the server did not become ready in time")


def served_load(url: str, name: str, protocol: str, clients: int, seconds: float, warmup_s: float, image_shape) -> dict:
    from vit5_infer.workflows.serving.client import TritonModelClient

    x = np.random.default_rng(clients).standard_normal((1, *image_shape)).astype(np.float32)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)
    go = threading.Event()
    window = {}

    def client_loop(index: int) -> None:
        with TritonModelClient(url, name, protocol, timeout_s=120) as client:
            try:
                client.infer(x, outputs=["logits"])
                barrier.wait()
                go.wait()
                while time.perf_counter() < window["end"]:
                    t = time.perf_counter()
                    client.infer(x, outputs=["logits"])
                    if time.perf_counter() > window["start"]:  # after the warm-up
                        latencies[index].append(time.perf_counter() - t)
            except Exception as exc:  # noqa: BLE001 - reported in the JSON
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                barrier.abort()

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        barrier.wait(timeout=300)  # every client connected and answered once
    except threading.BrokenBarrierError:
        pass
    window["start"] = time.perf_counter() + warmup_s
    window["end"] = window["start"] + seconds
    go.set()
    for t in threads:
        t.join(timeout=seconds + warmup_s + 300)
    done = [value for per_client in latencies for value in per_client]
    if errors or not done:
        return {"clients": clients, "errors": errors[:5]}
    return {"clients": clients, "images_per_s": len(done) / seconds, **percentiles(done)}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    served = [r for r in report["served"] if "images_per_s" in r]
    fig, (ax_tp, ax_lat) = plt.subplots(1, 2, figsize=(11, 4))
    clients = [r["clients"] for r in served]
    ax_tp.plot(
        clients, [r["images_per_s"] for r in served], "o-", label=f"served ({report['protocol']}, 1 image/request)"
    )
    for row, style in zip(report["in_process"], ("--", ":")):
        ax_tp.axhline(row["images_per_s"], linestyle=style, color="gray", label=f"in-process batch {row['batch']}")
    ax_tp.set_xlabel("concurrent clients")
    ax_tp.set_ylabel("images / s")
    ax_tp.set_xticks(clients)
    ax_tp.legend()
    ax_lat.plot(clients, [r["p50_ms"] for r in served], "o-", label="p50")
    ax_lat.plot(clients, [r["p99_ms"] for r in served], "s-", label="p99")
    ax_lat.set_xlabel("concurrent clients")
    ax_lat.set_ylabel("request latency (ms)")
    ax_lat.set_xticks(clients)
    ax_lat.legend()
    fig.suptitle(f"{report['source']} on {report['backend']}: Triton (PyTriton) vs in-process")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def median_row(rows: list[dict], key: str) -> dict:
    """The per-level medians over rounds (each round's row kept under ``rounds``)."""
    good = [r for r in rows if "images_per_s" in r]
    if not good:
        return {key: rows[0][key], "errors": [e for r in rows for e in r.get("errors", [])][:5]}
    med = {name: float(np.median([r[name] for r in good])) for name in ("images_per_s", "p50_ms", "p99_ms")}
    return {key: rows[0][key], **med, "rounds": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", default="vit5-small", help="preset, checkpoint or .onnx file")
    parser.add_argument("--backend", default="ort")
    parser.add_argument("--threads", type=int, default=None, help="runner threads (default: the runtime's)")
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed window per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed seconds before each served level")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="in-process and served measurements alternate this many times (a shared machine's "
        "load then weighs on both alike); medians are reported",
    )
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-queue-delay", type=int, default=0, help="dynamic batcher delay, microseconds")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve"))
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)

    from vit5_infer.workflows.serving import resolve_served_model

    in_rows: dict[int, list] = {1: [], 8: []}
    served_rows: dict[int, list] = {c: [] for c in clients}
    ratios = []
    with tempfile.TemporaryDirectory(prefix="serve-load-") as workdir:
        served = resolve_served_model(
            args.source,
            workdir,
            backend=args.backend,
            max_batch=args.max_batch,
            threads=args.threads,
            progress=lambda m: print(m, file=sys.stderr),
        )
        if served.path is None:
            raise SystemExit("serve_load.py compares a served file (ONNX or engine); choose an ort/trt backend")
        shape = served.signature.pixel_input.dims
        proc, urls = start_server(
            served.path,
            served.name,
            args.backend,
            args.threads,
            args.max_batch,
            args.max_queue_delay,
            args.out / "server.log",
        )
        try:
            wait_ready(urls[args.protocol], served.name, args.protocol, proc)
            # the server's own runner: same file, backend, threads and batch hint (--max-batch)
            with served.new_runner() as runner:
                for round_ in range(args.rounds):
                    for batch in (1, 8):
                        in_rows[batch].append(in_process(runner, batch, args.seconds, shape))
                        print(f"round {round_ + 1}: in-process batch {batch}: {in_rows[batch][-1]}", file=sys.stderr)
                    for count in clients:
                        served_rows[count].append(
                            served_load(
                                urls[args.protocol], served.name, args.protocol, count, args.seconds, args.warmup, shape
                            )
                        )
                        print(f"round {round_ + 1}: served {count}: {served_rows[count][-1]}", file=sys.stderr)
                    if 8 in served_rows and "images_per_s" in served_rows[8][-1]:
                        ratios.append(served_rows[8][-1]["images_per_s"] / in_rows[8][-1]["images_per_s"])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)

    in_proc = [median_row(in_rows[b], "batch") for b in (1, 8)]
    rows = [median_row(served_rows[c], "clients") for c in clients]
    report = {
        "source": args.source,
        "backend": args.backend,
        "protocol": args.protocol,
        "threads": args.threads,
        "max_batch": args.max_batch,
        "max_queue_delay_us": args.max_queue_delay,
        "seconds_per_measurement": args.seconds,
        "rounds": args.rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "in_process": in_proc,
        "served": rows,
        "served8_vs_in_process_batch8_per_round": ratios,
        "served8_vs_in_process_batch8": float(np.median(ratios)) if ratios else None,
        "target": ">= 0.8",
    }
    (args.out / "serve_load.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "serve_load.png")
    print(
        f"in-process: batch 1 {in_proc[0]['images_per_s']:.2f} img/s, batch 8 {in_proc[1]['images_per_s']:.2f} img/s "
        f"(medians of {args.rounds} rounds)"
    )
    for r in rows:
        if "images_per_s" in r:
            print(
                f"served, {r['clients']:2d} clients: {r['images_per_s']:.2f} img/s, p50 {r['p50_ms']:.1f} ms, "
                f"p99 {r['p99_ms']:.1f} ms"
            )
        else:
            print(f"served, {r['clients']:2d} clients: errors {r['errors']}")
    if ratios:
        ratio = report["served8_vs_in_process_batch8"]
        print(
            f"served@8 clients / in-process batch 8 = {ratio:.2f}x, per round {', '.join(f'{x:.2f}' for x in ratios)} "
            f"({'PASS' if ratio >= 0.8 else 'FAIL'} >= 0.8)"
        )
    print(f"wrote {args.out / 'serve_load.json'} and {args.out / 'serve_load.png'}")


if __name__ == "__main__":
    main()
