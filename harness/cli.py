"""`harness` command line: one sub-command per module, each with its own `--help`.

Every sub-command module exposes `add_parser(subparsers)`, which registers its parser and sets
`func(args) -> int`. Heavy imports (TensorFlow, Ray, MLflow) happen inside `func`, so `--help`
answers at once. A `HarnessError` (or `ValueError` from validation) ends the command with one line
on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import HarnessError

# Modules that contribute sub-commands, in the order `harness --help` lists them.
COMMAND_MODULES = [
    "harness.demo",
    "harness.study.cli",
    "harness.study.submit",
    "harness.ui",
    "harness.data.cli",
    "harness.analysis.cli",
    "harness.analysis.export_cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Benchmark (Layer) Langevin optimizers against their baselines on deep networks.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
