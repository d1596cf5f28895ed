"""CLI latency: how long a command takes to answer when it has nothing heavy to do.

Each command runs as a user types it (`python -m harness.cli ...`, a fresh process every time, in
a temporary folder: `PYTHONPATH` may point at another commit's tree to compare),
`--repeats` times, interleaved; the table gives the median wall time, the slowest, and whether
the process imported TensorFlow (checked in a second run of the command in-process).

    python benchmarks/cli_latency.py [--repeats 5] [--json PATH]

Commands: `--help`; `run BAD.yaml --dry-run` on a refused file (a typo'd field); `run
search_spaces/smoke.yaml --dry-run`; `analyze unknown` against an existing SQLite store holding
another study; `ui --port P` with P taken. Targets, idle machine: < 1 s, < 1 s, < 3 s, < 2 s
(`ui` on a taken port: < 1 s).
`--json PATH` writes {"rows": [{"command", "median_s", "max_s", "target_s", "tensorflow"}],
"setup": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def commands(workdir: Path, port: int) -> list[tuple[str, list[str], float]]:
    bad = workdir / "bad.yaml"
    bad.write_text("name: bad\nepoch: 3\n")
    uri = f"sqlite:///{workdir}/mlflow.db"
    return [
        ("--help", ["--help"], 1.0),
        ("run BAD.yaml --dry-run (refused)", ["run", str(bad), "--dry-run"], 1.0),
        ("run smoke.yaml --dry-run", ["run", str(REPO / "search_spaces" / "smoke.yaml"),
                                      "--dry-run"], 3.0),
        ("analyze unknown", ["analyze", "unknown", "--tracking-uri", uri], 2.0),
        ("ui --port TAKEN", ["ui", "--port", str(port)], 1.0),
    ]


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli", *argv], cwd=cwd,
                   capture_output=True, text=True, timeout=300)
    return time.perf_counter() - started


# the command run in-process, then whether TensorFlow was imported (on stdout: the command may
# hold standard error back while it imports)
WITH_IMPORTS = """
import sys
from harness.cli import main
main(sys.argv[1:])
print("TENSORFLOW", "tensorflow" in sys.modules)
"""


def imports_tensorflow(argv: list[str], cwd: Path) -> bool:
    done = subprocess.run([sys.executable, "-c", WITH_IMPORTS, *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    return "TENSORFLOW True" in done.stdout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (default 5)")
    parser.add_argument("--json", type=Path, help="write the rows and setup here")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory() as directory, socket.socket() as taken:
        workdir = Path(directory)
        from mlflow.tracking import MlflowClient

        MlflowClient(f"sqlite:///{workdir}/mlflow.db").create_experiment("another-study")
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cases = commands(workdir, taken.getsockname()[1])
        times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        timed(["--help"], workdir)  # warm the file cache, not counted
        for _ in range(args.repeats):
            for name, argv_, _ in cases:
                times[name].append(timed(argv_, workdir))
        rows = [{"command": name, "median_s": statistics.median(times[name]),
                 "max_s": max(times[name]), "target_s": target,
                 "tensorflow": imports_tensorflow(argv_, workdir)} for name, argv_, target in cases]
    setup = {"repeats": args.repeats, "machine": platform.processor() or platform.machine(),
             "cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    print(f"{'command':36s}{'median s':>10s}{'max s':>8s}{'target':>8s}  tensorflow")
    for row in rows:
        print(f"{row['command']:36s}{row['median_s']:10.2f}{row['max_s']:8.2f}"
              f"{'< ' + format(row['target_s'], 'g'):>8s}  {'yes' if row['tensorflow'] else 'no'}")
    print(f"setup: {setup}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "setup": setup}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
