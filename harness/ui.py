"""`harness ui`: the MLflow UI for the study records, on 127.0.0.1 (not reachable by others)."""

from __future__ import annotations

import argparse
import subprocess
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("ui", help="start the MLflow UI on 127.0.0.1 and print its URL",
                                   description=__doc__)
    parser.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else "
                        "sqlite:///mlflow.db in this directory")
    parser.add_argument("--port", type=int, default=5000)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.study.tracking_uri import artifact_location, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    location = artifact_location(uri)
    if location:
        command += ["--default-artifact-root", location]
    print(f"MLflow UI for {uri}: http://127.0.0.1:{args.port}  (Ctrl-C stops it)", flush=True)
    return subprocess.call(command)
