"""How long `vit5 --help` and `vit5 presets` take to start, against a bare Python interpreter's start.

Run: python benchmarks/cli_startup.py [--repeat 7]
Prints the median wall time of each command over --repeat runs (after one warm run), its ratio to
`python -c pass`, and whether torch was imported (it must not be: start-up stays well under 1 s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "vit5 --help": [sys.executable, "-m", "vit5_infer.cli.main", "--help"],
    "vit5 presets": [sys.executable, "-m", "vit5_infer.cli.main", "presets"],
}
TORCH_CHECK = (
    "import sys, runpy; sys.argv = ['vit5'] + sys.argv[1:]\n"
    "try:\n    runpy.run_module('vit5_infer.cli.main', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "print('TORCH_IMPORTED=' + str('torch' in sys.modules), file=sys.stderr)"
)


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def torch_imported(args: list[str]) -> bool:
    proc = subprocess.run([sys.executable, "-c", TORCH_CHECK, *args], capture_output=True, text=True, check=True)
    return "TORCH_IMPORTED=True" in proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = {}
    for name, command in COMMANDS.items():
        wall_time(command)  # warm the file cache
        results[name] = statistics.median(wall_time(command) for _ in range(args.repeat))
    base = results["python -c pass"]
    report = {name: {"median_s": round(t, 3), "vs_bare_python": round(t / base, 2)} for name, t in results.items()}
    report["vit5 --help"]["imports_torch"] = torch_imported(["--help"])
    report["vit5 presets"]["imports_torch"] = torch_imported(["presets"])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
